"""Calibration, efficiency columns, show, report and plot: golden files over the checked-in
result set (tests/report_data.py), fake timers for calibration, real images checked by format
and size, and the HTML report in headless Chromium."""

from __future__ import annotations

import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dscbench import calibrate, results, roofline
from dscbench.analysis import break_even
from dscbench.cli import app
from dscbench.commands import report as report_command
from dscbench.measure import Timer

from . import report_data
from .conftest import FakeClock

DATA = report_data.DATA
RUN = report_data.RUN
cli = CliRunner()


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------


def fake_kernel(clock: FakeClock, amount: float, rate: float):
    """A kernel doing ``amount`` of work per call at ``rate`` per second of the fake clock."""

    def run() -> None:
        clock.advance(amount / rate)

    return calibrate.Kernel(run, amount)


def test_calibration_on_a_fake_timer_gives_known_numbers(tmp_path):
    clock = FakeClock()
    kernels = {
        "mm:float32": fake_kernel(clock, 2e9, 100e9),
        "conv3x3:float32": fake_kernel(clock, 1e9, 150e9),  # the faster kernel is the roof
        "mm:float64": fake_kernel(clock, 2e9, 50e9),
        "copy": fake_kernel(clock, 1e8, 20e9),
        "triad": fake_kernel(clock, 1.5e8, 25e9),
    }
    result = calibrate.calibrate(
        "cpu", 2, kernels=kernels, timer=Timer(clock), facts=("Test CPU", {"torch": "x"}),
        repeats=4, block_time=0.05,
    )  # fmt: skip
    assert result.peak_flops("float32") == pytest.approx(150e9)
    assert result.peak_flops("float64") == pytest.approx(50e9)
    assert math.isnan(result.peak_flops("bfloat16"))
    assert result.peak_bandwidth == pytest.approx(25e9)
    assert result.compute["mm:float32"].spread == pytest.approx(0.0)
    rate = calibrate.Rate([4.0, 5.0, 4.5])  # the roof is the best repeat; spread over median
    assert rate.best == 5.0 and rate.median == 4.5 and rate.spread == pytest.approx(1 / 4.5)
    saved = calibrate.save(result, tmp_path)
    again = calibrate.cached("cpu", 2, ("Test CPU", {"torch": "x"}), tmp_path)
    assert again is not None and again.to_json() == result.to_json()
    assert saved.name == f"{result.key}.json"
    # another thread count, or another torch, is another machine
    assert calibrate.cached("cpu", 1, ("Test CPU", {"torch": "x"}), tmp_path) is None
    assert calibrate.cached("cpu", 2, ("Test CPU", {"torch": "y"}), tmp_path) is None
    saved.write_text("{not json")
    assert calibrate.cached("cpu", 2, ("Test CPU", {"torch": "x"}), tmp_path) is None


def test_the_real_calibration_measures_something():
    clock_free = calibrate.calibrate("cpu", 1, repeats=2, block_time=0.005)
    assert clock_free.peak_flops("float32") > 1e9  # any CPU does a GFLOP/s
    assert clock_free.peak_bandwidth > 1e8
    assert {"copy", "triad"} <= set(clock_free.bandwidth)


# ---------------------------------------------------------------------------------------------
# Efficiency columns
# ---------------------------------------------------------------------------------------------


def _row(**overrides) -> dict:
    row = {
        "device": "cpu", "threads": 1, "dtype": "float32", "mode": "inference",
        "latency_median_s": 1e-3, "flops": 1e8, "step_flops": 1e8, "bytes": 1e6,
        "warnings": "",
    }  # fmt: skip
    row.update(overrides)
    return row


def test_efficiency_columns_from_known_inputs():
    calibration = report_data.fake_calibration()  # 100 GFLOP/s, 10 GB/s: ridge at 10 FLOP/B
    rows = pd.DataFrame(
        [
            _row(),  # intensity 100: compute-bound, 1e11 FLOP/s attainable, 1e11 reached
            _row(bytes=1e8, latency_median_s=0.05),  # intensity 1: memory-bound
            _row(latency_median_s=1e-4),  # 1e12 FLOP/s: above the 1e11 roof
            _row(threads=2),  # no calibration at 2 threads
            _row(mode="training", step_flops=3e8),  # FLOP/s only
            _row(dtype="float16"),  # no float16 roof
        ]
    )
    out = roofline.add_efficiency(rows, [calibration])
    assert out.achieved_flops_per_s[0] == pytest.approx(1e11)
    assert out.achieved_bytes_per_s[0] == pytest.approx(1e9)
    assert out.roofline_bound[0] == "compute" and out.roofline_fraction[0] == pytest.approx(1.0)
    assert out.roofline_bound[1] == "memory"
    assert out.roofline_fraction[1] == pytest.approx(2e9 / 1e10)  # 2 GFLOP/s of 10 attainable
    assert out.warnings[2].startswith("above_roofline: 1e+12 FLOP/s measured")
    assert out.warnings[0] == "" and out.warnings[1] == ""
    assert math.isnan(out.achieved_flops_per_s[3]) and out.roofline_bound[3] == ""
    assert out.achieved_flops_per_s[4] == pytest.approx(3e11)
    assert math.isnan(out.roofline_fraction[4]) and out.warnings[4].startswith("above_roofline")
    assert out.achieved_flops_per_s[5] == pytest.approx(1e11)
    assert math.isnan(out.roofline_fraction[5]) and out.warnings[5] == ""
    assert roofline.ridge_point(calibration, "float32") == pytest.approx(10.0)


