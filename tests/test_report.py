"""Calibration, efficiency columns, show, report and plot: golden files over the checked-in
result set (tests/report_data.py), fake timers for calibration, real images checked by format
and size, and the HTML report in headless Chromium."""

from __future__ import annotations

import io
import json
import math
import shutil
import struct
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dscbench import analysis, calibrate, results, roofline
from dscbench.analysis import break_even
from dscbench.cli import app
from dscbench.commands import report as report_command
from dscbench.measure import Timer
from dscbench.stats import geometric_mean

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
        "copy@4096": fake_kernel(clock, 8192, 80e9),
        "batchnorm@4096": fake_kernel(clock, 8704, 0.5e9),
        "relu@4096": fake_kernel(clock, 8192, 2e9),
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
    # the ladders are kept by size, apart from the roofs
    assert set(result.bandwidth) == {"copy", "triad"}
    assert result.copy_ladder["4096"].median == pytest.approx(80e9)
    assert {m: set(sizes) for m, sizes in result.module_ladder.items()} == {
        "batchnorm": {"4096"}, "relu": {"4096"}}  # fmt: skip
    assert result.module_ladder["batchnorm"]["4096"].median == pytest.approx(0.5e9)
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


@pytest.mark.slow
def test_the_real_calibration_measures_something():
    clock_free = calibrate.calibrate("cpu", 1, repeats=2, block_time=0.005)
    assert clock_free.peak_flops("float32") > 1e9  # any CPU does a GFLOP/s
    assert clock_free.peak_bandwidth > 1e8
    assert {"copy", "triad"} <= set(clock_free.bandwidth)
    sizes = {str(b) for b in calibrate.LADDER_BYTES}
    assert set(clock_free.copy_ladder) == sizes
    assert {m: set(s) for m, s in clock_free.module_ladder.items()} == dict.fromkeys(
        calibrate.MODULES, sizes
    )
    bn = clock_free.module_ladder["batchnorm"]
    # a batch norm call costs more than a copy of its bytes (its call, its new output)
    assert bn["4096"].median < clock_free.copy_ladder["4096"].median
    assert calibrate.Calibration.from_json(clock_free.to_json()).to_json() == clock_free.to_json()


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
    assert {b.shape for b in found.values()} == {"3x3", "5x5"}
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


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_html_report_is_self_contained_with_its_plots():
    document = report_command.report([RUN], "html")
    assert document.startswith("<!DOCTYPE html>") and document.count("<svg") == 4
    for kind in ("speedup", "roofline", "latency", "breakeven"):
        assert f'id="plot-{kind}"' in document
    assert 'src="http' not in document and "<link" not in document  # nothing to fetch
    assert 'class="sortable"' in document and "data-sort=" in document


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
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


# ---------------------------------------------------------------------------------------------
# Several runs in one report or plot (issue 17, item 9)
# ---------------------------------------------------------------------------------------------


def summaries(table: pd.DataFrame) -> dict[str, str]:
    """Per backend of one run: '3.12x ... 8 configurations' as the report words it."""
    return {
        s.backend: f"geometric-mean speedup {s.speedup:.2f}x against a MAC reduction of "
        f"{s.mac_reduction:.2f}x (efficiency {s.efficiency:.0%}) over {s.configurations} "
        "configurations"
        for s in analysis.backend_summaries(table)
    }


def test_run_labels_are_unique():
    names = report_command.run_names([Path("x/R"), Path("y/R/"), Path("R"), Path("S")])
    assert names == ["R", "R (2)", "R (3)", "S"]
    assert analysis.run_labels(["R", "R (2)", "R"]) == ["R", "R (2)", "R (3)"]


def test_a_report_of_two_runs_labels_rows_and_summaries_by_run(tmp_path):
    other = report_data.faster_copy(tmp_path / "b")  # every speedup 2x the checked-in run's
    single = results.load_results(RUN).results
    text = report_command.report([RUN, other], "markdown")
    assert "- run `run`: complete" in text and "- run `b`: complete" in text
    doubled = single.assign(
        **{c: single[c] * 2 for c in ("speedup", "speedup_ci_low", "speedup_ci_high")}
    )
    for name, table in (("run", single), ("b", doubled)):
        for backend, summary in summaries(table).items():
            assert f'- {backend} in run "{name}": {summary};' in text
    assert "- fake: geometric" not in text  # nothing pooled over the two runs
    assert "| run | configuration | backend |" in text
    assert '8->8 @16 k3s1 on fake-fast in run "run": 0.20x [0.20, 0.20]' in text
    # break-even per run: run b's 8-channel k3 layer wins too (0.53x, doubled)
    assert '| fake in run "run" | 3x3 | above ~11 channels |' in text
    assert '| fake in run "b" | 3x3 | always (from 8 channels) |' in text
    assert "| b | 8->8 @16 k3s1 | fake | 576/136 |" in text and "| 1.07x [1.07, 1.07] |" in text
    numbers = pd.read_csv(io.StringIO(report_command.report([RUN, other], "csv")))
    assert list(numbers.columns[:3]) == ["run", "config_id", "configuration"]
    assert numbers.run.value_counts().to_dict() == {"run": 16, "b": 16}
    mine = numbers[numbers.run == "run"].set_index(["config_id", "backend"]).speedup
    theirs = numbers[numbers.run == "b"].set_index(["config_id", "backend"]).speedup
    pd.testing.assert_series_equal(theirs, mine * 2, check_names=False)


