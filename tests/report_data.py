"""The result set checked in under tests/data/report/ and the golden outputs of show and
report, and how they were made: `python -m tests.report_data` rewrites them, deterministically.

A fake backend on a fake clock, two "backends" (fake and fake-fast, with other costs), kernels 3
and 5, channels 8 to 64, and a fake calibration (100 GFLOP/s float32, 10 GB/s), so every
section of a report has something in it: wins, losses, a break-even crossing, "always" and
"never", roofline columns and an above_roofline warning.
"""

from __future__ import annotations

import copy
import io
import os
from pathlib import Path

import numpy as np

from dscbench import calibrate, results, runner
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, RunSettings
from tests.tables import tables_of

from .conftest import FakeBackend, FakeClock, spec

DATA = Path(__file__).parent / "data" / "report"
RUN = DATA / "run"
FORMATS = {"markdown": "expected.md", "csv": "expected.csv", "latex": "expected.tex"}
SHOW_WIDTH = 160


def fake_calibration() -> dict:
    """100 GFLOP/s float32 and 10 GB/s on the fake CPU at 1 thread, as calibrate.calibrate
    would store it."""
    return calibrate.Calibration(
        device="cpu",
        device_name="Test CPU",
        threads=1,
        versions={"torch": "2.13.0"},
        compute={"mm:float32": calibrate.Rate([1.0e11, 0.98e11, 0.99e11])},
        bandwidth={"copy": calibrate.Rate([1.0e10, 0.97e10, 0.99e10])},
        created_at="2026-11-29T00:00:00+00:00",
    ).to_json()


def _cost(speed: float, overhead: float):
    """Standard conv costs grow with channels^2, separable ones linearly after a fixed
    ``overhead``: on "fake" separable loses at 8 channels and wins from 16 (kernel 3) or
    always (kernel 5); on "fake-fast" it wins from 32 channels (kernel 3) and 16 (kernel 5).
    ``speed`` scales the whole backend. The 64-channel standard k5 layer on "fake" is too fast
    to be true (2.7 TFLOP/s against a 100 GFLOP/s roof): the above_roofline warning."""

    def cost(s, variant):
        c, k = s.in_channels, s.kernel
        if variant == "standard":
            seconds = 2e-7 * c * c * k * k / 9
            if c == 64 and k == 5 and speed == 1.0:
                seconds /= 50
        else:
            seconds = overhead + 5e-7 * c
        return seconds / speed

    return cost


def make_run() -> results.ResultSet:
    clock = FakeClock()
    backends = {
        "fake": FakeBackend(clock, _cost(1.0, 2e-5), noise=0.01, seed=5),
        "fake-fast": FakeBackend(clock, _cost(2.0, 6e-5), noise=0.01, seed=6),
    }
    cases = [
        Case(spec(in_channels=c, out_channels=c, kernel=k, height=16, width=16), b)
        for b in backends
        for k in (3, 5)
        for c in (8, 16, 32, 64)
    ]
    sweep = runner.run_sweep(
        cases,
        RunSettings(min_time=0.03, rounds=3, seed=4),
        runner.local(backends),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        verify_counts=False,
    )
    calibration = [fake_calibration()]
    devices = {b: ("cpu", "Test CPU") for b in backends}
    table, samples = tables_of(sweep, devices, calibrations=calibration)
    meta = {
        "tool": "dscbench",
        "command": ["dscbench", "run", "--spec", "report.toml"],
        "status": "complete",
        "started_at": "2026-11-29T00:00:00+00:00",
        "settings": {"min_time": 0.03, "rounds": 3},
        "round_spread": 0.01,
        "environment": {
            "dscbench": "0.1.0",
            "python": "3.11.7",
            "cpu_model": "Test CPU",
            "cpu_count": 2,
            "torch": {"version": "2.13.0"},
        },
        "backends": {b: {"device_name": "Test CPU", "versions": {"fake": "1"}} for b in backends},
        "calibration": calibration,
        "timings": {"wall_s": 2.0, "timed_s": 1.5, "warmup_s": 0.1, "compile_s": 0.0},
    }
    return results.ResultSet(dict(meta, schema_version=results.SCHEMA_VERSION), table, samples)


def show_text(args: list[str], run: Path = RUN) -> str:
    """What `dscbench show` prints, as plain text at a fixed width."""
    from rich.console import Console

    from dscbench.commands import show

    console = Console(width=SHOW_WIDTH, file=io.StringIO(), record=True, color_system=None)
    here = os.getcwd()
    os.chdir(run.parent)  # the run's path as a user in that directory would type it
    try:
        show.execute(Path(run.name), *args, console=console)
    finally:
        os.chdir(here)
    return console.export_text()


def faster_copy(directory: Path, factor: float = 2.0) -> Path:
    """The checked-in run again at ``directory``, with every speedup (and its interval)
    ``factor`` times larger: a second run of the same sweep that differs."""
    rs = results.load_results(RUN)
    directory.mkdir(parents=True)
    table = rs.results.copy()
    for column in ("speedup", "speedup_ci_low", "speedup_ci_high"):
        table[column] = table[column] * factor
    results.write_run(directory, table, rs.samples, dict(rs.meta, started_at="2026-11-30"))
    return directory


# The two machines of mixed_shards: shard index -> host, CPU model; and each shard's kernel.
MIXED_MACHINES = {1: ("host-a", "Test CPU A"), 2: ("host-b", "Test CPU B")}
MIXED_KERNELS = {1: 3, 2: 5}


def mixed_shards(directory: Path) -> list[Path]:
    """The checked-in run as two shard runs of one sweep measured on different hardware: its
    kernel-3 rows by shard 1/2 on host-a (Test CPU A), its kernel-5 rows by shard 2/2 on host-b
    (Test CPU B). `dscbench merge --allow-different-hardware` makes them a run that mixes
    hardware."""
    rs = results.load_results(RUN)
    paths = []
    for index, (host, cpu) in MIXED_MACHINES.items():
        rows = rs.results[rs.results.kernel == MIXED_KERNELS[index]].assign(host=host, shard=index)
        samples = rs.samples[rs.samples.config_id.isin(set(rows.config_id))]
        meta = copy.deepcopy(rs.meta)
        meta["environment"].update(hostname=host, cpu_model=cpu)
        meta["shard"] = {
            "index": index,
            "count": len(MIXED_MACHINES),
            "sweep_configurations": rs.results.config_id.nunique(),
            "sweep_sha256": "0" * 64,
        }
        path = directory / f"shard-{index}"
        path.mkdir(parents=True)
        results.write_run(path, rows.reset_index(drop=True), samples, meta)
        paths.append(path)
    return paths


def write(directory: Path = DATA) -> None:
    from dscbench.commands import report

    rs = make_run()
    RUN.mkdir(parents=True, exist_ok=True)
    results.write_run(RUN, rs.results, rs.samples, rs.meta)
    for fmt, name in FORMATS.items():
        (directory / name).write_text(report.report([RUN], fmt))
    (directory / "expected-show.txt").write_text(show_text([None, None, None, False, False]))
    (directory / "expected-show-filtered.txt").write_text(
        show_text([["fake"], "separable", "in_channels >= 32", False, False])
    )


if __name__ == "__main__":
    np.seterr(all="raise")
    write()
    print(f"wrote {DATA}")