# ---------------------------------------------------------------------------------------------
# Golden files: show and report
# ---------------------------------------------------------------------------------------------


def test_checked_in_report_data_is_what_the_generator_makes():
    fresh = report_data.make_run()
    stored = results.load_results(RUN)
    columns = [c for c in results.RESULT_COLUMNS if c != "prepare_s"]  # wall-clock time
    pd.testing.assert_frame_equal(stored.results[columns], fresh.results[columns])
    assert stored.meta["calibration"] == fresh.meta["calibration"]


@pytest.mark.parametrize(("fmt", "name"), list(report_data.FORMATS.items()))
def test_golden_reports(fmt, name):
    assert report_command.report([RUN], fmt) == (DATA / name).read_text()


def test_golden_show():
    assert (
        report_data.show_text([None, None, None, False, False])
        == (DATA / "expected-show.txt").read_text()
    )
    filtered = report_data.show_text([["fake"], "separable", "in_channels >= 32", False, False])
    assert filtered == (DATA / "expected-show-filtered.txt").read_text()


def test_break_even_reads_the_designed_crossings():
    found = {(b.backend, b.kernel): b for b in break_even(results.load_results(RUN).results)}
    assert found[("fake", 3)].status == "crosses" and 8 < found[("fake", 3)].channels < 16
    assert found[("fake-fast", 3)].status == "crosses"
    assert 16 < found[("fake-fast", 3)].channels < 32
    assert found[("fake", 5)].status == "mixed"  # the too-fast 64-channel standard row


def test_the_csv_report_is_numbers():
    table = pd.read_csv(DATA / "expected.csv")
    assert len(table) == 16 and table.speedup.gt(0).all()
    assert table.latency_standard_s.max() < 1e-2  # seconds, not formatted text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "nope-dir"], "nope-dir: no such file or directory"),
        (["show", str(RUN), "--where", "channels >"], "--where 'channels >': not a filter"),
        (["show", str(RUN), "--where", "kernel == 9"], "no rows match the filters"),
        (["show", str(RUN), "--backend", "gpu"], "--backend gpu: not in this run"),
        (["report", "nope-dir"], "nope-dir: no such file or directory"),
        (["plot", str(RUN), "--kind", "speedup", "-o", "x.gif"], "must end in .png, .svg or .pdf"),
    ],
)
def test_bad_input_to_show_report_and_plot_is_one_line(args, message):
    res = cli.invoke(app, args)
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


def test_a_roofline_needs_a_calibration(tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(RUN, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta["calibration"] = []
    (copy / "run.json").write_text(json.dumps(meta))
    res = cli.invoke(app, ["plot", str(copy), "--kind", "roofline", "-o", str(tmp_path / "r.png")])
    assert res.exit_code == 2 and "run `dscbench calibrate` before the run" in res.output


# ---------------------------------------------------------------------------------------------
# Plots and HTML
# ---------------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("kind", ["speedup", "roofline", "latency", "breakeven"])
def test_every_plot_kind_writes_a_valid_image(tmp_path, kind):
    png = tmp_path / f"{kind}.png"
    res = cli.invoke(app, ["plot", str(RUN), "--kind", kind, "-o", str(png)])
    assert res.exit_code == 0, res.output
    width, height = png_size(png)
    assert 500 <= width <= 2000 and 300 <= height <= 1200
    svg = tmp_path / f"{kind}.svg"
    assert cli.invoke(app, ["plot", str(RUN), "--kind", kind, "-o", str(svg)]).exit_code == 0
    text = svg.read_text()
    assert "<svg" in text and "</svg>" in text and len(text) > 5000
    pdf = tmp_path / f"{kind}.pdf"
    assert cli.invoke(app, ["plot", str(RUN), "--kind", kind, "-o", str(pdf)]).exit_code == 0
    assert pdf.read_bytes()[:5] == b"%PDF-"


def test_the_html_report_is_self_contained_with_its_plots():
    document = report_command.report([RUN], "html")
    assert document.startswith("<!DOCTYPE html>") and document.count("<svg") == 4
    for kind in ("speedup", "roofline", "latency", "breakeven"):
        assert f'id="plot-{kind}"' in document
    assert 'src="http' not in document and "<link" not in document  # nothing to fetch
    assert 'class="sortable"' in document and "data-sort=" in document


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(chromium() is None, reason="no chromium here (CI installs Debian's)")
def test_the_html_report_renders_in_headless_chromium(tmp_path):
    page = tmp_path / "report.html"
    page.write_text(report_command.report([RUN], "html"))
    base = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars"]
    logged = subprocess.run(
        [*base, "--enable-logging=stderr", "--v=0", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert logged.returncode == 0, logged.stderr[-2000:]
    # The sorting script ran to its end (it marks the table), and nothing failed in the page.
    assert 'data-sortable="ready"' in logged.stdout
    console = [line for line in logged.stderr.splitlines() if "CONSOLE" in line]
    assert not [line for line in console if "rror" in line], console
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*base, f"--screenshot={shot}", "--window-size=1280,1600", page.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    assert png_size(shot) == (1280, 1600) and shot.stat().st_size > 50_000
