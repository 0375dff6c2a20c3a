"""A worker process and the JSON-lines pipes to it: start it (spawn a fresh interpreter, or
fork it from a forkserver.ForkServer), send one message, read the next one with a deadline, say
how it ended (with the end of its log), stop it.

The worker's stderr goes to its log file (one per worker, kept in the run directory), and so
does anything a spawned worker prints to stdout that is not a message (a sitecustomize, an
interpreter banner; a forked worker's stdout is the log already). Knows nothing of what the
messages mean (client.py) or of dscbench's versions.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from dscbench.workers.protocol import BYE, ExecutorLost, encode

LOG_TAIL_LINES = 3
UNKNOWN_EXIT = 1000  # forkserver.UNKNOWN_EXIT: a forked worker nobody could reap
LOG_HEADER = "--- worker"  # how the lines we write into a worker's log begin


class CannotStart(Exception):
    """The worker's command could not be started (no such file, not executable)."""


def describe_exit(code: int | None) -> str:
    """'exit status 3', 'killed by SIGSEGV' or 'still running'."""
    if code is None:
        return "still running"
    if code == UNKNOWN_EXIT:
        return "exit status unknown: its fork server had ended"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


class WorkerProcess:
    """One worker process at a time (``spawn`` again after ``close`` for a fresh one), logging
    to ``log_path``; ``label`` names it in what it raises ('the worker of environment head')."""

    def __init__(self, log_path: Path, label: str):
        self.log_path = log_path
        self.label = label
        self.proc: subprocess.Popen[bytes] | None = None
        self._pending = b""  # bytes read from the worker, not yet a whole line

    def _open_log(self, header: str) -> Any:
        self._pending = b""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "a", encoding="utf-8")  # noqa: SIM115 - the child keeps it
        log.write(f"{LOG_HEADER} {header}\n")
        log.flush()
        return log

    def fork(self, server: Any, header: str) -> None:
        """Fork the worker from ``server`` (a forkserver.ForkServer, not imported here: that
        module builds on this one), its output appended to the log after ``header``;
        ForkFailed when the server cannot fork."""
        self._open_log(header).close()
        self.proc = server.fork(self.log_path)  # type: ignore[assignment]

    def spawn(self, command: list[str], env: dict[str, str], header: str) -> None:
        """Start ``command`` with ``env``, its stderr appended to the log after ``header``;
        CannotStart when the command does not start."""
        log = self._open_log(header)
        try:
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                bufsize=0,  # raw pipes: select() must see every byte not yet read
                env=env,
                cwd=self.log_path.parent,  # not the caller's directory: no stray dscbench import
                start_new_session=True,  # Ctrl-C is for the coordinator, which stops workers
            )
        except OSError as exc:
            raise CannotStart(exc.strerror or str(exc)) from None
        finally:
            log.close()

    def send(self, message: dict[str, Any]) -> None:
        proc = self.proc
        assert proc is not None and proc.stdin is not None
        data = encode(message)
        while data:
            data = data[proc.stdin.write(data) :]

    def exchange(self, op: str, message: dict[str, Any], timeout: float | None) -> dict[str, Any]:
        """Send ``message`` (a request for ``op``) and read the answer."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            raise self.lost(f"starting {op}") if proc is not None else ExecutorLost("not started")
        assert proc.stdin is not None and proc.stdout is not None
        try:
            self.send(message)
        except (BrokenPipeError, OSError):
            raise self.lost(f"receiving {op}") from None
        return self.receive(op, timeout)

    def receive(self, op: str, timeout: float | None) -> dict[str, Any]:
        """The next message (the answer to ``op``); lines that are not one go to the log."""
        while True:
            line = self.read_line(timeout, op)
            if line.startswith("{"):
                return json.loads(line)
            # Something printed to stdout before the worker took it over (a sitecustomize, an
            # interpreter banner): not the protocol; keep it in the log.
            with open(self.log_path, "a", encoding="utf-8") as log:
                log.write(f"(stdout) {line}")

    def read_line(self, timeout: float | None, op: str) -> str:
        """The next line from the worker, waiting at most ``timeout`` seconds for it (a worker
        that says nothing that long is killed). Lines are split here, not by a buffered reader,
        so select() never waits on bytes a buffer already holds."""
        proc = self.proc
        assert proc is not None and proc.stdout is not None
        fd = proc.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                proc.kill()
                raise self.lost(
                    f"{op} (no answer within {timeout:.0f} s, so it was killed)",
                    f"no answer within {timeout:.0f} s",
                )
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise self.lost(f"running {op}")
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line.decode("utf-8", errors="replace") + "\n"

    def lost(self, doing: str, how: str = "") -> ExecutorLost:
        """The worker has died, or is killed now: an ExecutorLost saying what it was doing, how
        it ended (``how``, or its exit status) and how its log ends."""
        code = None
        if self.proc is not None:
            try:
                code = self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                code = self.proc.wait()
        tail = self.log_tail()
        text = f"{self.label} died ({describe_exit(code)}) while {doing}"
        if tail:
            text += f"; its log ends: {tail}"
        return ExecutorLost(text + f" (full log: {self.log_path})", how or describe_exit(code))

    def log_tail(self) -> str:
        """The last lines the worker wrote to its log, joined by ' | '."""
        try:
            lines = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return ""
        lines = [ln.strip() for ln in lines if ln.strip() and not ln.startswith(LOG_HEADER)]
        return " | ".join(lines[-LOG_TAIL_LINES:])

    def close(self) -> None:
        """Say bye and wait a little for the worker to end; kill it if it does not."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            try:
                assert proc.stdin is not None
                proc.stdin.write(encode({"op": BYE}))
                proc.stdin.close()
                proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired, ValueError):
                proc.kill()
                proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
