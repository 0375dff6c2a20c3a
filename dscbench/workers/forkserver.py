"""A fork server per environment: one process imports torch once, and every worker process of
that environment is forked from it, ready in milliseconds instead of seconds.

Why it does not hide what it should measure: benchmarks/REPORT-noise.md timed workers forked
from a parent that had imported torch against freshly spawned ones. Forked children differ from
one another as much as spawned ones (the per-process "personality", 0.8% against 0.9%) and
start 2 s sooner on 2 cores. Each child is a new process with its own heap, allocator state,
oneDNN primitive cache and JIT code; only the imported modules (and the address layout they
were loaded at) are shared. ``dscbench run --start-method spawn`` starts every worker with a
fresh interpreter instead, as before.

The server is ``PYTHON -c SERVER_CODE``, started with the environment's
interpreter and variables (so its children have them too). Its standard input is one end of a
``SOCK_SEQPACKET`` socket pair: a message per packet, JSON, and for ``fork`` the child's three
file descriptors (its requests, its answers, its log) passed with ``SCM_RIGHTS``. Operations:
``fork`` (answer: the child's pid), ``wait`` (reap a child within a timeout: its exit code,
negative for a signal as subprocess says it, or null while it runs) and ``bye``. A child is a
worker like a spawned one (server.serve) in its own session, and ends with ``os._exit``.

The coordinator's side is ``ForkServer`` (start, check the hello, fork) and ``ForkedProcess``,
which answers the part of ``subprocess.Popen`` that transport.WorkerProcess uses. A server that
does not start or answers with another version is not used: the workers are spawned, and their
own handshake says what is wrong.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from dscbench.about import __version__
from dscbench.workers.protocol import PROTOCOL_VERSION
from dscbench.workers.server import flush_all
from dscbench.workers.transport import UNKNOWN_EXIT  # a child whose server is gone

# Run as ``-c`` rather than ``-m`` (the package imports this module first, which ``-m``
# warns about); a dscbench without this module fails to start it, and workers are spawned.
SERVER_CODE = "from dscbench.workers.forkserver import main; main()"
MAX_MESSAGE = 1 << 16
POLL_S = 0.005  # how often ``wait`` looks at a child that has not ended yet


def supported() -> bool:
    """Fork servers need fork, descriptor passing and pidfds: Linux 5.3 or later. (macOS
    forks badly once system frameworks are loaded, Windows cannot fork.)"""
    if not (sys.platform.startswith("linux") and hasattr(socket, "send_fds")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except (AttributeError, OSError):
        return False
    return True


# -- the server process ---------------------------------------------------------------------


def _send(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def _reap(pid: int, timeout: float, ended: dict[int, int]) -> int | None:
    """The exit code of child ``pid``, waiting at most ``timeout`` seconds; None if it runs."""
    deadline = time.monotonic() + timeout
    while pid not in ended:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:  # not ours, or reaped already and forgotten
            return UNKNOWN_EXIT
        if done:
            ended[pid] = os.waitstatus_to_exitcode(status)
        elif time.monotonic() >= deadline:
            return None
        else:
            time.sleep(POLL_S)
    return ended[pid]


def _child(fds: list[int]) -> None:
    """Become a worker on the descriptors the coordinator passed; never returns."""
    code = 1
    try:
        os.setsid()  # Ctrl-C is the coordinator's business, as for a spawned worker
        requests_fd, answers_fd, log_fd = fds
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        os.dup2(requests_fd, 0)
        os.close(requests_fd)
        sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
        from dscbench.models import caller_directory_on_path
        from dscbench.workers.server import serve

        caller_directory_on_path()
        with os.fdopen(answers_fd, "w", buffering=1, encoding="utf-8") as answers:
            serve(sys.stdin, answers)
        code = 0
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        flush_all()
        os._exit(code)


def serve_forks(control: socket.socket) -> None:
    """Answer the coordinator's packets until ``bye`` or the end of the socket."""
    ended: dict[int, int] = {}
    _send(control, {"ok": True, "protocol": PROTOCOL_VERSION, "dscbench": __version__})
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 3)
        except OSError:
            return
        if not data:
            return
        message = json.loads(data)
        op = message.get("op")
        if op == "fork":
            flush_all()  # nothing buffered here may be written again by a child
            pid = os.fork()
            if pid == 0:
                control.close()
                _child(fds)
            ended.pop(pid, None)  # a pid the kernel reused: this child has not ended
            for fd in fds:
                os.close(fd)
            _send(control, {"ok": True, "pid": pid})
        elif op == "wait":
            code = _reap(int(message["pid"]), float(message.get("timeout", 0.0)), ended)
            _send(control, {"ok": True, "code": code})
        elif op == "bye":  # the coordinator is not listening any more
            return
        else:
            for fd in fds:
                os.close(fd)
            _send(control, {"ok": False, "error": f"no op {op!r}"})


