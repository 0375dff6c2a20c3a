"""Hostile inputs, second round (issue 17): a filter that could run code, merges of different
sweeps, two writers in one run, settings that change under --resume, flags that do nothing,
stored runs that misstate their state, signals while starting or merging. Each test fails
without its fix."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import rich.text
import typer.main
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dscbench import lock, merge, results, shards
from dscbench import where as where_filter
from dscbench.cli import app
from dscbench.commands.run.resume import resume_arguments, resume_differences
from dscbench.errors import SpecError

cli = CliRunner()
BASE = Path(__file__).parent / "data" / "compare" / "baseline"
TINY = ["--size", "8", "--kernel", "3", "--stride", "1", "--min-time", "0.02", "--rounds", "2",
        "--warmup", "0", "--threads", "1", "--processes", "1", "--no-canary"]  # fmt: skip


def invoke(args: list[str]):
    res = cli.invoke(app, args)
    assert "Traceback" not in res.output, res.output
    return res


def one_line(res) -> str:
    return " ".join(res.output.split())


# ---------------------------------------------------------------------------------------------
# 1: --where is a filter, never code
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("in_channels > 0 and @pd.io.common.os.system('touch {file}') == 0", "'@' names"),
        ("in_channels > 0 and pd.io.common.os.system('touch {file}') == 0", "calls are"),
        ("in_channels > 0 and __import__('os').system('touch {file}') == 0", "calls are"),
        ("backend.__class__.__mro__ == 1", "attribute access is"),
        ("[c for c in 'touch {file}'] == 1", "ListComp is"),
        ("in_channels[0] == 1", "subscripts are"),
        ("(lambda: 1) == 1", "lambdas are"),
        ("in_channels > 2 ** 99999999", "'**' is"),
        ("in_channels > 'x' * 10**9", "'**' is"),
        ("in_channels > 'x' * 1000000000", "is not a number"),
        ("nosuch > 1", "no column 'nosuch'"),
        ("in_channels", "not a condition"),
        ("backend > 3", "compares values of different kinds"),
        ("(((((", "not a filter"),
        ("x" * 3000, "at most 2000"),
    ],
)  # fmt: skip
def test_where_refuses_anything_but_a_filter(tmp_path, expression, message):
    file = tmp_path / "FILE"
    res = invoke(["show", str(BASE), "--where", expression.format(file=file)])
    assert res.exit_code == 2, res.output
    assert message in one_line(res)
    assert not file.exists()  # nothing ran


TABLE = pd.DataFrame(
    {
        "in_channels": pd.array([8, 16, 32, 64], dtype="Int64"),
        "out_channels": pd.array([16, 16, 32, None], dtype="Int64"),
        "kernel": [3, 5, 3, 7],
        "backend": ["torch-cpu", "onnxruntime-cpu", "torch-cpu", "torch-cpu"],
        "speedup": [0.5, 1.5, float("nan"), 2.0],
    }
)


@pytest.mark.parametrize(
    ("expression", "rows"),
    [
        ("in_channels >= 16 and kernel == 3", [2]),
        ("in_channels >= 16 & kernel == 3", [2]),  # pandas' precedence: & binds like and
        ("16 <= in_channels < 64", [1, 2]),
        ("kernel in [5, 7] or backend == 'onnxruntime-cpu'", [1, 3]),
        ("kernel == [5, 7]", [1, 3]),
        ("kernel not in (3,)", [1, 3]),
        ("not (backend == 'torch-cpu')", [1]),
        ("~(backend == 'torch-cpu') | in_channels == 8", [0, 1]),
        ("out_channels / in_channels >= 2", [0]),  # a missing value matches nothing
        ("speedup > 1", [1, 3]),  # nor does NaN
        ("speedup <= 1", [0]),
        ("in_channels % 16 == 0 and -kernel < -4", [1, 3]),
        ("backend == \"torch-cpu\" and\n in_channels > 8", [2, 3]),
    ],
)  # fmt: skip
def test_where_selects_the_rows_it_says(expression, rows):
    assert list(TABLE.index[where_filter.evaluate(TABLE, expression)]) == rows


def test_where_on_the_command_line_keeps_pairs_and_filters():
    table = results.load_results(BASE).results
    res = invoke(["show", str(BASE), "--where", "in_channels >= 32 and variant == 'standard'"])
    assert res.exit_code == 0, res.output
    kept = set(table[table.in_channels >= 32].config_id)
    assert 0 < len(kept) < len(set(table.config_id))
    assert f"over {len(kept)} configurations" in one_line(res)


def test_the_readme_says_what_where_accepts():
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    assert "--where" in readme and "never evaluated as Python" in readme


# ---------------------------------------------------------------------------------------------
# 2, 6, 22: shards are balanced, an empty one is valid, merge checks they are one sweep
# ---------------------------------------------------------------------------------------------

KEYS = st.lists(st.text(min_size=1, max_size=30), min_size=0, max_size=80, unique=True)


@given(keys=KEYS, count=st.integers(1, 12), seed=st.randoms())
def test_shards_are_balanced_disjoint_complete_and_independent_of_order(keys, count, seed):
    parts = [shards.select(keys, str, shards.Shard(k, count)) for k in range(1, count + 1)]
    assert sorted(k for part in parts for k in part) == sorted(keys)
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1  # balanced by count
    shuffled = list(keys)
    seed.shuffle(shuffled)
    again = [shards.select(shuffled, str, shards.Shard(k, count)) for k in range(1, count + 1)]
    assert [sorted(p) for p in again] == [sorted(p) for p in parts]  # the sweep decides


def test_twelve_configurations_in_three_shards_are_four_each():
    keys = [f"n1_c{c}-{c}_8x8_k3s1_float32_inference_t1@torch-cpu" for c in range(1, 13)]
    assert [len(shards.select(keys, str, shards.Shard(k, 3))) for k in (1, 2, 3)] == [4, 4, 4]
    # Pinned: other machines and versions must agree on the partition of a sweep.
    owner = shards.owners(keys, 3)
    assert [owner[k] for k in keys] == [1, 2, 3, 2, 1, 3, 2, 3, 2, 3, 1, 1]


def shard_run(out: Path, channels: str, shard: str):
    res = invoke(["run", *TINY, "--in-channels", channels, "--shard", shard, "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return results.load_results(out)


@pytest.mark.slow
def test_merge_refuses_shards_of_different_sweeps(tmp_path):
    a = shard_run(tmp_path / "a", "8,16", "1/2")
    shard_run(tmp_path / "b", "8,32", "2/2")
    assert a.meta["shard"]["sweep_configurations"] == 2
    assert a.meta["shard"]["partition"] == shards.PARTITION
    res = invoke(["merge", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "m")])
    assert res.exit_code == 2
    assert f"{tmp_path / 'b'}: a shard of another sweep than {tmp_path / 'a'}" in one_line(res)
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_an_empty_shard_is_an_empty_complete_run_and_merges(tmp_path):
    runs = [shard_run(tmp_path / f"s{k}", "8,16", f"{k}/3") for k in (1, 2, 3)]
    assert sorted(len(r.results) for r in runs) == [0, 2, 2]  # 2 configurations, 3 shards
    empty = next(r for r in runs if r.results.empty)
    assert empty.meta["status"] == "complete" and empty.meta["n_configurations"] == 0
    paths = [str(tmp_path / f"s{k}") for k in (1, 2, 3)]
    res = invoke(["merge", *paths, "-o", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    merged = results.load_results(tmp_path / "m")
    assert merged.meta["status"] == "complete" and merged.meta["n_configurations"] == 2
    assert merged.meta["configurations_sha256"] == runs[0].meta["shard"]["sweep_sha256"]
    assert sorted(set(merged.results.config_id)) == [
        "n1_c16-16_8x8_k3s1_float32_inference_t1",
        "n1_c8-8_8x8_k3s1_float32_inference_t1",
    ]


def test_shards_without_their_sweep_are_refused(tmp_path):
    meta = {"shard": {"index": 1, "count": 2}}
    runs = [results.ResultSet(dict(meta), pd.DataFrame(), pd.DataFrame()) for _ in range(2)]
    with pytest.raises(merge.MergeError, match="does not record which sweep"):
        merge._same_sweep([tmp_path / "a", tmp_path / "b"], runs)


# ---------------------------------------------------------------------------------------------
# 3: one writer per run directory
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("hostile") / "run"
    res = invoke(["run", *TINY, "--in-channels", "4", "-q", "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


def interrupted_copy(finished: Path, tmp_path: Path, **meta_changes) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    manifest = json.loads((out / results.MANIFEST).read_text())
    (out / results.MANIFEST).write_text(json.dumps(dict(manifest, status="interrupted")))
    meta = json.loads((out / results.RUN_JSON).read_text())
    meta.update(meta_changes)
    (out / results.RUN_JSON).write_text(json.dumps(meta))
    return out


@pytest.mark.slow
def test_a_second_writer_is_refused_naming_the_first(finished, tmp_path):
    out = interrupted_copy(finished, tmp_path)
    with lock.hold(out):
        resumed = invoke(["run", *TINY, "--in-channels", "4", "--resume", str(out)])
        again = invoke(["run", *TINY, "--in-channels", "4", "-o", str(out), "--force"])
        assert lock.holder(out)["pid"] == os.getpid()
    for res in (resumed, again):
        assert res.exit_code == 2, res.output
        assert f"another dscbench is writing this run (pid {os.getpid()} on " in one_line(res)
    assert lock.holder(out) is None and not (out / lock.LOCK).exists()
    res = invoke(["run", *TINY, "--in-channels", "4", "--resume", str(out)])
    assert res.exit_code == 0, res.output  # free again


@pytest.mark.slow
def test_a_stale_lock_is_taken_over_with_a_note(finished, tmp_path):
    out = interrupted_copy(finished, tmp_path)
    dead = {"pid": 2**22 + 12345, "host": "gone", "since": "2026-01-01", "command": ["x"]}
    (out / lock.LOCK).write_text(json.dumps(dead))  # left by a killed process: no flock
    assert lock.holder(out) is None
    res = invoke(["run", *TINY, "--in-channels", "4", "--resume", str(out)])
    assert res.exit_code == 0, res.output
    assert "took over a stale lock" in one_line(res) and "pid 4206649 on gone" in one_line(res)
    assert results.load_results(out).meta["status"] == "complete"


@pytest.mark.slow
def test_a_resume_while_the_run_is_measuring_is_refused(tmp_path):
    from tests.conftest import start_run

    out = tmp_path / "r"
    args = ["--size", "8", "--kernel", "3", "--stride", "1", "--in-channels", "4", "--rounds",
            "50", "--min-time", "5", "--warmup", "0", "--threads", "1", "--processes", "1",
            "--no-canary"]  # fmt: skip
    proc = start_run(out, args)
    try:
        res = invoke(["run", *args, "--resume", str(out)])
        assert res.exit_code == 2, res.output
        assert f"another dscbench is writing this run (pid {proc.pid} " in one_line(res)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    assert proc.returncode == 130


# ---------------------------------------------------------------------------------------------
# 4, 10, 19: --resume: settings include environments; run.json is checked; alone, as recorded
# ---------------------------------------------------------------------------------------------


def test_resume_refuses_other_environment_variables_and_interpreters():
    old = {"env_specs": {"b": {"python": "/usr/bin/python3", "variables": {"OMP_NUM_THREADS":
           "1"}}}, "variables": {"ONEDNN_MAX_CPU_ISA": "SSE41"}}  # fmt: skip
    new = json.loads(json.dumps(old))
    new["env_specs"]["b"]["variables"]["OMP_NUM_THREADS"] = "2"
    new["variables"] = {}
    found = "; ".join(resume_differences(old, new))
    assert "the environments (--env interpreters and variables) differ (b " in found
    assert "'OMP_NUM_THREADS': '1'" in found and "'OMP_NUM_THREADS': '2'" in found
    assert "the environment variables (OMP_*, ONEDNN_*, ...) differ (ONEDNN_MAX_CPU_ISA" in found
    assert resume_differences(old, old) == []


def test_resume_under_another_tuning_variable_is_refused(finished, tmp_path, monkeypatch):
    """And one that torch sets for itself while it works is no change of setting."""
    out = interrupted_copy(finished, tmp_path)
    import dscbench

    # As if the process had been started with it (what run.json records).
    monkeypatch.setitem(dscbench.ENVIRON_AT_START, "ONEDNN_MAX_CPU_ISA", "SSE41")
    res = invoke(["run", *TINY, "--in-channels", "4", "--resume", str(out)])
    assert res.exit_code == 2, res.output
    assert "the environment variables (OMP_*, ONEDNN_*, ...) differ" in one_line(res)
    assert "ONEDNN_MAX_CPU_ISA None -> 'SSE41'" in one_line(res)
    monkeypatch.delitem(dscbench.ENVIRON_AT_START, "ONEDNN_MAX_CPU_ISA")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    res = invoke(["run", *TINY, "--in-channels", "4", "--resume", str(out)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("settings", {"seed": "zero"}, 'settings.seed is "zero", not an integer'),
        ("settings", {"rounds": 0}, "settings.rounds is 0, not a positive integer"),
        ("status", "finished-ish", 'status is "finished-ish", not one of running'),
        ("rounds_done", -1, "rounds_done is -1, not a count"),
        ("command", "rm -rf /", 'command is "rm -rf /", not a list of strings'),
        ("shard", {"index": "one", "count": 2}, 'shard.index is "one", not a positive'),
        ("confirmation", [{"config_id": 1}], "not a list of confirmation records"),
    ],
)  # fmt: skip
def test_run_json_fields_are_checked_on_read(finished, tmp_path, field, value, message):
    meta = json.loads((finished / results.RUN_JSON).read_text())
    if isinstance(value, dict) and isinstance(meta.get(field), dict):
        value = {**meta[field], **value}
    out = interrupted_copy(finished, tmp_path, **{field: value})
    for args in (["show", str(out)], ["run", *TINY, "--in-channels", "4", "--resume", str(out)]):
        res = invoke(args)
        assert res.exit_code == 2, res.output
        assert message in one_line(res)


@pytest.mark.slow
def test_resume_alone_finishes_the_run_as_recorded(finished, tmp_path):
    # As the console script records it (in a test, sys.argv is pytest's).
    recorded = ["/x/bin/dscbench", "run", *TINY, "--in-channels", "4", "-q", "-o", "elsewhere"]
    out = interrupted_copy(finished, tmp_path, command=recorded)
    res = invoke(["run", "--resume", str(out)])
    assert res.exit_code == 0, res.output
    assert "resuming with the recorded command: dscbench run " + " ".join(
        resume_arguments(recorded)
    ) in one_line(res)
    done = results.load_results(out)
    assert done.meta["status"] == "complete" and len(done.meta["resumed"]) == 1
    assert done.meta["command"] == recorded and (done.results.rounds == 2).all()
    # Given arguments must still match the recorded ones.
    again = interrupted_copy(finished, tmp_path / "2", command=recorded)
    res = invoke(["run", "--resume", str(again), "--rounds", "3"])
    assert res.exit_code == 2 and "rounds 2 -> 3" in one_line(res)
    assert "resume it with the command it was started with: dscbench run --size 8" in one_line(res)


# ---------------------------------------------------------------------------------------------
# 5, 12, 16: flags that would do nothing, or something else than asked
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "xception-middle", "--depth", "0"], "--depth 0: a model has at least 1"),
        (["--model", "xception-middle", "--depth", "-2"], "--depth -2: a model has at least 1"),
        (["--model", "mobilenet-v1", "--twin", "dense"], "--twin dense applies to models of "
         "your own"),
        (["--optimizer", "adam"], "--optimizer applies to --mode training, and this sweep "
         "measures inference only"),
        (["--optimizer", "adam", "--mode", "inference", "--model", "mobilenet-v1"],
         "--optimizer applies to --mode training"),
        (["--shards", "5", "--shard", "1/2"], "--shards 5 goes with --shard auto; --shard 1/2 "
         "says N itself"),
        (["--interleave", "block"], "--interleave block orders the blocks of several "
         "environments; give two or more --env"),
        (["--interleave", "block", "--env", "a="], "give two or more --env"),
    ],
)  # fmt: skip
def test_flags_that_would_do_nothing_are_refused(args, message):
    res = invoke(["run", *args, "--dry-run"])
    assert res.exit_code == 2, res.output
    assert message in one_line(res)
    assert len(res.output.strip().splitlines()) == 1


def test_depth_is_kept_as_given():
    res = invoke(["run", "--model", "xception-middle", "--depth", "1", "--dry-run"])
    assert res.exit_code == 0 and "_d1_" in res.output


def test_a_dry_run_with_an_unavailable_backend_exits_2_like_the_run(monkeypatch):
    from dscbench import backends
    from dscbench.backends.base import Availability

    real = backends.availability

    def fake(name, *, quick=False):
        if name == "onnxruntime-cpu":
            return Availability(False, "no such runtime here")
        return real(name, quick=quick)

    monkeypatch.setattr(backends, "availability", fake)
    args = ["run", *TINY, "--in-channels", "4", "--backend", "onnxruntime-cpu,torch-cpu"]
    res = invoke([*args, "--dry-run"])
    assert res.exit_code == 2
    assert "backend 'onnxruntime-cpu' is not available: no such runtime here" in one_line(res)
    skipped = invoke([*args, "--dry-run", "--skip-unavailable"])
    assert skipped.exit_code == 0 and "backend unavailable: no such runtime here" in one_line(
        skipped
    )


# ---------------------------------------------------------------------------------------------
# 13: a stored run says what state it is in, and which files it has
# ---------------------------------------------------------------------------------------------


def killed_copy(finished: Path, tmp_path: Path) -> Path:
    """A run as kill -9 leaves it: journal and manifest say running, no tables yet, a lock
    file whose holder is gone."""
    out = tmp_path / "killed"
    shutil.copytree(finished, out)
    for name in (results.RESULTS_PARQUET, results.RESULTS_CSV, results.SAMPLES_PARQUET):
        (out / name).unlink()
    manifest = json.loads((out / results.MANIFEST).read_text())
    manifest.update(status="running", consolidated=False, rounds_done=1)
    (out / results.MANIFEST).write_text(json.dumps(manifest))
    meta = json.loads((out / results.RUN_JSON).read_text())
    (out / results.RUN_JSON).write_text(json.dumps(dict(meta, status="running")))
    (out / lock.LOCK).write_text(json.dumps({"pid": 1, "host": "x"}))
    return out


def test_show_and_report_of_a_killed_run_say_so(finished, tmp_path):
    out = killed_copy(finished, tmp_path)
    res = invoke(["show", str(out)])
    assert res.exit_code == 0, res.output
    text = one_line(res)
    assert f"Results in {out}/ (run.json, journal.jsonl)" in text
    assert "results.parquet" not in text and "(exit 1)" not in text
    assert "The run was killed before it finished (1 of 2 round(s) done" in text
    assert f"`dscbench run --resume {out}` finishes it" in text
    report = invoke(["report", str(out)])
    assert report.exit_code == 0 and "killed" in report.output and "running" not in report.output
    # While a process holds the run, it is running, not killed.
    with lock.hold(out):
        assert results.load_results(out).meta["status"] == "running"


def test_show_of_an_interrupted_run_says_how_to_finish_it(finished, tmp_path):
    out = interrupted_copy(finished, tmp_path)
    meta = json.loads((out / results.RUN_JSON).read_text())
    (out / results.RUN_JSON).write_text(json.dumps(dict(meta, status="interrupted")))
    res = invoke(["show", str(out), "-q"])
    assert res.exit_code == 0
    assert "The run was interrupted (2 of 2 round(s) done)" in one_line(res)


# ---------------------------------------------------------------------------------------------
# 17: signals while the workers start
# ---------------------------------------------------------------------------------------------

SLOW_PYTHON = """\
#!{python}
import os, sys, time
open(os.path.join(os.environ["PIDS"], str(os.getpid())), "w").close()
time.sleep(float(os.environ.get("SLOW_START_S", "4")))
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize(("method", "starting"), [("fork", 2), ("spawn", 4)])
def test_signals_while_workers_start_stop_them_and_exit_130(tmp_path, method, starting):
    """Interrupted while the slow interpreters start: with fork, the two environments' fork
    servers; with spawn, the four workers."""
    pids = tmp_path / "pids"
    pids.mkdir()
    python = tmp_path / "slow-python"
    python.write_text(SLOW_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    out = tmp_path / "run"
    envs = [f"--env=a={python}:PIDS={pids}", f"--env=b={python}:PIDS={pids}"]
    args = ["--size", "8", "--kernel", "3", "--stride", "1", "--in-channels", "4",
            "--min-time", "0.02", "--rounds", "2", "--warmup", "0", "--threads", "1",
            "--processes", "2", "--start-method", method]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "dscbench", "run", *args, *envs, "-o", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(list(pids.iterdir())) < starting and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(pids.iterdir())) == starting, "the workers did not start"
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, output
    assert "interrupted while starting: nothing was measured" in output
    assert "Traceback" not in output
    workers = [int(p.name) for p in pids.iterdir()]
    assert not any(alive(pid) for pid in workers), "workers outlived the run"
    assert not out.exists()  # nothing was measured: no directory left behind


