"""Signal handling shared by the commands that write result files: handlers for the duration
of a block, and a block that no Ctrl-C or SIGTERM cuts in half."""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signal_handlers(handlers: dict[int, Any]) -> Iterator[None]:
    """Install ``handlers`` (signal -> handler) for the duration, then put the previous ones
    back; outside the main thread (embedded use) signals are left alone."""
    try:
        previous = {sig: signal.signal(sig, handler) for sig, handler in handlers.items()}
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def uninterrupted() -> Iterator[list[int]]:
    """Hold SIGINT and SIGTERM for the duration; yields the list of those that came, for the
    caller to act on (or not) once the block is done."""
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    with signal_handlers(dict.fromkeys(STOP_SIGNALS, hold)):
        yield pending


def ignore_stop_signals() -> None:
    """Ignore Ctrl-C and SIGTERM from now on (the process is finishing its last step)."""
    with contextlib.suppress(ValueError):
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