def main() -> None:
    control = socket.socket(fileno=os.dup(0))
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdout.flush()  # what a sitecustomize printed, before stdout is pointed at the log
    os.dup2(2, 1)  # stray prints land in the server's log
    sys.stdout = sys.stderr
    # What every worker imports anyway; a missing torch is reported by a backend, as usual.
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    import dscbench.workers.local
    import dscbench.workers.server  # noqa: F401

    # Imported objects go to the permanent generation: a child's garbage collections neither
    # walk them nor write to (and so copy) the pages they share with the server.
    gc.collect()
    gc.freeze()
    serve_forks(control)
    flush_all()
    os._exit(0)  # no interpreter teardown: the coordinator waits for this process to end


# -- the coordinator's side -----------------------------------------------------------------


class ForkFailed(Exception):
    """The fork server cannot fork (it died, never started, or stopped making sense)."""


class ForkedProcess:
    """A worker forked by a ForkServer, with the part of ``subprocess.Popen`` that
    transport.WorkerProcess uses (``stdin``, ``stdout``, ``poll``, ``wait``, ``kill``,
    ``returncode``). The coordinator watches it through a pidfd (readable once it has ended;
    signals through it cannot reach a process that reused its pid); its parent, the server,
    reaps it and says how it ended."""

    def __init__(self, pid: int, pidfd: int, stdin: Any, stdout: Any, server: ForkServer):
        self.pid = pid
        self.pidfd = pidfd
        self.stdin = stdin
        self.stdout = stdout
        self.server = server
        self.returncode: int | None = None

    def _ended(self, timeout: float | None) -> bool:
        if self.returncode is not None:
            return True
        ready, _, _ = select.select([self.pidfd], [], [], timeout)
        if ready:
            self.returncode = self.server.exit_code(self.pid)
            os.close(self.pidfd)
        return bool(ready)

    def poll(self) -> int | None:
        self._ended(0.0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)


