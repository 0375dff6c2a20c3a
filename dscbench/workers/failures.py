"""Kinds of failure: which status an exception raised by the user's workload gives its case,
decided here alone (statuses in protocol.py).

Failures of the user's workload (a kernel that does not build, a compiler that gives up, memory
that runs out, an output that disagrees with the reference) come back as a report's status,
with the traceback kept for the record; the sweep goes on. An exception escaping from
dscbench's own code still propagates: it is a bug, and it keeps its traceback.
"""

from __future__ import annotations

import traceback
from typing import TYPE_CHECKING

from dscbench.workers.protocol import (
    BUILD_ERROR,
    COMPILE_ERROR,
    OUT_OF_MEMORY,
    RUNTIME_ERROR,
    Failable,
)

if TYPE_CHECKING:
    from dscbench.spec import Spec

# How each backend says that memory ran out: MemoryError, torch on the CPU ("can't allocate
# memory: you tried to allocate N bytes", errno 12 "Cannot allocate memory"), torch on CUDA
# ("CUDA out of memory"), onnxruntime ("Failed to allocate memory for requested buffer").
OOM_MARKERS = (
    "out of memory",
    "can't allocate",
    "cannot allocate memory",
    "failed to allocate memory",
)


def failure_status(exc: BaseException, building: bool = False) -> str:
    """The kind of failure of an exception raised by the user's workload, decided here alone:
    out_of_memory wherever memory ran out; otherwise compile_error for a compiler that gave up,
    build_error while ``building`` the variants, runtime_error while running or checking them."""
    from dscbench.backends.base import CompileFailed

    text = str(exc).lower()
    if isinstance(exc, MemoryError) or any(marker in text for marker in OOM_MARKERS):
        return OUT_OF_MEMORY
    if isinstance(exc, CompileFailed):
        return COMPILE_ERROR
    return BUILD_ERROR if building else RUNTIME_ERROR


def is_user_spec(spec: Spec) -> bool:
    """A model of the user's own (``--model package.module:callable``)."""
    from dscbench.models import is_user_model

    return spec.kind == "model" and is_user_model(spec.model)


def is_workload_failure(spec: Spec, exc: BaseException) -> bool:
    """Whether an exception raised while checking a case's variants (their counts, their
    parity) fails that case rather than being a bug in dscbench: memory that ran out, or
    anything a model of the user's own does wrong. Anything else keeps its traceback."""
    return is_user_spec(spec) or failure_status(exc) == OUT_OF_MEMORY


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def fail(
    report: Failable, exc: BaseException, *, error: str | None = None, building: bool = False
) -> None:
    """Mark ``report`` failed by the exception being handled: its kind (``failure_status``),
    ``error`` (by default the exception in one line) and the traceback."""
    report.status = failure_status(exc, building)
    report.error = one_line(exc) if error is None else error
    report.traceback = traceback.format_exc()
