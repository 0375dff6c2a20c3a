"""The fork server (workers/forkserver.py): workers forked from a process that has imported
torch are new processes that serve the protocol, say how they end, restart by forking again,
and an environment whose server cannot start spawns its workers instead."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dscbench import __version__, results, runner
from dscbench.cli import app
from dscbench.workers import client, forkserver

pytestmark = pytest.mark.skipif(not forkserver.supported(), reason="fork servers need Linux")

TINY = ["--batch", "1", "--in-channels", "4", "--out-channels", "4", "--size", "8",
        "--kernel", "3", "--rounds", "2", "--min-time", "0.02", "--warmup", "1"]  # fmt: skip


def server_for(tmp_path, spec):
    server = forkserver.ForkServer(
        spec.python, client.worker_environment(spec), tmp_path / "a-forks.log"
    )
    server.start()
    assert server.ready(120), server.why
    return server


@pytest.mark.slow
def test_forked_workers_are_new_processes_that_answer_die_and_fork_again(tmp_path):
    spec = client.parse_env("a=")
    server = server_for(tmp_path, spec)
    assert server.start_s > 0
    workers = [client.WorkerExecutor(spec, tmp_path, i, forks=server) for i in range(2)]
    for w in workers:
        assert w.start()["dscbench"] == __version__
    pids = [w.process.proc.pid for w in workers]
    assert len({*pids, server.proc.pid, os.getpid()}) == 4  # each its own process
    assert all(w.forked == w.starts == 1 for w in workers)
    assert "torch-cpu" in workers[0].available()
    # A forked worker's end is reported as a spawned one's: its parent (the server) reaps it.
    workers[0].process.proc.kill()
    with pytest.raises(runner.ExecutorLost, match=r"died \(killed by SIGKILL\)"):
        workers[0].turn("x", [], [], 0.0)
    workers[0].restart()  # forked again, a new process
    assert workers[0].forked == workers[0].starts == 2
    assert workers[0].process.proc.pid not in pids and workers[0].hello()["dscbench"]
    proc = workers[1].process.proc
    workers[1].close()  # says bye: the worker ends at once, exit status 0
    assert proc.returncode == 0
    assert server.usable  # a worker still uses it
    workers[0].close()
    assert not server.usable and server.proc.returncode == 0  # the last one stopped it
    log = (tmp_path / "a-0.log").read_text()
    assert "start 1: forked" in log and "start 2: forked" in log


def test_a_child_that_exits_reports_its_code_and_the_server_reaps_it(tmp_path):
    server = forkserver.ForkServer(sys.executable, dict(os.environ), tmp_path / "f.log")
    server.start()
    assert server.ready(120), server.why
    child = server.fork(tmp_path / "w.log")
    assert child.poll() is None  # serving, waiting for requests
    child.stdin.close()  # the end of its requests: it ends, exit status 0
    assert child.wait(timeout=30) == 0 and child.poll() == 0
    with pytest.raises(subprocess.TimeoutExpired):  # a worker waiting for requests
        server.fork(tmp_path / "w2.log").wait(timeout=0.05)
    server.close()
    with pytest.raises(forkserver.ForkFailed):
        server.fork(tmp_path / "w3.log")


@pytest.mark.slow
def test_an_environment_whose_fork_server_does_not_start_spawns_its_workers(tmp_path):
    """An interpreter that runs workers but not the fork server (as a dscbench without it
    would): the run goes on with spawned workers and run.json says why."""
    python = tmp_path / "python-no-forks"
    python.write_text(
        f'#!/bin/sh\nif [ "$1" = "-c" ]; then echo "no fork server here" >&2; exit 3; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    python.chmod(0o755)
    out = tmp_path / "run"
    res = CliRunner().invoke(
        app, ["run", *TINY, "--env", "a=", "--env", f"b={python}", "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    meta = results.load_results(out).meta
    assert meta["harness"]["worker_start"] == {
        "a": "forked from a fork server that had imported torch",
        "b": "spawned (fresh interpreters): its fork server was not used (it did not answer "
        "(exit status 3))",
    }
    assert "no fork server here" in (out / "workers" / "b-forks.log").read_text()


@pytest.mark.slow
def test_start_method_spawn_starts_fresh_interpreters(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(app, ["run", *TINY, "--start-method", "spawn", "-o", str(out)])
    assert res.exit_code == 0, res.output
    meta = results.load_results(out).meta
    assert meta["harness"]["worker_start"] == {"run": "spawned (fresh interpreters)"}
    assert not (out / "workers" / "run-forks.log").exists()


def test_start_method_is_a_closed_choice():
    res = CliRunner().invoke(app, ["run", *TINY, "--start-method", "vfork", "--dry-run"])
    assert res.exit_code == 2 and "'vfork' is not one of 'fork', 'spawn'" in res.output
