"""A worker process: ``PYTHON -m dscbench.worker``, one per ``dscbench run --env``.

It serves a LocalExecutor over a pipe, one JSON object per line: a request is
``{"op": NAME, "args": {...}}`` and the answer ``{"ok": true, "result": ...}``, or
``{"ok": false, "user": true, "message": ...}`` for a problem with the user's input or
environment (the coordinator prints it as one line and exits 2), or ``{"ok": false, "user":
false, "type": ..., "message": ..., "traceback": ...}`` for a bug in dscbench (the coordinator
raises it with this traceback). Operations: ``hello``, ``available``, ``setup``, ``prepare``,
``calibrate``, ``turn`` (executor.LocalExecutor documents them) and ``bye``.

The protocol runs on the process's original stdout; file descriptor 1 is pointed at stderr
first, so a library that prints cannot corrupt it. Ctrl-C is the coordinator's business: the
worker runs in its own session and ends when its stdin closes.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import traceback
from typing import IO, Any


def _answer(out: IO[str], message: dict[str, Any]) -> None:
    out.write(json.dumps(message) + "\n")
    out.flush()


def dispatch(executor: Any, request: dict[str, Any]) -> dict[str, Any]:
    """One request to ``executor`` (a LocalExecutor), answered as the protocol says."""
    from dscbench.errors import DscbenchError
    from dscbench.executor import Report

    handlers = {
        "hello": executor.hello,
        "available": executor.available,
        "setup": lambda **a: {k: r.to_json() for k, r in executor.setup(**a).items()},
        "prepare": executor.prepare,
        "calibrate": executor.calibrate,
        "turn": executor.turn,
    }
    op = request.get("op")
    if op not in handlers:
        return {"ok": False, "user": False, "type": "ProtocolError", "message": f"no op {op!r}",
                "traceback": ""}  # fmt: skip
    try:
        result = handlers[op](**request.get("args", {}))
    except DscbenchError as exc:
        return {"ok": False, "user": True, "message": str(exc)}
    except Exception as exc:  # a bug in dscbench: the coordinator shows this traceback
        return {
            "ok": False,
            "user": False,
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": traceback.format_exc(),
        }
    if isinstance(result, Report):
        result = result.to_json()
    return {"ok": True, "result": result}


def serve(requests: IO[str], out: IO[str], executor: Any = None) -> None:
    """Answer requests, one JSON object per line, until ``bye`` or the end of input."""
    from dscbench.executor import LocalExecutor

    executor = executor if executor is not None else LocalExecutor()
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("op") == "bye":
            _answer(out, {"ok": True, "result": None})
            return
        _answer(out, dispatch(executor, request))


def main() -> None:
    protocol_out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray prints from libraries land in the log, not in the protocol
    sys.stdout = sys.stderr
    # Import torch now, while the coordinator starts the other workers, not at "hello" (a
    # missing torch is reported when a backend is created).
    with contextlib.suppress(ImportError):
        import torch  # noqa: F401
    # User models import from the caller's directory (envs.worker_environment says which).
    from dscbench.models import caller_directory_on_path

    caller_directory_on_path()
    serve(sys.stdin, protocol_out)


if __name__ == "__main__":
    main()
