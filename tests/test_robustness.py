"""Hostile input, table-driven (issue 11's defects): every case is one line on stderr, no
traceback, and the documented exit code; and the files a command writes are strict JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dscbench import results, stats
from dscbench.cli import app
from dscbench.export.comparison import percent
from tests.conftest import start_run

BASE = Path(__file__).parent / "data" / "compare" / "baseline"
CAND = Path(__file__).parent / "data" / "compare" / "candidate"
cli = CliRunner()
TINY = ["--in-channels", "4", "--size", "8", "--min-time", "0.02", "--warmup", "0",
        "--processes", "1", "--threads", "1"]  # fmt: skip


def copy_run(tmp_path: Path, source: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(source, target)
    return target


def with_samples(run: Path, change) -> Path:
    samples = pd.read_parquet(run / "samples.parquet")
    change(samples)
    samples.to_parquet(run / "samples.parquet", index=False)
    return run


def with_rows(run: Path, change) -> Path:
    rows = pd.read_parquet(run / "results.parquet")
    rows = change(rows)
    rows.to_parquet(run / "results.parquet", index=False)
    return run


def _set(column, value, index=0):
    def change(frame):
        frame.loc[index, column] = value

    return change


CASES = {
    # 2: nothing comparable is not a pass
    "threads differ": (
        lambda t: ["compare", str(BASE), str(with_rows(copy_run(t, CAND, "c"), _threads(7)))],
        "thread counts differ (baseline 1, candidate 7): rerun one side with --threads 1",
    ),
    "every row not measured": (
        lambda t: [
            "compare",
            str(BASE),
            str(with_rows(copy_run(t, CAND, "c"), _unmeasured)),
            "--fail-on-inconclusive",
        ],
        "none was measured by both",
    ),
    # 3: corrupt samples
    "negative sample": (
        lambda t: [
            "compare",
            str(BASE),
            str(with_samples(copy_run(t, CAND, "c"), _set("time_s", -1.0))),
        ],
        "1 sample(s) with time_s -1 in the samples",
    ),
    "zero sample": (
        lambda t: [
            "compare",
            str(BASE),
            str(with_samples(copy_run(t, CAND, "c"), _set("time_s", 0.0))),
        ],
        "sample(s) with time_s 0 in the samples",
    ),
    "NaN sample": (
        lambda t: [
            "compare",
            str(with_samples(copy_run(t, BASE, "b"), _set("time_s", np.nan))),
            str(CAND),
        ],
        "sample(s) with time_s nan in the samples",
    ),
    "zero iterations": (
        lambda t: [
            "compare",
            str(BASE),
            str(with_samples(copy_run(t, CAND, "c"), _set("iterations", 0))),
        ],
        "sample(s) with iterations 0",
    ),
    # 5: non-finite settings
    "min-time inf": (
        lambda t: ["run", "--min-time", "inf"],
        "Invalid value for '--min-time': inf is not a finite number of seconds",
    ),
    "warmup inf": (
        lambda t: ["run", "--warmup", "inf"],
        "Invalid value for '--warmup': inf is not a finite number of seconds",
    ),
    # nan fails typer's range check (>= 0) or, where click lets nan through it, the callback
    "warmup nan": (lambda t: ["run", "--warmup", "nan"], "Invalid value for '--warmup'"),
    # 9: outputs that would overwrite an input run
    "compare -o into the run": (
        lambda t: [
            "compare",
            str(copy_run(t, BASE, "b")),
            str(CAND),
            "-o",
            str(t / "b" / "run.json"),
        ],
        "would overwrite files of the input run",
    ),
    "export -o into the run": (
        lambda t: ["export", str(copy_run(t, BASE, "b")), "-o", str(t / "b" / "results.csv")],
        "would overwrite files of the input run",
    ),
    "report -o into the run": (
        lambda t: ["report", str(copy_run(t, BASE, "b")), "-o", str(t / "b" / "samples.parquet")],
        "would overwrite files of the input run",
    ),
    # 12: small ones
    "confidence 1": (
        lambda t: ["compare", str(BASE), str(CAND), "--confidence", "1"],
        "--confidence '1': give a fraction (0.95) or a percentage (95%), below 1",
    ),
    "confidence inf": (
        lambda t: ["compare", str(BASE), str(CAND), "--confidence", "inf"],
        "--confidence 'inf': not a finite number",
    ),
    "export without samples": (
        lambda t: ["export", str(_without_samples(copy_run(t, BASE, "b")))],
        "its samples.parquet is missing, so an export could not be compared",
    ),
}


def _threads(n):
    def change(rows):
        rows["threads"] = n
        rows["config_id"] = rows.config_id.str.replace("_t1", f"_t{n}")
        return rows

    return change


def _unmeasured(rows):
    rows["status"] = "not_measured"
    for column in ("latency_median_s", "speedup", "latency_min_s"):
        rows[column] = np.nan
    return rows


def _without_samples(run: Path) -> Path:
    (run / "samples.parquet").unlink()
    return run


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(tmp_path, case):
    make_args, message = CASES[case]
    res = cli.invoke(app, make_args(tmp_path))
    assert res.exit_code == 2, res.output
    assert message in res.output, res.output
    assert "Traceback" not in res.output
    assert len([line for line in res.output.splitlines() if line.startswith("error:")]) == 1


def test_inputs_survive_a_refused_output(tmp_path):
    run = copy_run(tmp_path, BASE, "b")
    before = (run / "run.json").read_bytes()
    cli.invoke(app, ["compare", str(run), str(CAND), "-o", str(run / "run.json")])
    assert (run / "run.json").read_bytes() == before


@pytest.mark.slow
def test_one_round_writes_strict_json_and_a_no_interval_warning(tmp_path):
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", *TINY, "--rounds", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output

    def strict(text: str):
        return json.loads(text, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))

    meta = strict((out / "run.json").read_text())
    assert meta["round_spread"] is None  # one round: no spread, written as null
    exported = cli.invoke(app, ["export", str(out)])
    assert exported.exit_code == 0
    strict(exported.output)
    sep = results.load_results(out).results.query("variant == 'separable'").iloc[0]
    assert np.isnan(sep.speedup_ci_low) and "few_rounds" in sep.warnings


def test_an_interval_without_spread_is_not_shown_as_certain():
    same = stats.round_speedup([2.0] * 4, [1.0] * 4, [0, 1, 2, 3])
    assert same.value == 2.0 and np.isnan(same.ci_low) and np.isnan(same.ci_high)
    assert [w.code for w in stats.check_rounds(4, interval=False)] == ["zero_spread"]
    varied = stats.round_speedup([2.0, 2.1, 1.9, 2.0], [1.0] * 4, [0, 1, 2, 3])
    assert varied.ci_low < varied.value < varied.ci_high


def test_confidence_is_never_rounded_to_100_percent():
    assert percent(0.999999) == "99.9999%" and percent(0.95) == "95%" and percent(0.025) == "2.5%"


@pytest.mark.slow
def test_more_threads_than_cores_is_a_warning(tmp_path, monkeypatch):
    from dscbench.commands.run import planning

    monkeypatch.setattr(planning, "available_cores", lambda: 2)
    res = cli.invoke(
        app, ["run", *TINY[:-1], "3", "--rounds", "2", "-q", "-o", str(tmp_path / "r")]
    )
    assert res.exit_code == 0, res.output
    assert "--threads 3 exceeds the 2 core(s) this process may use" in res.output


@pytest.mark.slow
def test_a_closed_pipe_stops_printing_but_not_the_sweep(tmp_path):
    """`dscbench run ... | head -1`: the reader goes away; the run finishes, keeps its files
    and exits 0 with nothing on stderr (defect 10)."""
    import subprocess
    import sys

    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-m", "dscbench", "run", *TINY, "--rounds", "2", "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the first line
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    assert b"Traceback" not in err and b"BrokenPipe" not in err
    loaded = results.load_results(out)
    assert loaded.meta["status"] == "complete" and (loaded.results.status == "ok").all()


@pytest.mark.slow
@pytest.mark.parametrize("rounds", ["1", "2"])
def test_a_huge_slowdown_is_judged_even_with_few_rounds(tmp_path, rounds):
    """Defect 4: with 1 or 2 rounds there is no usable interval, but a row 200x slower must not
    pass the gate; a row that did not change stays inconclusive (its note says why)."""
    base = tmp_path / "base"
    res = cli.invoke(app, ["run", *TINY, "--out-channels", "4,8", "--rounds", rounds,
                           "-o", str(base)])  # fmt: skip
    assert res.exit_code == 0, res.output
    cand = copy_run(tmp_path, base, "cand")

    def slow_down(samples):
        pick = samples.config_id.str.contains("c4-8") & (samples.variant == "standard")
        samples.loc[pick, "time_s"] *= 200

    with_samples(cand, slow_down)
    out = cli.invoke(app, ["compare", str(base), str(cand), "--format", "json"])
    assert out.exit_code == 1, out.output
    changes = {(c["config_id"][:10], c["variant"]): c for c in json.loads(out.output)["changes"]}
    slow = changes[("n1_c4-8_8x", "standard")]
    assert slow["verdict"] == "slower"
    if rounds == "1":  # no interval at all: judged by the size of the change, and it says so
        assert "beyond x2" in slow["note"]
    same = changes[("n1_c4-4_8x", "standard")]
    if rounds == "1":  # unchanged, but no interval: too few rounds to say "same"
        assert same["verdict"] == "inconclusive" and "so no interval" in same["note"]
    else:  # real timing: two rounds' interval (t with 1 df) may or may not fit within 5%
        assert same["verdict"] in ("same", "inconclusive")


def test_a_huge_sweep_is_refused_before_it_is_expanded():
    """Defect 6: 10^6 configurations are one line in well under a second (not minutes of
    silence); --max-configs raises the limit, --yes lifts it."""
    import time

    channels = ",".join(str(i) for i in range(1, 1001))
    sizes = ",".join(str(i) for i in range(8, 1008))
    start = time.perf_counter()
    res = cli.invoke(app, ["run", "--in-channels", channels, "--size", sizes, "--dry-run"])
    assert res.exit_code == 2
    assert "more than 2,000 configurations" in res.output
    assert time.perf_counter() - start < 30  # generous: a CI machine can be slow
    few = ",".join(str(i) for i in range(1, 301))
    big = ["run", "--in-channels", few, "--size", "8,9,10", "--kernel", "3", "--stride", "1",
           "--dry-run"]  # fmt: skip
    assert cli.invoke(app, [*big, "--max-configs", "500"]).exit_code == 2
    listed = cli.invoke(app, [*big, "--max-configs", "900"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.startswith("900 configurations")
    assert cli.invoke(app, [*big, "--yes"]).exit_code == 0


@pytest.mark.slow
def test_a_run_says_how_long_it_will_take(tmp_path):
    res = cli.invoke(app, ["run", *TINY, "--rounds", "2", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    # 4 configurations (the quick preset's grids at 4 channels) x 2 variants x 0.02 s
    assert "4 configuration(s) x 1 environment(s): about 0.2 s (0.2 s of timed blocks" in (
        res.output
    )


LONG = ["--in-channels", "4,8", "--size", "8", "--kernel", "3", "--stride", "1",
        "--min-time", "30", "--rounds", "60", "--threads", "1", "--processes", "1"]  # fmt: skip


def _start_and_wait(out: Path):
    return start_run(out, LONG)


@pytest.mark.slow
@pytest.mark.parametrize("gap", [0.0, 0.05, 0.15, 0.3])
def test_a_second_ctrl_c_never_loses_what_the_first_saved(tmp_path, gap):
    """Defect 1: two SIGINTs ``gap`` seconds apart, in the first round: the interrupt-time
    checkpoint completes, the files say interrupted and are readable, and the exit is 130.
    (A second Ctrl-C 80 ms or more after the first used to land while the process unwound,
    after everything was saved, and killed it with SIGINT.)"""
    import signal
    import time

    out = tmp_path / "run"
    proc = _start_and_wait(out)
    time.sleep(1.0)  # inside the first round (a round here lasts about 1 s per configuration)
    proc.send_signal(signal.SIGINT)
    time.sleep(gap)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    loaded = results.load_results(out)
    assert loaded.meta["status"] == "interrupted"
    assert len(loaded.results) == 4  # every row there, measured or not_measured
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no half-written file


@pytest.mark.slow
def test_kill_9_before_the_first_round_ends_leaves_a_readable_run(tmp_path):
    """Defect 12: results are written before measuring and then every few seconds."""
    out = tmp_path / "run"
    proc = _start_and_wait(out)
    proc.kill()
    proc.communicate(timeout=60)
    loaded = results.load_results(out)
    # The files still say running; no process holds the run, so readers call it killed.
    assert json.loads((out / results.MANIFEST).read_text())["status"] == "running"
    assert loaded.meta["status"] == "killed"
    assert set(loaded.results.status) <= {"not_measured", "ok"} and len(loaded.results) == 4


def test_failures_are_counted_by_kind():
    from dscbench.export.console import failure_line

    table = pd.DataFrame(
        {
            "config_id": ["a", "a", "b", "b", "c", "c", "d", "d"],
            "backend": ["x"] * 8,
            "env": [""] * 8,
            "status": ["ok"] * 2 + ["build_error"] * 2 + ["parity_failed"] * 2 + ["skipped"] * 2,
        }
    )
    assert failure_line(table) == (
        "2 configuration(s) failed or were not measured: build_error 1, parity_failed 1 (exit 1)."
    )
    assert failure_line(table.iloc[:2]) == ""


FAULTY_BACKEND = """
import os, signal
import dscbench.backends.torch_eager as te
import dscbench.workers.local as ex
real_prepare = te.TorchCPU.prepare
def prepare(self, spec, variant, seed):
    prepared = real_prepare(self, spec, variant, seed)
    if spec.config_id.startswith(os.environ["RAISE_ON"]) and variant == "separable":
        def run():
            raise RuntimeError("the backend broke")
        return prepared._replace(run=run) if hasattr(prepared, "_replace") else type(prepared)(
            **{**vars(prepared), "run": run})
    return prepared
