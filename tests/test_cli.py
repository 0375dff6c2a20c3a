"""The command line end to end: CliRunner for most paths, a real subprocess for the rest."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import dscbench
from dscbench import __version__, defaults, results
from dscbench.cli import app

cli = CliRunner()
TINY = [
    "--in-channels",
    "4",
    "--out-channels",
    "4,8",
    "--size",
    "8",
    "--kernel",
    "3",
    "--stride",
    "1",
    "--min-time",
    "0.02",
    "--rounds",
    "2",
    "--warmup",
    "0",
]


def python(*code: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *code], capture_output=True, text=True, timeout=300, **kw
    )


@pytest.mark.slow
def test_help_and_presets_do_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dscbench.cli import app\n"
        "r = CliRunner()\n"
        "assert r.invoke(app, ['--help']).exit_code == 0\n"
        "assert r.invoke(app, ['run', '--help']).exit_code == 0\n"
        "assert r.invoke(app, ['presets']).exit_code == 0\n"
        "print('torch' in sys.modules, 'pandas' in sys.modules)\n"
    )
    out = python("-c", code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False False"


def test_version_via_python_m():
    out = python("-m", "dscbench", "--version")
    assert out.returncode == 0
    assert out.stdout.strip() == f"dscbench {__version__}"


def test_presets_lists_the_shipped_presets():
    res = cli.invoke(app, ["presets"])
    assert res.exit_code == 0
    rows = {
        cells[0]: cells[1:4]
        for line in res.output.splitlines()
        if line.startswith("│") and (cells := [c.strip() for c in line.strip("│").split("│")])
    }
    # name -> configurations, min-time per variant, rounds
    assert rows == {
        "full": ["144", "1 s", "5"],
        "mobilenet-v1": ["9", "1.5 s", "5"],
        "quartznet-5x5": ["8", "1.5 s", "5"],
        "quick": ["10", "2 s", "5"],
    }


def test_env_json():
    import torch

    res = cli.invoke(app, ["env", "--json"])
    assert res.exit_code == 0
    info = json.loads(res.output)
    assert info["dscbench"] == __version__
    assert info["torch"]["num_threads"] == torch.get_num_threads()  # this process's torch
    assert info["cpu_count"] == os.cpu_count()
    assert info["libraries"]["torch"] == torch.__version__
    # The package's commit when it runs from a git checkout (as the tests do), else None.
    package = Path(dscbench.__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=package, capture_output=True)
        expected = head.stdout.decode().strip() if head.returncode == 0 else None
    except OSError:  # no git on this machine
        expected = None
    assert info["dscbench_git_sha"] == expected


def test_dry_run_lists_configs_with_counts():
    res = cli.invoke(
        app,
        [
            "run",
            "--dry-run",
            "--in-channels",
            "32",
            "--out-channels",
            "64",
            "--size",
            "56",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "n1_c32-64_56x56_k3s1_float32_inference_t1" in res.output
    assert "57.8M/7.33M" in res.output  # MACs standard / separable
    assert "7.89x" in res.output


def slow(*values):
    """A case the planner finds only after it has started the run's worker processes: seconds."""
    return pytest.param(*values, marks=pytest.mark.slow)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        slow(["--batch", "0"], "batch 0 must be positive"),
        (["--batch", "1,two"], "--batch: batch 'two' is not an integer"),
        slow(["--kernel", "4"], "kernel 4 is even"),
        slow(["--kernel", "9", "--size", "7"], "kernel 9 is larger than the 7x7 input"),
        slow(["--size", "0x5"], "height 0 must be positive"),
        (["--dtype", "int8"], "--dtype: unknown dtype 'int8'"),
        slow(["--backend", "tpu"], "unknown backend 'tpu' (known: torch-cpu, torch-cuda,"),
        slow(
            ["--mode", "training", "--backend", "onnxruntime-cpu"],
            "mode 'training' is not supported by onnxruntime-cpu",
        ),
        (["--optimizer", "rmsprop"], "--optimizer: optimizer 'rmsprop': not one of sgd, adam"),
        slow(["--model", "resnet50"], "unknown model 'resnet50' (built-in: mobilenet-v1,"),
        slow(["--model", "mobilenet-v1", "--depth", "4"], "--depth applies to xception-middle"),
        slow(["--model", "article", "--in-channels", "8"], "--in-channels: single-layer options"),
        slow(["--width-mult", "0.5"], "--width-mult: model options, used only with --model"),
        slow(["--model", "my_mod:build"], "model 'my_mod:build' needs --input-shape C,H,W"),
        slow(
            ["--model", "no_such_module_xyz:build", "--input-shape", "3,8,8"],
            "--model 'no_such_module_xyz:build': cannot import 'no_such_module_xyz'",
        ),
        slow(["--model", "mobilenet-v1", "--resolution", "16"], "resolution 16 is below 32"),
        (["--model", "article", "--preset", "quick"], "--model builds its own sweep"),
        slow(["--threads", "0"], "threads 0 must be positive"),
        (["--min-time", "abc"], "Invalid value for '--min-time'"),
        (["--min-time", "0"], "--min-time 0.0: must be a positive, finite number of seconds"),
        (["--rounds", "0"], "Invalid value for '--rounds'"),
        (["--rounds", "1.5"], "Invalid value for '--rounds'"),
        (["--min-time", "-1"], "Invalid value for '--min-time'"),
        (["--seed", "-1"], "Invalid value for '--seed'"),  # numpy's generator refuses it
        (["--preset", "nope"], "unknown preset 'nope'"),
        (["--spec", "missing.toml"], "--spec missing.toml: cannot read"),
        (["--spec", "x.toml", "--preset", "quick"], "give either --spec or --preset, not both"),
        (["--precision", "abc"], "--precision 'abc': not a number like 0.05 or 5%"),
        (["--precision", "150%"], "--precision '150%': must be between 0 and 100%"),
        (["--max-time", "60"], "--max-time limits --precision or --decide; give one of them"),
        (["--decide", "abc"], "--decide 'abc': not a number like 0.05 or 5%"),
        (["--decide", "0"], "--decide '0': must be between 0 and 100%"),
        (
            ["--decide", "5%", "--precision", "1%"],
            "--precision and --decide each add rounds to their own end; give one",
        ),
        (["--precision", "1%", "--max-time", "-1"], "Invalid value for '--max-time'"),
        (["--precision", "1%", "--max-time", "0"], "--max-time 0: must be a positive"),
        (["--env", "nameonly"], "--env 'nameonly': expected NAME=PYTHON[:VAR=VALUE,...]"),
        (["--env", "a=", "--env", "a=:X=1"], "--env: environment name(s) given twice: a"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message):
    res = cli.invoke(app, ["run", *args])
    assert res.exit_code == 2, res.output
    assert message in res.output
    assert "Traceback" not in res.output
    error_lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert error_lines and all(line.count("error:") == 1 for line in error_lines)