# ---------------------------------------------------------------------------------------------
# 18: merge writes its output as a set
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_shards(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("shards")
    for k in (1, 2):
        shard_run(root / f"s{k}", "4,8", f"{k}/2")
    return [root / "s1", root / "s2"]


def test_a_signal_during_the_merge_write_is_held_and_the_merge_finishes(
    two_shards, tmp_path, monkeypatch
):
    real = results.write_run

    def write_and_get_interrupted(directory, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C in the middle of the write
        real(directory, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(results, "write_run", write_and_get_interrupted)
    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        res = invoke(["merge", *map(str, two_shards), "-o", str(tmp_path / "m")])
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])
    assert res.exit_code == 0, res.output
    assert "Merged 2 shards (4 rows, status complete)" in res.output
    assert results.load_results(tmp_path / "m").meta["status"] == "complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no staging left


def test_a_merge_that_fails_while_writing_leaves_the_old_output_whole(
    two_shards, tmp_path, monkeypatch
):
    target = tmp_path / "m"
    res = invoke(["merge", *map(str, two_shards), "-o", str(target)])
    assert res.exit_code == 0
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def fail(directory, *args, **kwargs):
        (Path(directory) / results.RESULTS_PARQUET).write_bytes(b"half")
        raise results.ResultsError(f"cannot write results to {directory}: No space left")

    monkeypatch.setattr(results, "write_run", fail)
    res = invoke(["merge", *map(str, two_shards), "-o", str(target), "--force"])
    assert res.exit_code == 2 and "No space left" in res.output
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# ---------------------------------------------------------------------------------------------
# 23: help texts keep their brackets
# ---------------------------------------------------------------------------------------------


def _help_texts(command, path):
    yield path, command.help or ""
    for param in command.params:
        yield f"{path} {param.name}", getattr(param, "help", None) or ""
    for name, sub in getattr(command, "commands", {}).items():
        yield from _help_texts(sub, f"{path} {name}")


def test_no_help_text_loses_text_to_rich_markup():
    texts = list(_help_texts(typer.main.get_command(app), "dscbench"))
    assert len(texts) > 80
    lost = [
        where
        for where, text in texts
        if rich.text.Text.from_markup(text).plain != text.replace("\\[", "[")
    ]
    assert lost == []
    res = cli.invoke(app, ["--help"])
    assert "'dscbench[plot]')" in res.output


def test_where_parse_is_pure():
    """parse() only reads the text: the checked tree holds names and constants only."""
    tree = where_filter.parse("in_channels > 3 and backend == 'x'")
    names = {type(n).__name__ for n in __import__("ast").walk(tree)}
    assert "Call" not in names and "Attribute" not in names
    with pytest.raises(SpecError):
        where_filter.parse(textwrap.dedent("open('/etc/passwd').read()"))


def test_a_dry_run_checks_a_user_models_output_as_the_run_does():
    """A dry run answers "would this run?": a forward returning a tuple is exit 2 there too."""
    args = ["run", "--model", "tests.output_models:two_outputs", "--input-shape", "3,8,8"]
    res = invoke([*args, "--dry-run"])
    assert res.exit_code == 2
    assert "its forward returned a tuple of 2 (Tensor, Tensor), not one tensor" in one_line(res)