te.TorchCPU.prepare = prepare
real_turn = ex.LocalExecutor.turn
def turn(self, key, *args, **kwargs):
    if key.startswith(os.environ["CRASH_ON"]):
        os.kill(os.getpid(), signal.SIGSEGV)
    return real_turn(self, key, *args, **kwargs)
ex.LocalExecutor.turn = turn
"""


@pytest.mark.slow
def test_a_backend_that_raises_and_one_that_segfaults_in_a_worker(tmp_path):
    """One configuration's backend raises mid-run, another's worker dies of SIGSEGV: both
    fail only their rows, with their kind and cause, the rest is measured, and exit is 1."""
    import os
    import subprocess
    import sys

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(FAULTY_BACKEND)
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(hook), RAISE_ON="n1_c8-8_8x8", CRASH_ON="n1_c12-12_8x8")
    args = ["--in-channels", "4,8,12", "--size", "8", "--kernel", "3", "--stride", "1",
            "--min-time", "0.06", "--rounds", "2", "--warmup", "0", "--threads", "1",
            "--processes", "2", "--no-canary"]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "dscbench", "run", *args, "-o", str(out)],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    rs = results.load_results(out)
    status = rs.results.groupby("config_id").status.first()
    assert status.to_dict() == {
        "n1_c12-12_8x8_k3s1_float32_inference_t1": "worker_crashed",
        "n1_c4-4_8x8_k3s1_float32_inference_t1": "ok",
        "n1_c8-8_8x8_k3s1_float32_inference_t1": "runtime_error",
    }
    error = rs.results.set_index("config_id").error
    assert "the backend broke" in error["n1_c8-8_8x8_k3s1_float32_inference_t1"].iloc[0]
    assert "SIGSEGV" in error["n1_c12-12_8x8_k3s1_float32_inference_t1"].iloc[0]
    (traceback,) = [t for k, t in rs.meta["failures"].items() if k.startswith("n1_c8-8")]
    assert "RuntimeError: the backend broke" in traceback  # the cause keeps its traceback
    assert "runtime_error 1" in done.stdout and "worker_crashed 1" in done.stdout


@pytest.mark.slow
def test_a_dry_run_with_explicit_threads_never_imports_torch():
    """Planning 10,000 configurations takes well under a second when torch's import (a
    second by itself) is not needed: with --threads given, nothing asks torch anything."""
    import subprocess
    import sys

    code = (
        "import sys; from dscbench.cli import main\n"
        "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
        "print(code, 'torch' in sys.modules, file=sys.stderr)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, "run", "--in-channels", "4,8", "--size", "8",
         "--threads", "1", "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stderr.strip().splitlines()[-1] == "0 False", done.stderr
    assert "n1_c8-8_8x8_k3s2_float32_inference_t1" in done.stdout