@pytest.mark.slow
def test_every_invalid_configuration_gets_its_own_line():
    res = cli.invoke(
        app,
        [
            "run",
            "--in-channels",
            "8",
            "--size",
            "8",
            "--kernel",
            "2,3,4",
            "--stride",
            "1",
            "--threads",
            "1",
        ],
    )
    assert res.exit_code == 2
    lines = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 2
    assert "k2s1" in lines[0] and "k4s1" in lines[1]


def test_in_channels_flag_resets_out_channels_to_equal():
    res = cli.invoke(app, ["run", "--dry-run", "--in-channels", "8", "--threads", "1"])
    assert res.exit_code == 0
    assert "c8-8_" in res.output and "c8-64_" not in res.output


def test_choices_are_case_insensitive():
    res = cli.invoke(
        app,
        ["run", "--dry-run", "--in-channels", "8", "--threads", "1", "--compile-mode",
         "Max-Autotune", "--ort-opt-level", "BASIC"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output


def test_help_lists_every_command_in_order():
    from typer.main import get_command

    names = ["run", "show", "plot", "report", "merge", "calibrate", "presets", "compare",
             "gate", "history", "accuracy", "predict", "export", "backends", "env"]  # fmt: skip
    assert list(get_command(app).commands) == names
    res = cli.invoke(app, ["--help"])
    assert res.exit_code == 0
    at = [res.output.index(f" {name} ") for name in names]
    assert at == sorted(at)


def test_bad_spec_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[grid]]\nin_channels = 8\nsize = 8\nkernel = [3, 'x']\n")
    res = cli.invoke(app, ["run", "--spec", str(bad)])
    assert res.exit_code == 2
    assert f"{bad} [[grid]] 1 kernel: kernel 'x' is not an integer" in res.output


@pytest.mark.slow
def test_run_writes_results_and_prints_the_table(tmp_path):
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", *TINY, "--threads", "1", "-o", str(out)])
    assert res.exit_code == 0, res.output
    loaded = results.load_results(out)
    table = loaded.results
    assert list(table.columns) == results.RESULT_COLUMNS
    assert len(table) == 4 and (table.status == "ok").all()
    assert set(table.variant) == {"standard", "separable"}
    assert (table.rounds == 2).all() and table.latency_median_s.gt(0).all()
    sep = table[table.variant == "separable"]
    assert sep.speedup.notna().all() and (sep.speedup_ci_low <= sep.speedup).all()
    assert (sep.speedup_rerun_low < sep.speedup).all() and (
        sep.speedup_rerun_high > sep.speedup
    ).all()
    assert loaded.meta["harness"]["between_run_sd"] == defaults.BETWEEN_RUN_SD
    # The kernel of each conv, named once per configuration: one conv for standard, two for
    # separable (depthwise, then pointwise), each a torch convolution backend.
    assert table.kernels.str.count(r" \+ ").tolist() == [0, 1, 0, 1]
    assert table.kernels.str.match(r"^(Mkldnn/\S+|Slow2d|\w+)( \+ (Mkldnn/\S+|Slow2d|\w+))?$").all()
    assert loaded.meta["status"] == "complete" and loaded.meta["rounds_done"] == 2
    assert loaded.meta["settings"]["min_time"] == 0.02
    # Measured in two worker processes, one round each; their logs are kept.
    assert loaded.meta["harness"]["processes"] == 2
    assert sorted(p.name for p in (out / "workers").iterdir()) == [
        "run-0.log",
        "run-1.log",
        "run-forks.log",  # the fork server they were forked from
    ]
    assert loaded.meta["harness"]["worker_start"] == {
        "run": "forked from a fork server that had imported torch"
    }
    assert sorted(set(loaded.samples.process)) == [0, 1]  # the unit of the intervals
    assert loaded.meta["harness"]["context"].startswith("steady state of one process")
    assert loaded.meta["canary"]["describe"]["implementation"]["version"] == 2
    assert len(loaded.meta["canary"]["samples"]) == 20  # 2 visits x 2 rounds, 5 after each
    import torch  # the workers run this interpreter

    assert loaded.meta["environment"]["torch"]["version"] == torch.__version__
    # Every timed block is a sample; the 4 rows spend at least 4 x --min-time in them together
    # (each pair of rows at least 2 x --min-time: visits top up their sets to their share).
    timed_s = loaded.meta["timings"]["timed_s"]
    assert timed_s == pytest.approx((loaded.samples.iterations * loaded.samples.time_s).sum())
    assert timed_s >= 4 * 0.02
    assert 0 <= loaded.meta["round_spread"] < 1  # how much the 2 rounds disagreed
    assert set(loaded.samples.config_id) == set(table.config_id)
    assert "speedup [95% CI]" in res.output and "4->8 @8 k3s1" in res.output
    assert "geometric-mean speedup" in res.output
    # The same directory again is refused, then allowed with --force.
    again = cli.invoke(app, ["run", *TINY, "-o", str(out)])
    assert again.exit_code == 2 and "use --force" in again.output
    assert cli.invoke(app, ["run", *TINY, "-o", str(out), "--force", "-q"]).exit_code == 0


def test_interrupt_keeps_what_was_measured(tmp_path, monkeypatch):
    from dscbench.workers import LocalExecutor

    real = LocalExecutor.turn
    calls = {"n": 0}

    def interrupted_in_round_two(self, key, blocks, rewarm, *args, **kwargs):
        # A visit's first turn re-warms (later turns top it up): 2 configurations, so the
        # 4th first turn is in round two.
        calls["n"] += bool(rewarm)
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, key, blocks, rewarm, *args, **kwargs)

    monkeypatch.setattr(LocalExecutor, "turn", interrupted_in_round_two)
    out = tmp_path / "run"
    args = ["run", *TINY, "--rounds", "3", "--threads", "1", "--processes", "1", "-o", str(out)]
    res = cli.invoke(app, args)
    assert res.exit_code == 130
    assert "interrupted" in res.output
    loaded = results.load_results(out)
    assert loaded.meta["status"] == "interrupted" and loaded.meta["rounds_done"] == 1
    assert sorted(loaded.results.drop_duplicates("config_id").rounds) == [1, 2]
    assert loaded.results.latency_median_s.notna().all()


