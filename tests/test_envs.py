"""Interleaved environments: --env parsing, the worker protocol (in-process with a fake clock,
and real worker processes), handshakes, and workers that die."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dscbench import __version__, compare, parity, results, runner
from dscbench.backends.base import CompileFailed
from dscbench.cli import app
from dscbench.errors import SpecError
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, RunSettings
from dscbench.workers import client, failures, server
from dscbench.workers.cache import PreparedCache
from dscbench.workers.local import LocalExecutor
from dscbench.workers.protocol import PROTOCOL_VERSION, PrepareRequest
from tests.tables import tables_of

from .conftest import FakeBackend, FakeClock, spec

cli = CliRunner()
TINY = ["--in-channels", "4", "--size", "8", "--kernel", "3", "--stride", "1", "--threads", "1",
        "--min-time", "0.02", "--rounds", "2", "--warmup", "0"]  # fmt: skip


# ---------------------------------------------------------------------------------------------
# --env
# ---------------------------------------------------------------------------------------------


def test_parse_env_forms(tmp_path):
    here = client.parse_env("base=")
    assert (here.name, here.python, here.variables) == ("base", sys.executable, {})
    tuned = client.parse_env("old=:ONEDNN_MAX_CPU_ISA=SSE41,OMP_NUM_THREADS=1")
    assert tuned.python == sys.executable
    assert tuned.variables == {"ONEDNN_MAX_CPU_ISA": "SSE41", "OMP_NUM_THREADS": "1"}
    by_path = client.parse_env(f"v={sys.executable}:X=a=b")
    assert by_path.python == sys.executable and by_path.variables == {"X": "a=b"}
    on_path = client.parse_env("p=sh")
    assert Path(on_path.python).name == "sh" and Path(on_path.python).is_absolute()
    assert client.parse_env("v.2-rc+1=").name == "v.2-rc+1"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base", "--env 'base': expected NAME=PYTHON[:VAR=VALUE,...]"),
        ("=python3", "--env '=python3': expected NAME=PYTHON[:VAR=VALUE,...]"),
        ("a b=", "--env 'a b=': environment name 'a b' may use letters, digits and _ . + - only"),
        (
            "a=/no/such/python",
            "--env 'a=/no/such/python': interpreter '/no/such/python' does not exist",
        ),
        (
            "a=no-such-python-anywhere",
            "--env 'a=no-such-python-anywhere': interpreter "
            "'no-such-python-anywhere' is not on PATH",
        ),
        ("a=:X", "--env 'a=:X': 'X' is not VAR=VALUE"),
        ("a=:1X=2", "--env 'a=:1X=2': '1X=2' is not VAR=VALUE"),
    ],
)
def test_bad_env_texts_are_one_line(text, message):
    with pytest.raises(SpecError) as err:
        client.parse_env(text)
    assert str(err.value) == message


def test_env_names_must_differ():
    with pytest.raises(SpecError, match="given twice: a"):
        client.parse_envs(["a=", "b=", "a=:X=1"])


def test_workers_spin_briefly_unless_told_otherwise(monkeypatch):
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    assert client.worker_environment(client.parse_env("a="))["GOMP_SPINCOUNT"] == "10000"
    assert (
        client.worker_environment(client.parse_env("a=:GOMP_SPINCOUNT=5"))["GOMP_SPINCOUNT"] == "5"
    )
    monkeypatch.setenv("GOMP_SPINCOUNT", "7")
    assert client.worker_environment(client.parse_env("a="))["GOMP_SPINCOUNT"] == "7"


def test_bad_env_on_the_command_line_is_exit_2():
    res = cli.invoke(app, ["run", *TINY, "--env", "a=/no/such/python"])
    assert res.exit_code == 2
    assert res.output.strip() == (
        "error: --env 'a=/no/such/python': interpreter '/no/such/python' does not exist"
    )


# ---------------------------------------------------------------------------------------------
# The protocol, in process, on a fake clock
# ---------------------------------------------------------------------------------------------


class Loopback(client.WorkerExecutor):
    """A WorkerExecutor whose 'process' is a LocalExecutor answering through the real
    protocol code (JSON both ways, server.dispatch), so both environments share a fake clock."""

    def __init__(self, name: str, backend: FakeBackend, tmp_path: Path):
        super().__init__(client.EnvSpec(name, sys.executable), tmp_path)
        self.local = LocalExecutor({"fake": backend})
        self.requests: list[str] = []

    def _exchange(self, op, args, timeout):
        self.requests.append(op)
        request = json.loads(json.dumps({"op": op, "args": args}))
        return json.loads(json.dumps(server.dispatch(self.local, request)))


def test_the_protocol_carries_a_sweep_of_two_environments(tmp_path):
    clock = FakeClock()

    def cost(factor):
        return lambda s, v: factor * (2e-4 if v == "standard" else 1e-4)

    executors = {
        "base": Loopback("base", FakeBackend(clock, cost(1.0)), tmp_path),
        "head": Loopback("head", FakeBackend(clock, cost(1.25)), tmp_path),
    }
    info = executors["base"]._call("hello", {})
    assert info["protocol"] == PROTOCOL_VERSION and info["dscbench"] == __version__
    specs = {"fake": [vars(spec())]}
    for ex in executors.values():
        (report,) = ex.setup({"ort_opt_level": "all"}, specs).values()
        assert report.available and report.device_name == "fake cpu" and report.cannot == []
    state = runner.run_sweep(
        [Case(spec(), "fake"), Case(spec(in_channels=16, out_channels=16), "fake")],
        RunSettings(min_time=0.02, rounds=3, warmup=0.0, parity=False),
        executors,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0, switch_settle=2e-4),
        verify_counts=False,
    )
    assert set(executors["head"].requests) == {"setup", "prepare", "calibrate", "turn"}
    table, samples = tables_of(state, {"fake": ("cpu", "fake cpu")})
    assert set(table.env) == {"base", "head"} and (table.status == "ok").all()
    head = table[(table.env == "head") & (table.variant == "standard")]
    assert head.latency_median_s.iloc[0] == pytest.approx(2.5e-4)
    rs = results.ResultSet(
        {"environments": {"base": {}, "head": {}}, "schema_version": 3}, table, samples
    )
    comparison = compare.compare_envs(rs)
    assert {c.verdict for c in comparison.changes} == {"slower"}
    assert all(c.ratio == pytest.approx(1.25) for c in comparison.changes)


def test_a_user_error_in_a_worker_is_one_line_and_a_bug_keeps_its_traceback(tmp_path):
    loop = Loopback("x", FakeBackend(FakeClock(), lambda s, v: 1e-4), tmp_path)

    def refuse(**args):  # what onnxruntime-cpu's plan says of two thread counts, say
        raise SpecError("--ort-threadpool 'global': onnxruntime-cpu has one process-wide pool")

    loop.local.setup = refuse
    with pytest.raises(client.EnvError) as err:
        loop._call("setup", {"options": {}, "specs": {}})
    assert str(err.value) == (
        "environment x: --ort-threadpool 'global': onnxruntime-cpu has one process-wide pool"
    )
    with pytest.raises(client.WorkerBug) as bug:
        loop._call("turn", {"key": "never prepared", "blocks": [], "rewarm": [], "settle_s": 0})
    assert "KeyError" in str(bug.value) and "the worker's traceback" in str(bug.value)
    assert "Traceback (most recent call last)" in str(bug.value)


CPU_OOM = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 120000000000 bytes. Error code 12 (Cannot allocate memory)"
)


@pytest.mark.parametrize(
    ("exc", "building", "status"),
    [
        (RuntimeError(CPU_OOM), True, "out_of_memory"),  # an input of 3x100000x100000
        (RuntimeError(CPU_OOM), False, "out_of_memory"),
        (MemoryError(), True, "out_of_memory"),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), False, "out_of_memory"),
        (
            RuntimeError("Failed to allocate memory for requested buffer of size 4096"),
            False,
            "out_of_memory",
        ),
        (
            CompileFailed.from_error("torch.compile", RuntimeError("CUDA out of memory")),
            True,
            "out_of_memory",
        ),
        (
            CompileFailed.from_error("torch.compile", TypeError("graph break")),
            True,
            "compile_error",
        ),
        (RuntimeError("no kernel for this"), True, "build_error"),
        (RuntimeError("no kernel for this"), False, "runtime_error"),
    ],
)
def test_failure_kinds_are_classified_in_one_place(exc, building, status):
    assert failures.failure_status(exc, building=building) == status


def test_memory_running_out_while_building_is_out_of_memory():
    def fail_prepare(s, v):
        return RuntimeError(CPU_OOM)

    local = LocalExecutor({"fake": FakeBackend(FakeClock(), lambda s, v: 1e-4,
                                               fail_prepare=fail_prepare)})  # fmt: skip
    report = local.prepare("k", vars(spec()), "fake", seed=0, first=True)
    assert report.status == "out_of_memory"
    assert report.error == f"RuntimeError: {CPU_OOM}"


def test_a_check_that_runs_out_of_memory_fails_its_row_and_a_bug_keeps_its_traceback(
    monkeypatch,
):
    local = LocalExecutor({"fake": FakeBackend(FakeClock(), lambda s, v: 1e-4)})
    raised: list[Exception] = []

    def check(*args, **kwargs):
        raise raised[0]

    monkeypatch.setattr(parity, "check", check)
    raised.append(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
    report = local.prepare("k", vars(spec()), "fake", seed=0, parity=True)
    assert report.status == "out_of_memory"
    assert report.error == "parity check: RuntimeError: CUDA out of memory. Tried to allocate 2 GiB"
    raised[0] = KeyError("a bug in dscbench")  # a layer's parity: nothing of the user's ran
    with pytest.raises(KeyError, match="a bug in dscbench"):
        local.prepare("k", vars(spec()), "fake", seed=0, parity=True)


def test_prepare_travels_as_one_request_whether_its_arguments_are_positional_or_named(tmp_path):
    wire = {"key": "k@fake", "spec": {"batch": 1}, "backend": "fake", "seed": 3, "parity": False,
            "verify_counts": True, "fresh": False, "first": False, "keep_s": 0.0}  # fmt: skip
    assert PrepareRequest("k@fake", {"batch": 1}, "fake", 3, False, True).to_json() == wire
    loop = Loopback("x", FakeBackend(FakeClock(), lambda s, v: 1e-4), tmp_path)
    sent = []
    loop._exchange = lambda op, args, timeout: sent.append(args) or {"ok": True, "result": {}}
    loop.prepare("k@fake", {"batch": 1}, "fake", 3, False, True)
    loop.prepare(key="k@fake", spec={"batch": 1}, backend="fake", seed=3, verify_counts=True)
    assert sent == [wire, wire]


def test_the_build_cache_keeps_the_most_recent_cases_within_its_budget():
    cache = PreparedCache(10)
    for key in ("a", "b"):
        cache.put(key, {}, 4)
    assert cache.get("a") == {}  # now the most recent
    cache.put("c", {}, 4)
    assert (cache.get("b"), list(cache.items), cache.used) == (None, ["a", "c"], 8)
    cache.drop("a")
    assert (list(cache.items), cache.used) == (["c"], 4)


def test_serve_answers_line_by_line_and_stops_at_bye():
    import io

    requests = io.StringIO(
        json.dumps({"op": "nonsense"}) + "\n\n" + json.dumps({"op": "bye"}) + "\n"
        + json.dumps({"op": "hello"}) + "\n"  # never read
    )  # fmt: skip
    out = io.StringIO()
    server.serve(requests, out, executor=LocalExecutor())
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert answers[0]["ok"] is False and answers[0]["message"] == "no op 'nonsense'"
    assert answers[1] == {"ok": True, "result": None}
    assert len(answers) == 2


# ---------------------------------------------------------------------------------------------
# Real worker processes
# ---------------------------------------------------------------------------------------------


def fake_python(tmp_path: Path, hello: dict) -> Path:
    """An 'interpreter' whose worker answers the handshake with ``hello``."""
    script = tmp_path / "python-fake"
    body = (
        "import json, sys; sys.stdin.readline(); "
        f"print(json.dumps({{'ok': True, 'result': {hello!r}}}), flush=True); sys.stdin.read()"
    )
    # Its fork server (started with -c) does not start, as in a dscbench without one.
    script.write_text(f'#!/bin/sh\n[ "$1" = "-c" ] && exit 1\nexec {sys.executable} -c "{body}"\n')
    script.chmod(0o755)
    return script


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hello", "message"),
    [
        ({"protocol": PROTOCOL_VERSION, "dscbench": "0.0.1"}, "has dscbench 0.0.1, this one is"),
        ({"protocol": 99, "dscbench": __version__}, "speaks worker protocol 99, this dscbench"),
    ],
)
def test_a_handshake_mismatch_is_one_line_and_exit_2(tmp_path, hello, message):
    python = fake_python(tmp_path, hello)
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", *TINY, "--env", "a=", "--env", f"b={python}", "-o", str(out)])
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert line.startswith(f"error: environment b ({python}) ") and message in line
    assert not out.exists()  # nothing was measured, nothing is left behind


@pytest.mark.slow
def test_an_interpreter_without_dscbench_is_told_how_to_install_it(tmp_path):
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    res = cli.invoke(app, ["run", *TINY, "--env", "a=", "--env", f"b={python}",
                           "-o", str(tmp_path / "run")])  # fmt: skip
    assert res.exit_code == 2
    assert res.output.strip() == (
        f"error: environment b ({python}) cannot import dscbench; install dscbench into that "
        f"environment: {python} -m pip install 'dscbench[ort]' (or -e /path/to/checkout)"
    )


@pytest.mark.parametrize(
    ("body", "ending"),
    [
        (
            f'exec {sys.executable} -c "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)"',
            "killed by SIGSEGV; no output",
        ),
        (
            'echo "cannot map libtorch_cpu.so" >&2; exit 3',
            "exit status 3; its log ends: cannot map libtorch_cpu.so",
        ),
    ],
)
def test_a_worker_that_dies_at_start_up_says_how(tmp_path, body, ending):
    python = tmp_path / "python-dies"
    python.write_text(f"#!/bin/sh\n{body}\n")
    python.chmod(0o755)
    out = tmp_path / "run"
    res = cli.invoke(app, ["run", *TINY, "--env", f"b={python}", "-o", str(out)])
    assert res.exit_code == 2, res.output
    assert res.output.strip() == (
        f"error: environment b ({python}): the worker did not start ({ending})"
    )
    assert not out.exists()


CRASH_HOOK = """
print("a sitecustomize that talks at start-up")
import os, signal
import dscbench.workers.local as ex
real = ex.LocalExecutor.turn
def turn(self, key, *args, **kwargs):
    if key.startswith(os.environ["CRASH_ON"]):
        os.kill(os.getpid(), signal.SIGSEGV)
    return real(self, key, *args, **kwargs)
