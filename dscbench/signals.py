"""Signal handling shared by the commands that write result files: handlers for the duration
of a block, a block that no Ctrl-C or SIGTERM cuts in half (``uninterrupted``, or
``signals_deferred`` which raises KeyboardInterrupt after it), and a run's policy that the
first signal stops it and any further one is ignored (``interrupt_once``)."""

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


def sigint_ignored() -> contextlib.AbstractContextManager[None]:
    """Ignore Ctrl-C for the duration."""
    return signal_handlers({signal.SIGINT: signal.SIG_IGN})


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration; raise KeyboardInterrupt afterwards if one came
    (so writing result files is never cut in half)."""
    with uninterrupted() as pending:
        yield
    if pending:
        ignore_stop_signals()  # the sweep stops now; a further signal must not cut that short
        raise KeyboardInterrupt


@contextlib.contextmanager
def interrupt_once() -> Iterator[None]:
    """Ctrl-C or SIGTERM (a batch scheduler's pre-emption, `kill`) stops the run, so the
    results measured so far are saved and the workers stopped before the process ends; any
    further one is ignored until the process exits (a second Ctrl-C must not cut the
    interrupt-time checkpoint short), also where an inner context puts this handler back."""
    fired = []

    def interrupt(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        ignore_stop_signals()
        raise KeyboardInterrupt

    try:
        with signal_handlers(dict.fromkeys(STOP_SIGNALS, interrupt)):
            yield
    finally:
        if fired:  # the process is on its way out: nothing may cut that short
            ignore_stop_signals()