class ForkServer:
    """The coordinator's handle on one environment's fork server."""

    def __init__(
        self, python: str, env: dict[str, str], log_path: Path, wrapper: tuple[str, ...] = ()
    ):
        self.python = python
        self.wrapper = wrapper  # a command in front of the interpreter (valgrind)
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.control: socket.socket | None = None
        self.usable = False
        self.why = "not started"
        self.users: set[int] = set()  # ids of the executors forking from it (close when none)
        self.start_s = 0.0  # seconds from starting it to its hello
        self._started_at = 0.0

    def start(self) -> None:
        """Start the server (it imports torch while the coordinator goes on)."""
        self._started_at = time.perf_counter()
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            command = [*self.wrapper, self.python, "-c", SERVER_CODE]
            log.write(f"--- worker fork server: {' '.join(command)}\n")
            log.flush()
            try:
                self.proc = subprocess.Popen(
                    command,
                    stdin=theirs,
                    stdout=log,
                    stderr=log,
                    env=self.env,
                    cwd=self.log_path.parent,
                    start_new_session=True,
                )
            except OSError as exc:
                self.why = f"it did not start ({exc.strerror or exc})"
                ours.close()
                return
            finally:
                theirs.close()
        self.control = ours

    def ready(self, timeout: float) -> bool:
        """Wait for the server's hello; usable only if it speaks this dscbench's version."""
        hello = self._receive(timeout) if self.control is not None else None
        if hello is None:
            if self.control is not None:
                code = None
                with contextlib.suppress(subprocess.TimeoutExpired):
                    code = self.proc.wait(timeout=1) if self.proc is not None else None
                self.why = "it did not answer" + (
                    f" (exit status {code})" if code is not None else ""
                )
        elif hello.get("dscbench") != __version__:
            self.why = f"it runs dscbench {hello.get('dscbench')}"
        elif hello.get("protocol") != PROTOCOL_VERSION:
            self.why = f"it speaks worker protocol {hello.get('protocol')}"
        else:
            self.usable = True
            self.start_s = time.perf_counter() - self._started_at
            return True
        self.close()
        return False

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        """The next packet as an object; None on a timeout, the end, or a malformed one."""
        assert self.control is not None
        ready, _, _ = select.select([self.control], [], [], timeout)
        if not ready:
            return None
        try:
            answer = json.loads(self.control.recv(MAX_MESSAGE) or b"null")
        except (OSError, ValueError):
            return None
        return answer if isinstance(answer, dict) else None

    def _ask(self, message: dict[str, Any], fds: Sequence[int] = (), timeout: float = 60.0) -> dict:
        """One request, one answer. Anything that could leave an answer unread on the socket
        (an interrupt, a timeout, nonsense) drops the server: its next answer could otherwise
        be taken for another request's."""
        if self.control is None:
            raise ForkFailed(self.why)
        try:
            _send(self.control, message, fds)
            answer = self._receive(timeout)
        except OSError:
            answer = None
        except BaseException:
            self._drop("interrupted while it answered")
            raise
        if answer is None or not answer.get("ok"):
            self._drop("it stopped answering" if answer is None else f"it answered {answer}")
            raise ForkFailed(self.why)
        return answer

    def _drop(self, why: str) -> None:
        """Stop using the server (it ends when its socket closes); workers forked from it go
        on."""
        self.why = why
        self.usable = False
        if self.control is not None:
            self.control.close()
            self.control = None

    def fork(self, log_path: Path) -> ForkedProcess:
        """A new worker logging to ``log_path``; ForkFailed when the server cannot fork."""
        to_child, from_us = os.pipe()  # its requests
        to_us, from_child = os.pipe()  # its answers
        theirs, ours = [to_child, from_child], [from_us, to_us]
        try:
            theirs.append(os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644))
            pid = self._ask({"op": "fork"}, theirs).get("pid")
            if not isinstance(pid, int):
                self._drop(f"it answered pid {pid!r}")
                raise ForkFailed(self.why)
            pidfd = os.pidfd_open(pid)  # not reaped before we ask: the pid is still its own
        except BaseException:
            for fd in ours:  # a child forked anyway sees the end of its requests and ends
                os.close(fd)
            raise
        finally:
            for fd in theirs:
                os.close(fd)
        stdin = open(from_us, "wb", buffering=0)  # noqa: SIM115 - the worker's pipes
        stdout = open(to_us, "rb", buffering=0)  # noqa: SIM115
        return ForkedProcess(pid, pidfd, stdin, stdout, self)

    def exit_code(self, pid: int) -> int:
        """How child ``pid``, which has ended, ended (reaped by the server); UNKNOWN_EXIT
        when the server cannot say."""
        try:
            code = self._ask({"op": "wait", "pid": pid, "timeout": 5.0}, timeout=65.0).get("code")
        except ForkFailed:
            return UNKNOWN_EXIT
        return code if isinstance(code, int) else UNKNOWN_EXIT

    def close(self) -> None:
        """Say bye and let the server end (its children, if any still run, are unaffected);
        a server that never said hello (still importing, or stuck) is killed."""
        answered, self.usable = self.usable, False
        control, self.control = self.control, None
        if control is not None:
            with contextlib.suppress(OSError):
                _send(control, {"op": "bye"})
            control.close()
        if self.proc is not None:
            if not answered and self.start_s == 0.0:
                self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