@pytest.mark.parametrize("fmt", report_data.FORMATS)
def test_the_same_run_twice_is_two_labelled_runs_in_every_format(fmt):
    text = report_command.report([RUN, RUN], fmt)
    once = report_command.report([RUN], fmt)
    if fmt == "csv":
        numbers = pd.read_csv(io.StringIO(text))
        alone = pd.read_csv(io.StringIO(once))
        assert numbers.run.tolist() == ["run"] * 16 + ["run (2)"] * 16
        for label in ("run", "run (2)"):
            part = numbers[numbers.run == label].drop(columns="run").reset_index(drop=True)
            pd.testing.assert_frame_equal(part, alone)
        return
    speedups = summaries(results.load_results(RUN).results)
    for label in ("run", "run (2)"):
        for backend, summary in speedups.items():
            line = f'{backend} in run "{label}": {summary}'
            assert (line.replace("%", r"\%") if fmt == "latex" else line) in text


@pytest.mark.slow
def test_the_html_report_of_two_runs_has_a_run_column_and_plots():
    document = report_command.report([RUN, RUN], "html")
    assert document.count("<svg") == 4 and "<th>run</th><th>configuration</th>" in document
    assert document.count('<td data-sort="run (2)">run (2)</td>') == 16


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["speedup", "roofline", "latency", "breakeven"])
def test_every_plot_kind_draws_several_runs_as_series(tmp_path, kind):
    from dscbench import plot as plots

    png = tmp_path / f"{kind}.png"
    res = cli.invoke(app, ["plot", str(RUN), str(RUN), "--kind", kind, "-o", str(png)])
    assert res.exit_code == 0, res.output
    assert png_size(png)[0] >= 500
    table, calibrations, _ = report_command.load_runs(
        [RUN, report_data.faster_copy(tmp_path / "b")]
    )
    fig = plots.figure(kind, table, calibrations)
    expected = [f'{b} in run "{r}"' for r in ("run", "b") for b in ("fake", "fake-fast")]
    if kind in ("latency", "breakeven"):  # one panel per series
        assert [ax.get_title() for ax in fig.axes] == expected
    else:
        texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
        assert [t for t in texts if " in run " in t] == expected
    if kind == "breakeven":  # the second run's curve is the first one's, doubled
        first, second = (ax.get_lines()[0].get_ydata() for ax in (fig.axes[0], fig.axes[2]))
        assert second == pytest.approx(first * 2)
    plots.matplotlib_pyplot().close(fig)


# ---------------------------------------------------------------------------------------------
# A merge of shards measured on different hardware (issue 17, item 7)
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def mixed_run(tmp_path) -> Path:
    shards = report_data.mixed_shards(tmp_path)
    merged = tmp_path / "merged"
    args = ["merge", *map(str, shards), "-o", str(merged), "--allow-different-hardware"]
    res = cli.invoke(app, args)
    assert res.exit_code == 0 and "mixed hardware" in res.output, res.output
    return merged


def machine_summaries() -> dict[tuple[str, str], tuple[int, float]]:
    """(host, backend) -> configurations and geometric-mean speedup, from the checked-in rows
    that mixed_shards gives each machine."""
    table = results.load_results(RUN).results
    out = {}
    for index, (host, _cpu) in report_data.MIXED_MACHINES.items():
        for backend in ("fake", "fake-fast"):
            rows = table[
                (table.kernel == report_data.MIXED_KERNELS[index])
                & (table.backend == backend)
                & (table.variant == "separable")
            ]
            out[(host, backend)] = (len(rows), geometric_mean(rows.speedup))
    return out


MIXED_NOTE = (
    "mixes hardware (shards merged with --allow-different-hardware): it was measured on 2 "
    "machines, host-a: Test CPU A, 2 cores (shard 1); host-b: Test CPU B, 2 cores (shard 2)."
)


def test_show_of_a_mixed_hardware_merge_names_the_machines_and_summarises_each(mixed_run):
    text = " ".join(report_data.show_text([None, None, None, False, False], mixed_run).split())
    assert f"This run {MIXED_NOTE}" in text
    assert "(mixed hardware: 2 machines)" in text
    for (host, backend), (n, speedup) in machine_summaries().items():
        assert (
            f"{backend} at {host}: separable vs standard over {n} configurations: "
            f"geometric-mean speedup {speedup:.2f}x" in text
        )
    assert "fake: separable vs standard" not in text  # no figure pooled over machines
    assert "over 8 configurations" not in text
    rows = report_data.show_text([["fake"], "separable", None, False, False], mixed_run)
    assert "│ host-a  │ 8->8 @16 k3s1" in rows and "│ host-b  │ 8->8 @16 k5s1" in rows
    assert MIXED_NOTE in " ".join(rows.split())


