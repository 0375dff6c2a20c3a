"""One writer per run directory: a lock file naming its holder.

``dscbench run -o DIR``, ``run --resume DIR`` and ``merge -o DIR`` hold ``DIR/.dscbench.lock``
while they write: an advisory ``flock`` on the file, which the kernel drops when the holder
dies (so a lock left by a killed process is stale and is taken over, with a note), and in the
file the holder's pid, host, start time and command, so a second writer is told who holds it.
Where the file system has no locks (``ENOLCK``, some network mounts), the file's contents
decide: a holder on this host whose pid is gone is stale; one on another host is trusted.
The file is removed when the writer is done.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dscbench.errors import ResultsError

LOCK = ".dscbench.lock"

try:
    import fcntl
except ImportError:  # not POSIX: the contents alone decide
    fcntl = None  # type: ignore[assignment]


class Locked(ResultsError):
    """Another process is writing the run directory."""


def _describe(holder: dict[str, Any]) -> str:
    command = holder.get("command")
    shown = " ".join(map(str, command)) if isinstance(command, list) else "?"
    return f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}: {shown}"


def _read(fd: int) -> dict[str, Any]:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        holder = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _held_elsewhere(holder: dict[str, Any]) -> bool:
    """Without kernel locks: is the holder recorded in the file still there?"""
    if not holder:
        return False
    if holder.get("host") != socket.gethostname():
        return True  # cannot be checked from here: trust it
    return _alive(holder.get("pid")) and holder.get("pid") != os.getpid()


def holder(directory: Path) -> dict[str, Any] | None:
    """Who is writing ``directory`` now (pid, host, since, command), or None when nobody is:
    no lock file, or one whose holder is gone (a killed run leaves one behind)."""
    path = Path(directory) / LOCK
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return None
    try:
        found = _read(fd)
        if fcntl is None:
            return found if _held_elsewhere(found) else None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return found or {"pid": None, "host": None}
        except OSError:  # no kernel locks here: the contents decide
            return found if _held_elsewhere(found) else None
        return None
    finally:
        os.close(fd)


@contextlib.contextmanager
def hold(directory: Path, *, what: str = "--output") -> Iterator[list[str]]:
    """Hold ``directory``'s lock for the duration (the directory must exist). Yields notes
    (a stale lock taken over); raises Locked (exit 2) naming the holder when another live
    process has it."""
    path = Path(directory) / LOCK
    notes: list[str] = []
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise ResultsError(f"{what} {directory}: cannot lock ({exc.strerror or exc})") from None
        kernel = fcntl is not None
        try:
            if kernel:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            os.close(fd)
            raise Locked(
                f"{what} {directory}: another dscbench is writing this run ({_describe(holder)}); "
                "wait for it to finish or stop it"
            ) from None
        except OSError as exc:
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS):
                os.close(fd)
                raise
            kernel = False
        # The file may have been removed (and made anew) by the holder we waited on: lock
        # the file that is at the path now.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        holder = _read(fd)
        if not kernel and _held_elsewhere(holder):
            os.close(fd)
            raise Locked(
                f"{what} {directory}: another dscbench is writing this run ({_describe(holder)}); "
                f"if that process is gone, delete {path}"
            )
        if holder:
            notes.append(
                f"took over a stale lock of {directory} (the process that held it is gone: "
                f"{_describe(holder)})"
            )
        break
    mine = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": _now(),
        "command": list(sys.argv),
    }
    os.ftruncate(fd, 0)
    os.lseek(fd, 0, os.SEEK_SET)
    os.write(fd, json.dumps(mine).encode("utf-8"))
    os.fsync(fd)
    try:
        yield notes
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        os.close(fd)  # unlocks


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")
