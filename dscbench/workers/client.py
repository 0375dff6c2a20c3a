"""Interleaved environments, the coordinator's side: ``dscbench run --env
NAME=PYTHON[:VAR=VALUE,...]``.

Each environment is measured by worker processes (server.py) of its own interpreter with its
extra environment variables (forked from the environment's fork server, forkserver.py, or
spawned), so one run can A/B two virtualenvs (a library's release against its
next version) or one interpreter under two settings (``ONEDNN_MAX_CPU_ISA=AVX2``). The
coordinator drives the rounds and interleaves the environments' blocks (runner.py); this module
parses ``--env``, starts and checks the workers and calls them (WorkerExecutor: the Executor
protocol as requests over transport.py's pipes).

Two facts of shared CPUs shape how workers run:

- **Spinning threads.** OpenMP threads (libgomp, which CPU builds of torch use) spin for a few
  milliseconds after every parallel region before they sleep. A worker that just finished a
  turn would then steal cores from the next worker's timed blocks: on the 2-core development
  VM, a 2-thread 32-channel conv ran 1.45x slower right after another process's turn than after
  its own (benchmarks/REPORT-gate.md, `spin`). Workers of interleaved environments therefore
  start with ``GOMP_SPINCOUNT=10000`` (about 0.3 ms of spinning: 1.08x there, and the conv's
  own speed unchanged, 175 vs 174 us), unless the environment or its ``--env`` variables set
  it, and each turn begins with ``switch_settle`` seconds of untimed calls.
- **onnxruntime's thread pools** spin after a run too; interleaved runs use per-session pools
  that stop spinning when a run returns (see backends/ort.py).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dscbench.about import __version__
from dscbench.errors import DscbenchError, SpecError
from dscbench.models import CALLER_CWD_VARIABLE
from dscbench.workers.forkserver import ForkFailed, ForkServer
from dscbench.workers.forkserver import supported as forks_supported
from dscbench.workers.protocol import (
    PROTOCOL_VERSION,
    BackendReport,
    CalibrateReport,
    CountReport,
    ExecutorLost,
    PrepareReport,
    PrepareRequest,
    TurnReport,
    request,
)
from dscbench.workers.transport import CannotStart, WorkerProcess

ENV_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")
SPIN_DEFAULTS = {"GOMP_SPINCOUNT": "10000"}
START_TIMEOUT_S = 300.0  # importing torch on a cold disk can take a while
TURN_TIMEOUT_S = 600.0  # a turn lasts milliseconds; this only catches a hung kernel
COUNT_TIMEOUT_S = 1800.0  # counting under valgrind: first calls JIT under emulation
WORKER_MODULE = "dscbench.worker"  # python -m WORKER_MODULE: stable across dscbench versions


class EnvError(DscbenchError):
    """An environment that cannot take part: bad --env text, missing interpreter, no dscbench,
    a different dscbench or protocol, a backend it lacks."""


class WorkerBug(RuntimeError):
    """An exception in dscbench's own code inside a worker; carries the worker's traceback."""


@dataclass(frozen=True)
class EnvSpec:
    """One ``--env``: a name, an interpreter and extra environment variables."""

    name: str
    python: str  # as resolved to a path
    variables: dict[str, str] = field(default_factory=dict)
    text: str = ""  # what the user typed

    def to_json(self) -> dict[str, Any]:
        return {"python": self.python, "variables": dict(self.variables), "given": self.text}


def parse_env(text: str) -> EnvSpec:
    """``NAME=PYTHON[:VAR=VALUE,...]``. An empty PYTHON means this interpreter; a bare name is
    looked up on PATH."""
    flag = f"--env {text!r}"
    name, sep, rest = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise SpecError(f"{flag}: expected NAME=PYTHON[:VAR=VALUE,...]")
    if not ENV_NAME.match(name):
        raise SpecError(
            f"{flag}: environment name {name!r} may use letters, digits and _ . + - only"
        )
    python, colon, assignments = rest.partition(":")
    variables: dict[str, str] = {}
    if colon:
        for item in assignments.split(","):
            var, eq, value = item.partition("=")
            var = var.strip()
            if not eq or not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", var):
                raise SpecError(f"{flag}: {item.strip()!r} is not VAR=VALUE")
            variables[var] = value
    return EnvSpec(name, _interpreter(python.strip(), flag), variables, text)


def _interpreter(python: str, flag: str) -> str:
    """The path of ``python``: this interpreter when empty, a path as given, a name on PATH."""
    if not python:
        return sys.executable
    if os.sep in python or (os.altsep and os.altsep in python):
        resolved = str(Path(python).expanduser().absolute())
        if not Path(resolved).is_file():
            raise SpecError(f"{flag}: interpreter {python!r} does not exist")
        if not os.access(resolved, os.X_OK):
            raise SpecError(f"{flag}: interpreter {python!r} is not executable")
        return resolved
    found = shutil.which(python)
    if found is None:
        raise SpecError(f"{flag}: interpreter {python!r} is not on PATH")
    return found


def parse_envs(texts: list[str]) -> list[EnvSpec]:
    specs = [parse_env(t) for t in texts]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise SpecError(f"--env: environment name(s) given twice: {', '.join(dupes)}")
    return specs


@dataclass(frozen=True)
class Launch:
    """How worker processes (and fork servers) start beyond their environment: a command in
    front of the interpreter (valgrind, for --measure instructions), variables of dscbench's
    own, and how long to wait for their hello."""

    wrapper: tuple[str, ...] = ()
    variables: tuple[tuple[str, str], ...] = ()
    start_timeout: float = START_TIMEOUT_S


def worker_environment(
    spec: EnvSpec, spin_defaults: bool = True, launch: Launch = Launch()
) -> dict[str, str]:
    """The process environment of ``spec``'s worker: ours, its variables, and (when
    ``spin_defaults``, for interleaved environments) SPIN_DEFAULTS where neither sets them;
    then ``launch``'s variables."""
    env = dict(os.environ)
    for var, value in SPIN_DEFAULTS.items() if spin_defaults else ():
        if var not in env and var not in spec.variables:
            env[var] = value
    env.update(spec.variables)
    # Models of the user's own (--model pkg.mod:build) import from where dscbench was run,
    # as they would in-process; the worker itself starts elsewhere (transport.py).
    env[CALLER_CWD_VARIABLE] = os.getcwd()
    env.update(launch.variables)
    return env