@pytest.mark.slow
def test_a_report_of_a_mixed_hardware_merge_says_so_in_every_format(mixed_run):
    text = report_command.report([mixed_run], "markdown")
    assert f"- **Mixed hardware.** This run {MIXED_NOTE}" in text
    for (host, backend), (n, speedup) in machine_summaries().items():
        assert f"- {backend} at {host}: geometric-mean speedup {speedup:.2f}x" in text
        assert f"over {n} configurations" in text
    assert "- fake: geometric" not in text and "over 8 configurations" not in text
    assert "| configuration | backend | machine |" in text
    assert "| 8->8 @16 k5s1 | fake | host-b |" in text
    assert "- machine host-a: Test CPU A, 2 cores (shard 1)" in text  # environment
    assert "- cpu: " not in text  # the first shard's CPU is not the run's
    numbers = pd.read_csv(io.StringIO(report_command.report([mixed_run], "csv")))
    hosts = numbers.set_index("configuration").machine
    assert set(hosts[hosts.index.str.contains("k3")]) == {"host-a"}
    assert set(hosts[hosts.index.str.contains("k5")]) == {"host-b"}
    latex = report_command.report([mixed_run], "latex")
    assert r"\paragraph{Mixed hardware.} This run mixes hardware" in latex
    assert "fake at host-b: geometric-mean" in latex
    document = report_command.report([mixed_run], "html")
    assert "<strong>Mixed hardware.</strong> This run mixes hardware" in document
    assert "Test CPU B" in document and "fake-fast at host-a: geometric-mean" in document


def test_a_mixed_hardware_merge_next_to_another_run(mixed_run):
    text = report_command.report([mixed_run, RUN], "markdown")
    assert f"- **Mixed hardware.** Run `merged` {MIXED_NOTE}" in text
    _, speedup = machine_summaries()[("host-b", "fake")]
    assert f'- fake at host-b in run "merged": geometric-mean speedup {speedup:.2f}x' in text
    assert '- fake at Test CPU, 2 cores in run "run": geometric-mean speedup 3.12x' in text


def test_machines_of_one_host_name_on_different_hardware_stay_apart():
    entry = {"host": "node", "environment": {"cpu_model": "A"}, "backends": {}}
    meta = {
        "mixed_hardware": True,
        "merged_from": [
            dict(entry, shard={"index": 1}),
            dict(entry, shard={"index": 2}, environment={"cpu_model": "B"}),
            dict(entry, shard={"index": 3}),
        ],
    }
    found = analysis.machines(meta)
    assert [(m.label, m.shards) for m in found] == [("node (A)", [1, 3]), ("node (B)", [2])]
    table = pd.DataFrame({"host": ["node"] * 3, "shard": [2, 1, 3]})  # the host cannot tell
    assert analysis.with_machines(table, meta).machine.tolist() == [
        "node (B)",
        "node (A)",
        "node (A)",
    ]
    assert analysis.with_machines(table, {"merged_from": meta["merged_from"]}) is table


def test_every_summary_counts_faster_slower_and_noise_the_same_way(tmp_path):
    """Issue 18's defect: `run`/`show` left pairs without an interval out of "within noise" while
    the report counted them there. One count (analysis.interval_counts) now serves both."""
    import re
    import shutil

    from dscbench import analysis
    from dscbench.export.table import summary_lines

    run = tmp_path / "run"
    shutil.copytree(RUN, run)
    rows = pd.read_parquet(run / "results.parquet")
    blank = rows.index[rows.speedup.notna()][:2]  # two pairs as if measured in one round
    rows.loc[blank, ["speedup_ci_low", "speedup_ci_high"]] = float("nan")
    rows.to_parquet(run / "results.parquet", index=False)
    loaded = results.load_results(run)
    ok = analysis.measured_pairs(loaded.results)
    faster, slower, within, none = analysis.interval_counts(ok)
    assert none == 2 and faster + slower + within + none == len(ok)
    shown = " ".join(summary_lines(loaded.results))
    report = cli.invoke(app, ["report", str(run)]).output
    pattern = (
        r"faster in (\d+), slower in (\d+), within noise in (\d+)(?:, no interval[^)]*\) in (\d+))?"
    )
    for text in (shown, report):
        found = re.findall(pattern, " ".join(text.split()))
        counts = [tuple(int(v or 0) for v in m) for m in found]
        assert counts and sum(c[3] for c in counts) == 2, text
        totals = tuple(sum(c[i] for c in counts) for i in range(4))
        assert totals == (faster, slower, within, none)
