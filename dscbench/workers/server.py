"""A worker process's main loop: ``PYTHON -m dscbench.worker``, one per ``dscbench run --env``.

It serves a LocalExecutor over a pipe, one JSON object per line (protocol.py has the message
shapes), until ``bye`` or the end of its input.

The protocol runs on the process's original stdout; file descriptor 1 is pointed at stderr
first, so a library that prints cannot corrupt it. Ctrl-C is the coordinator's business: the
worker runs in its own session and ends when its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import IO, Any

from dscbench.workers.protocol import (
    BYE,
    Report,
    bug_answer,
    exception_answer,
    result_answer,
    user_error_answer,
)


def _answer(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def dispatch(executor: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One request to ``executor`` (a LocalExecutor), answered as the protocol says."""
    from dscbench.errors import DscbenchError

    handlers = {
        "hello": executor.hello,
        "available": executor.available,
        "setup": lambda **a: {k: r.to_json() for k, r in executor.setup(**a).items()},
        "prepare": executor.prepare,
        "calibrate": executor.calibrate,
        "turn": executor.turn,
        "count": executor.count,
    }
    op = request.get("op")
    if op not in handlers:
        return bug_answer("ProtocolError", f"no op {op!r}", "")
    try:
        result = handlers[op](**request.get("args", {}))
    except DscbenchError as exc:
        return user_error_answer(str(exc))
    except Exception as exc:  # a bug in dscbench: the coordinator shows this traceback
        return exception_answer(exc)
    if isinstance(result, Report):
        result = result.to_json()
    return result_answer(result)


def serve(requests: IO[str], out: IO[str], executor: Any = None) -> None:
    """Answer requests, one JSON object per line, until ``bye`` or the end of input."""
    from dscbench.workers.local import LocalExecutor

    executor = executor if executor is not None else LocalExecutor()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == BYE:
            _answer(out, result_answer(None))
            return
        _answer(out, dispatch(executor, request))


def flush_all() -> None:
    """Flush Python's standard streams and C stdio's buffers (a library's printf, oneDNN's
    verbose output): before a fork copies them, and before ``os._exit`` would drop them."""
    for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
        with contextlib.suppress(Exception):
            stream.flush()  # type: ignore[union-attr]
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


def main() -> None:
    sys.stdout.flush()  # a sitecustomize's prints go out first, to the coordinator's log
    protocol_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints from libraries land in the log, not in the protocol
    sys.stdout = sys.stderr
    # Import torch now, while the coordinator starts the other workers, not at "hello" (a
    # missing torch is reported when a backend is created).
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    # User models import from the caller's directory (client.worker_environment says which).
    from dscbench.models import caller_directory_on_path

    caller_directory_on_path()
    serve(sys.stdin, protocol_out)
    # Everything is answered: skip the interpreter's teardown (torch's takes about half a
    # second, and the coordinator waits for it at every restart), once every buffer is out.
    flush_all()
    os._exit(0)