class WorkerExecutor:
    """The coordinator's handle on one environment's worker process; the Executor protocol
    (local.py documents each call) as requests over the worker's pipes."""

    restartable = True

    def __init__(
        self,
        spec: EnvSpec,
        log_dir: Path,
        replica: int = 0,
        *,
        spin_defaults: bool = True,
        forks: ForkServer | None = None,
        launch: Launch = Launch(),
    ):
        self.spec = spec
        self.launch = launch
        self.replica = replica
        self.spin_defaults = spin_defaults  # interleaved environments: short OpenMP spinning
        self.forks = forks  # the environment's fork server; None: spawn a fresh interpreter
        if forks is not None:
            forks.users.add(id(self))
        self.log_path = Path(log_dir) / f"{spec.name or 'run'}-{replica}.log"
        self.process = WorkerProcess(self.log_path, self.label())
        self._setup: tuple[dict[str, Any], dict[str, list[dict[str, Any]]]] | None = None
        self.info: dict[str, Any] = {}
        self.starts = 0
        self.forked = 0  # of the starts, how many were forked from the fork server
        self.start_s = 0.0  # seconds from spawning to a checked handshake, all starts
        self._spawned_at = 0.0

    # -- starting and stopping -------------------------------------------------------------

    def start(self) -> dict[str, Any]:
        """Start the worker and check its handshake; return what it says of itself."""
        self.spawn()
        return self.handshake()

    def spawn(self) -> None:
        """Start the worker process: forked from the environment's fork server when it has
        a usable one, else a fresh interpreter (it imports dscbench and torch while we go
        on)."""
        self._spawned_at = time.perf_counter()
        if self.forks is not None and self.forks.usable:
            try:
                self.process.fork(self.forks, f"start {self.starts + 1}: forked")
                self.starts += 1
                self.forked += 1
                return
            except ForkFailed as exc:  # the server died: spawn this one and the next ones
                self.forks.why = str(exc)
                self.forks.close()
        command = [*self.launch.wrapper, self.spec.python, "-m", WORKER_MODULE]
        try:
            self.process.spawn(
                command,
                worker_environment(self.spec, self.spin_defaults, self.launch),
                f"start {self.starts + 1}: {' '.join(command)}",
            )
        except CannotStart as exc:
            raise EnvError(f"{self.where()}: cannot start ({exc})") from None
        self.starts += 1

    def handshake(self) -> dict[str, Any]:
        """Ask the spawned worker for its hello, wait for it and check it (protocol, dscbench
        version)."""
        self.ask_hello()
        return self.check_hello()

    def ask_hello(self) -> None:
        """Send the hello request (start_workers asks every worker before reading any answer,
        so they start up in parallel)."""
        with contextlib.suppress(OSError):  # it already died: reading its answer says why
            self.process.send(request("hello", {}))

    def check_hello(self) -> dict[str, Any]:
        """Read and check the answer to ``ask_hello``."""
        try:
            info = self._answer("hello", self.process.receive("hello", self.launch.start_timeout))
        except ExecutorLost as lost:
            raise self._start_failure(lost.how) from None
        self._check_handshake(info)
        self.info = info
        if self._setup is not None:  # a restart: the new worker needs the same backends
            self._call("setup", {"options": self._setup[0], "specs": self._setup[1]})
        self.start_s += time.perf_counter() - self._spawned_at
        return info

    def _start_failure(self, how: str = "") -> EnvError:
        """Why the worker did not answer its hello: how it ended (a signal, an exit status, no
        answer in time) and the end of its log."""
        tail = self.process.log_tail()
        where = self.where()
        if "No module named dscbench" in tail or "No module named 'dscbench'" in tail:
            return EnvError(
                f"{where} cannot import dscbench; install dscbench into that environment: "
                f"{self.spec.python} -m pip install 'dscbench[ort]' (or -e /path/to/checkout)"
            )
        log = f"its log ends: {tail}" if tail else "no output"
        return EnvError(
            f"{where}: the worker did not start ({'; '.join(filter(None, (how, log)))})"
        )

    def _check_handshake(self, info: dict[str, Any]) -> None:
        where = self.where()
        if info.get("protocol") != PROTOCOL_VERSION:
            raise EnvError(
                f"{where} speaks worker protocol {info.get('protocol')}, this dscbench "
                f"{PROTOCOL_VERSION}; install the same dscbench ({__version__}) into it"
            )
        if info.get("dscbench") != __version__:
            raise EnvError(
                f"{where} has dscbench {info.get('dscbench')}, this one is {__version__}; "
                f"install the same dscbench into it: {self.spec.python} -m pip install "
                f"'dscbench[ort]=={__version__}' (or -e /path/to/checkout)"
            )

    def label(self) -> str:
        """'the worker of environment head' (its process number when there are several)."""
        text = f"the worker of environment {self.spec.name}" if self.spec.name else "the worker"
        return text + (f" (process {self.replica})" if self.replica else "")

    def where(self) -> str:
        name = f"environment {self.spec.name}" if self.spec.name else "the worker"
        return f"{name} ({self.spec.python})"

    def restart(self) -> None:
        """Stop what is left of the worker and start a fresh one (same backends)."""
        self.begin_restart()
        self.finish_restart()

    def begin_restart(self) -> None:
        """The first half of ``restart``: stop the worker, spawn its successor and ask for its
        hello, without waiting (several restart in parallel; ``finish_restart`` waits)."""
        self.process.close()
        try:
            self.spawn()
        except EnvError as exc:
            raise ExecutorLost(str(exc)) from None
        self.ask_hello()

    def finish_restart(self) -> None:
        """Wait for the successor's hello and check it (and set its backends up again)."""
        try:
            self.check_hello()
        except EnvError as exc:
            raise ExecutorLost(str(exc)) from None

    def close(self) -> None:
        """Stop the worker; the last worker of a fork server stops the server too."""
        self.process.close()
        if self.forks is not None:
            self.forks.users.discard(id(self))
            if not self.forks.users:
                self.forks.close()

    # -- requests ----------------------------------------------------------------------------

    def _call(self, op: str, args: dict[str, Any], timeout: float | None = None) -> Any:
        """Send one request and interpret the answer: a result, a user error (EnvError, exit
        2) or a bug in the worker (WorkerBug, with the worker's traceback)."""
        return self._answer(op, self._exchange(op, args, timeout))

    def _exchange(self, op: str, args: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """One request line out, one answer line back, over the worker's pipes."""
        return self.process.exchange(op, request(op, args), timeout)

    def _answer(self, op: str, answer: dict[str, Any]) -> Any:
        if answer.get("ok"):
            return answer.get("result")
        if answer.get("user"):
            prefix = f"environment {self.spec.name}: " if self.spec.name else ""
            raise EnvError(f"{prefix}{answer.get('message')}")
        raise WorkerBug(
            f"a bug in dscbench inside {self.label()} "
            f"({op}): {answer.get('type')}: {answer.get('message')}\n"
            f"--- the worker's traceback ---\n{answer.get('traceback')}"
        )

    # -- the Executor protocol ---------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        return self.info

    def available(self) -> list[str]:
        return list(self._call("available", {}))

    def setup(
        self, options: dict[str, Any], specs: dict[str, list[dict[str, Any]]]
    ) -> dict[str, BackendReport]:
        self._setup = (options, specs)
        answer = self._call("setup", {"options": options, "specs": specs})
        return {name: BackendReport.from_json(r) for name, r in answer.items()}

    def prepare(self, *args: Any, **kwargs: Any) -> PrepareReport:
        request = PrepareRequest(*args, **kwargs)  # refused here when malformed, as locally
        return PrepareReport.from_json(self._call("prepare", request.to_json()))

    def calibrate(self, key: str, harness: dict[str, Any]) -> CalibrateReport:
        answer = self._call("calibrate", {"key": key, "harness": harness})
        return CalibrateReport.from_json(answer)

    def count(self, key: str, iterations: int) -> CountReport:
        answer = self._call("count", {"key": key, "iterations": iterations}, COUNT_TIMEOUT_S)
        return CountReport.from_json(answer)

    def turn(
        self, key: str, blocks: list[tuple[str, int]], rewarm: list[str], settle_s: float
    ) -> TurnReport:
        args = {"key": key, "blocks": blocks, "rewarm": list(rewarm), "settle_s": settle_s}
        try:
            answer = self._call("turn", args, timeout=TURN_TIMEOUT_S)
        except KeyboardInterrupt as exc:
            # The worker finishes its turn in milliseconds: keep what it measured.
            exc.partial = self._late_answer()  # type: ignore[attr-defined]
            raise
        return TurnReport.from_json(answer)

    def _late_answer(self) -> TurnReport | None:
        if self.process.proc is None:
            return None
        try:
            answer = json.loads(self.process.read_line(2.0, "turn"))
        except (ExecutorLost, OSError, ValueError, KeyboardInterrupt):
            return None
        return TurnReport.from_json(answer["result"]) if answer.get("ok") else None


def start_workers(
    specs: list[EnvSpec],
    log_dir: Path,
    processes: int = 1,
    *,
    spin_defaults: bool = True,
    fork: bool = True,
    launch: Launch = Launch(),
) -> dict[str, list[WorkerExecutor]]:
    """Start ``processes`` workers for every environment and check their handshakes; on any
    failure, stop the ones already started and raise. With ``fork`` (where supported), every
    environment first starts a fork server and its workers are forked from it; an environment
    whose server does not come up spawns its workers instead."""
    workers: dict[str, list[WorkerExecutor]] = {}
    started: list[WorkerExecutor] = []
    servers: dict[str, ForkServer] = {}
    try:
        if fork and forks_supported():
            for spec in specs:  # all import torch at once
                servers[spec.name] = ForkServer(
                    spec.python,
                    worker_environment(spec, spin_defaults, launch),
                    Path(log_dir) / f"{spec.name or 'run'}-forks.log",
                    launch.wrapper,
                )
                servers[spec.name].start()
            for server in servers.values():
                server.ready(launch.start_timeout)
        for spec in specs:
            workers[spec.name] = []
            for replica in range(processes):
                worker = WorkerExecutor(
                    spec,
                    log_dir,
                    replica,
                    spin_defaults=spin_defaults,
                    forks=servers.get(spec.name),
                    launch=launch,
                )
                started.append(worker)  # closed on any failure, even one while it starts
                workers[spec.name].append(worker)
                worker.spawn()
        for worker in started:
            worker.ask_hello()
        for worker in started:
            worker.check_hello()
    except BaseException:
        for worker in started:
            worker.close()
        for server in servers.values():
            server.close()
        raise
    return workers