ex.LocalExecutor.turn = turn
"""


@pytest.mark.slow
def test_real_workers_interleave_and_a_crashing_one_fails_only_its_rows(tmp_path):
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CRASH_HOOK)  # loaded by the worker's interpreter
    out = tmp_path / "run"
    crash_on = "n1_c8-8_8x8"
    res = cli.invoke(
        app,
        ["run", *TINY, "--in-channels", "4,8", "--env", "base=",
         "--env", f"head=:PYTHONPATH={hook},CRASH_ON={crash_on}", "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 1, res.output  # some rows failed
    assert "worker processes died" in res.output
    rs = results.load_results(out)
    rows = rs.results.set_index(["config_id", "env", "variant"]).status
    crashed = rows[rows.index.get_level_values(0).str.startswith(crash_on)]
    assert crashed.xs("head", level="env").eq("worker_crashed").all()
    assert crashed.xs("base", level="env").eq("ok").all()
    others = rows[~rows.index.get_level_values(0).str.startswith(crash_on)]
    assert len(others) == 4 and others.eq("ok").all()  # 4->4 in both environments
    error = rs.results[rs.results.status == "worker_crashed"].error.iloc[0]
    assert "the worker of environment head died (killed by SIGSEGV)" in error
    assert rs.meta["worker_crashes"] == {"head": 1}
    assert set(rs.meta["environments"]) == {"base", "head"}
    assert rs.meta["environments"]["head"]["variables"]["CRASH_ON"] == crash_on
    log = "".join(p.read_text() for p in (out / "workers").glob("head-*.log"))
    # What it printed is kept out of the protocol, in the fork server's log (it ran there).
    assert "a sitecustomize that talks at start-up" in log
    assert rs.meta["environment"].get("torch") is None  # the coordinator never imported torch
    comparison = compare.compare_envs(rs)
    verdicts = {c.config_id: c.verdict for c in comparison.changes}
    assert verdicts[next(k for k in verdicts if k.startswith(crash_on))] == "failed"
    assert {v for k, v in verdicts.items() if not k.startswith(crash_on)} <= {
        "same",
        "inconclusive",
    }
    # Workers start in parallel, so the run waited for the slowest environment's start: a
    # real process spawn and handshake, never the 0.0 default.
    starts = {name: env["start_s"] for name, env in rs.meta["environments"].items()}
    assert all(s > 0 for s in starts.values()), starts
    assert rs.meta["timings"]["worker_start_s"] == max(starts.values())


@pytest.mark.slow
def test_a_killed_worker_is_noticed_not_waited_for(tmp_path):
    worker_ = client.WorkerExecutor(client.parse_env("a="), tmp_path)
    worker_.start()
    assert worker_.process.proc is not None
    worker_.process.proc.kill()
    with pytest.raises(runner.ExecutorLost, match="killed by SIGKILL"):
        worker_.turn("x", [], [], 0.0)
    worker_.restart()  # a fresh process answers again
    assert worker_.hello()["dscbench"] == __version__ and worker_.starts == 2
    worker_.close()
    assert os.path.exists(worker_.log_path)


@pytest.mark.slow
def test_decide_measures_its_extra_rounds_in_fresh_worker_processes(tmp_path):
    """--decide with a threshold no run can settle: rounds go on past the first two until
    --max-time, each extra one in a new process of each environment (real restarts), and the
    samples name those processes; compare's unit is the process pair."""
    out = tmp_path / "run"
    res = cli.invoke(
        app,
        ["run", *TINY, "--threads", "1", "--env", "base=", "--env", "head=", "--processes",
         "2", "--decide", "0.01%", "--max-time", "12", "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "--decide 0.0%: " in res.output and "stopped because --max-time ran out" in res.output
    # the run's summary says what it can resolve at its --decide threshold: nothing that fine
    assert "Resolution: this run (head against base) can tell changes of 0.01% or more apart " in (
        " ".join(res.output.split())
    )
    rs = results.load_results(out)
    p = rs.meta["precision"]
    assert p["mode"] == "decide" and p["extra_rounds"] >= 1 and p["unmet"]
    # a row "slower" at so fine a threshold is then re-measured: 5 more rounds, fresh processes
    confirming = 5 if rs.meta.get("confirmation") else 0
    assert rs.meta["rounds_done"] == 2 + p["extra_rounds"] + confirming
    s = rs.samples
    for env in ("base", "head"):
        mine = s[s.env == env]
        first = sorted(set(mine[mine["round"] < 2].process))
        extra = mine[mine["round"] >= 2].groupby("round").process.unique()
        assert first == [0, 1]
        assert [list(v) for v in extra] == [[2 + i] for i in range(len(extra))]
    assert rs.meta["timings"]["restart_s"] > 0
    comparison = compare.compare_envs(rs)
    assert {c.rounds[0] for c in comparison.changes} <= {
        2 + p["extra_rounds"] + n for n in (0, confirming)
    }