@pytest.mark.slow
def test_real_subprocess_run(tmp_path):
    """The installed console script, as a user types it."""
    out = tmp_path / "run"
    script = Path(sys.executable).with_name("dscbench")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "dscbench"]
    proc = subprocess.run(
        [*command, "run", *TINY, "--kernel", "1,3", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    table = pd.read_csv(out / "results.csv")
    assert len(table) == 8 and (table.status == "ok").all()
    assert table.threads.nunique() == 1
    meta = json.loads((out / "run.json").read_text())
    assert meta["command"][-2:] == ["-o", str(out)]
    assert meta["schema_version"] == results.SCHEMA_VERSION


@pytest.mark.slow
@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_in_a_real_run_keeps_results(tmp_path, signum):
    out = tmp_path / "run"
    args = [
        "--in-channels",
        "4",
        "--size",
        "8",
        "--min-time",
        "30",
        "--rounds",
        "60",
        "--threads",
        "1",
        "-o",
        str(out),
    ]
    proc = subprocess.Popen(
        [sys.executable, "-m", "dscbench", "run", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120

    def rounds_done() -> int:  # the manifest is written before measuring, then as it goes
        try:
            return json.loads((out / "manifest.json").read_text())["rounds_done"]
        except (OSError, ValueError, KeyError):
            return 0

    while rounds_done() < 1 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert rounds_done() >= 1, "no checkpoint after the first round"
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "interrupted" and meta["rounds_done"] >= 1
    table = pd.read_parquet(out / "results.parquet")
    assert table.latency_median_s.notna().all()
    assert not [p for p in Path(out).iterdir() if p.name.startswith(".")]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--nope"], "error: No such option: --nope"),
        (["frobnicate"], "error: No such command 'frobnicate'."),
        (["run", "--bias=3"], "error: Option '--bias' does not take a value."),
        (["run", "--processes", "0"], "error: Invalid value for '--processes'"),
        (["run", "--interleave", "random"], "error: Invalid value for '--interleave'"),
    ],
)
def test_usage_errors_from_the_console_script_are_one_line(args, message):
    out = python("-c", "from dscbench.cli import main; main()", *args)
    assert out.returncode == 2
    assert out.stderr.startswith(message)
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


# ---------------------------------------------------------------------------------------------
# Backends on the command line
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_backend_all_runs_every_available_backend_side_by_side(tmp_path):
    from dscbench.backends import available_names

    out = tmp_path / "all"
    # One thread: an in-process run must not create onnxruntime's process-wide pool.
    args = ["run", *TINY, "--out-channels", "8", "--backend", "all", "--threads", "1"]
    res = cli.invoke(app, [*args, "-o", str(out)])
    assert res.exit_code == 0, res.output
    loaded = results.load_results(out)
    table = loaded.results
    names = available_names()
    assert {"torch-cpu", "torch-compile-cpu", "onnxruntime-cpu"} <= set(names)
    assert list(dict.fromkeys(table.backend)) == names
    assert (table.status == "ok").all()
    assert (table.parity_max_rel_err < table.parity_tolerance).all()
    compiled = table[table.backend == "torch-compile-cpu"]
    assert compiled.compile_s.gt(0).all()
    assert table[table.backend != "torch-compile-cpu"].compile_s.isna().all()
    assert table.prepare_s.gt(0).all() and (table.device_name != "").all()
    ort_rows = table[table.backend == "onnxruntime-cpu"]
    assert ort_rows.execution.str.contains(r"\[CPUExecutionProvider\], opt=all").all()
    assert set(loaded.meta["backends"]) == set(names)
    # Rows keep each variant's first compilation; every process compiles its own (two here),
    # so the run's total holds more compilations than the rows: a fact about counts, not
    # about how long the second compilation took (no timing ratio: the machine is shared).
    assert loaded.meta["harness"]["processes"] == 2
    assert loaded.meta["timings"]["compile_s"] > compiled.compile_s.sum()
    for name in names:
        assert f"{name}: separable vs standard over 1 configurations" in res.output
    assert "torch-compile-cpu: compiled 2 models in" in res.output
    assert "Parity with a float64 reference: 6 outputs checked, 0 out of tolerance" in res.output


@pytest.mark.slow
def test_an_unavailable_backend_is_one_line_and_exit_2_or_a_recorded_skip(tmp_path, monkeypatch):
    from dscbench import backends
    from dscbench.backends.base import Availability

    real = backends.availability
    monkeypatch.setattr(
        backends,
        "availability",
        lambda name: Availability(False, "no CUDA device") if name == "torch-cuda" else real(name),
    )
    # In this process, where the monkeypatch holds (workers report what they really see).
    args = ["run", *TINY, "--backend", "torch-cpu,torch-cuda", "--threads", "1", "--processes", "1"]
    res = cli.invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert res.exit_code == 2
    assert res.output.strip() == "error: backend 'torch-cuda' is not available: no CUDA device"
    assert not (tmp_path / "a").exists()
    res = cli.invoke(app, [*args, "--skip-unavailable", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    table = results.load_results(tmp_path / "b").results
    skipped = table[table.backend == "torch-cuda"]
    assert len(skipped) == 4 and (skipped.status == "skipped").all()
    assert (skipped.error == "backend torch-cuda is not available: no CUDA device").all()
    assert (table[table.backend == "torch-cpu"].status == "ok").all()
    assert "torch-cuda: separable vs standard: no configuration was measured. 2 skipped." in (
        res.output
    )


@pytest.mark.slow
def test_a_dtype_a_backend_lacks_is_an_error_with_a_hint_or_a_skip(tmp_path):
    args = ["run", *TINY, "--backend", "onnxruntime-cpu", "--dtype", "bfloat16", "--threads", "1"]
    res = cli.invoke(app, [*args, "-o", str(tmp_path / "a")])
    assert res.exit_code == 2
    lines = res.output.strip().splitlines()
    assert lines[0] == (
        "error: config n1_c4-4_8x8_k3s1_bfloat16_inference_t1 on onnxruntime-cpu: dtype "
        "'bfloat16' is not supported by onnxruntime-cpu (supported: float32, float16)"
    )
    assert lines[-1].startswith("error: (--skip-unavailable records configurations")
    res = cli.invoke(app, [*args, "--skip-unavailable", "-o", str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    table = results.load_results(tmp_path / "b").results
    assert (table.status == "skipped").all()


@pytest.mark.slow
def test_memory_format_is_a_sweep_axis(tmp_path):
    out = tmp_path / "fmt"
    args = ["run", *TINY, "--out-channels", "4", "--threads", "1"]
    res = cli.invoke(app, [*args, "--memory-format", "contiguous,nhwc", "-o", str(out)])
    assert res.exit_code == 0, res.output
    table = results.load_results(out).results
    assert list(dict.fromkeys(table.memory_format)) == ["contiguous", "channels_last"]
    assert table.config_id.str.endswith("_channels_last").sum() == 2
    assert table.execution.str.endswith("channels_last").sum() == 2
    assert "4->4 @8 k3s1 contiguous" in res.output and "4->4 @8 k3s1 channels_last" in res.output
    bad = cli.invoke(app, [*args, "--memory-format", "nchwc"])
    assert bad.exit_code == 2
    assert bad.output.strip() == (
        "error: --memory-format: unknown memory format 'nchwc' (known: contiguous, channels_last)"
    )


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--ort-opt-level", "max", "'max' is not one of 'disable', 'basic', 'extended'"),
        ("--ort-threadpool", "shared", "'shared' is not one of 'auto', 'global'"),
        ("--compile-mode", "fast", "'fast' is not one of 'default', 'reduce-overhead'"),
    ],
)
def test_bad_backend_options_are_one_line(flag, value, message):
    res = cli.invoke(app, ["run", *TINY, flag, value])
    assert res.exit_code == 2 and res.output.startswith(f"error: Invalid value for '{flag}'")
    assert message in res.output and len(res.output.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_run_whose_rounds_disagree_says_so(tmp_path, monkeypatch):
    from dscbench import stats

    monkeypatch.setattr(stats, "run_round_spread", lambda samples: 0.071)
    res = cli.invoke(app, ["run", *TINY, "--threads", "1", "-o", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert "warning: this run's rounds disagree by 7.1% (median over rows; steady runs stay " in (
        res.output.replace("\n", " ")
    )
    assert results.load_results(tmp_path / "r").meta["round_spread"] == 0.071


FAST = ["--min-time", "0.02", "--rounds", "2", "--warmup", "0", "--threads", "1"]


@pytest.mark.slow
def test_a_user_model_runs_in_workers_with_its_twin_and_breakdown(tmp_path):
    """Through worker processes (they import the user's module themselves), inference and
    training, with the breakdown printed and written."""
    out = tmp_path / "run"
    res = cli.invoke(
        app,
        [
            "run",
            "--model",
            "tests.user_models:small_cnn",
            "--input-shape",
            "3,16,16",
            "--mode",
            "inference,training",
            "--breakdown",
            *FAST,
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    loaded = results.load_results(out)
    table = loaded.results
    assert (table.status == "ok").all() and len(table) == 4
    assert set(table.model) == {"tests.user_models:small_cnn"}
    assert set(table.input_shape) == {"3x16x16"} and set(table.twin) == {"separable"}
    assert table.in_channels.eq(3).all() and table.kernel.isna().all()
    # float32 weights at least; a training step holds their gradients too
    training = table["mode"] != "inference"
    assert (table.peak_memory_bytes >= 4 * table.params).all()
    assert (table.peak_memory_bytes[training] > 2 * 4 * table.params[training]).all()
    flops = table.set_index(["mode", "variant"]).step_flops
    for v in ("standard", "separable"):  # a step: forward and the gradients, over 2x forward
        assert flops["training", v] > 2 * flops["inference", v]
    assert "train-sgd" in res.output and "twin separable" in res.output
    assert "MACs and params by layer type" in res.output and "depthwise conv" in res.output
    breakdown = pd.read_parquet(out / results.BREAKDOWN_PARQUET)
    assert list(breakdown.columns) == results.BREAKDOWN_COLUMNS
    sep = breakdown[(breakdown.variant == "separable") & breakdown.config_id.str.contains("inf")]
    assert sep.macs_share.sum() == pytest.approx(1.0)
    assert set(sep.layer_type) == {"conv1x1", "depthwise", "fc", "norm"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("tests.user_models:raises", "calling it raised RuntimeError: weights file not found"),
        ("tests.user_models:not_a_module", "returned dict, not a torch.nn.Module"),
    ],
)
def test_a_user_model_that_cannot_build_is_one_line(tmp_path, target, message):
    res = cli.invoke(
        app,
        ["run", "--model", target, "--input-shape", "3,8,8", *FAST, "-o", str(tmp_path / "r")],
    )
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not (tmp_path / "r").exists()


def test_a_user_model_that_does_not_fit_its_input_is_one_line(tmp_path):
    res = cli.invoke(
        app,
        [
            "run",
            "--model",
            "tests.user_models:small_cnn",
            "--input-shape",
            "5,16,16",
            "--processes",
            "1",
            *FAST,
            "-o",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 2, res.output
    assert "does not run on --input-shape 5,16,16" in res.output


@pytest.mark.slow
def test_training_on_onnxruntime_is_skipped_on_request(tmp_path):
    out = tmp_path / "run"
    res = cli.invoke(
        app,
        [
            "run",
            "--model",
            "article",
            "--backend",
            "torch-cpu,onnxruntime-cpu",
            "--mode",
            "inference,training",
            "--skip-unavailable",
            "--processes",
            "1",
            *FAST,
            "-o",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    table = results.load_results(out).results.set_index(["backend", "mode", "variant"])
    assert table.loc[("onnxruntime-cpu", "training", "standard"), "status"] == "skipped"
    ort = table.loc[("onnxruntime-cpu", "inference", "separable")]
    assert ort.status == "ok" and ort.parity_max_rel_err < 1e-4  # the exported network
    assert ort.prepare_s > 0
    assert table.loc[("torch-cpu", "training", "separable"), "status"] == "ok"
