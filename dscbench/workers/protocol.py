"""The worker protocol: what the coordinator and an executor say to each other.

One JSON object per line, both ways. A request is ``{"op": NAME, "args": {...}}``; its answer
is ``{"ok": true, "result": ...}``, or ``{"ok": false, "user": true, "message": ...}`` for a
problem with the user's input or environment (the coordinator prints it as one line and exits
2), or ``{"ok": false, "user": false, "type": ..., "message": ..., "traceback": ...}`` for a bug
in dscbench (the coordinator raises it with this traceback). Operations: ``hello``,
``available``, ``setup``, ``prepare``, ``calibrate``, ``turn``, ``count`` (local.LocalExecutor
documents them) and ``bye``, answered ``{"ok": true, "result": null}`` before the worker ends.

Arguments and results are plain data; the reports below are JSON-ready dataclasses, so a
LocalExecutor in this process and one behind a pipe give the coordinator the same objects.
This module imports nothing of dscbench: both sides, and the coordinator's bookkeeping, build
on it.
"""

from __future__ import annotations

import json
import math
import traceback
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, TypeVar

from dscbench.status import HEALTHY as HEALTHY  # re-exported: the workers' healthy statuses
from dscbench.status import Status

# 2: prepare takes keep_s; 3: specs carry dims, dilation, depth_multiplier; 4: cache
PROTOCOL_VERSION = 4

# The statuses a (configuration, environment) can end in, under the names the workers' code
# uses; dscbench/status.py defines them (str enums: on the wire they are their strings).
OK = Status.OK
PENDING = Status.NOT_MEASURED  # interrupted before its first visit finished
BUILD_ERROR = Status.BUILD_ERROR
RUNTIME_ERROR = Status.RUNTIME_ERROR
OUT_OF_MEMORY = Status.OUT_OF_MEMORY
COUNT_MISMATCH = Status.COUNT_MISMATCH
COMPILE_ERROR = Status.COMPILE_ERROR
PARITY_FAILED = Status.PARITY_FAILED
SKIPPED = Status.SKIPPED
WORKER_CRASHED = Status.WORKER_CRASHED

# -- messages -------------------------------------------------------------------------------

BYE = "bye"


def encode(message: Mapping[str, Any]) -> bytes:
    """One message as the line that carries it."""
    return (json.dumps(message) + "\n").encode()


def request(op: str, args: Mapping[str, Any]) -> dict[str, Any]:
    return {"op": op, "args": dict(args)}


def result_answer(result: Any) -> dict[str, Any]:
    return {"ok": True, "result": result}


def user_error_answer(message: str) -> dict[str, Any]:
    """A problem with the user's input or environment: one line, exit 2."""
    return {"ok": False, "user": True, "message": message}


def bug_answer(kind: str, message: str, trace: str) -> dict[str, Any]:
    """A bug in dscbench (or a request no worker knows): the coordinator raises it."""
    return {"ok": False, "user": False, "type": kind, "message": message, "traceback": trace}


def exception_answer(exc: BaseException) -> dict[str, Any]:
    """``bug_answer`` for the exception being handled, with its traceback."""
    return bug_answer(type(exc).__name__, str(exc), traceback.format_exc())


# -- requests -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PrepareRequest:
    """The arguments of ``prepare``, defined once for the Executor protocol, both executors
    and the wire (positional in this order, or by name). local.LocalExecutor.prepare says what
    the executor does with them."""

    key: str  # the case ("config_id@backend"), as later calls name it
    spec: dict[str, Any]  # spec.spec_to_json of the case's spec
    backend: str
    seed: int  # the weights' and inputs' seed
    parity: bool = False  # check the outputs against the float64 reference
    verify_counts: bool = False  # check the counts against fvcore
    fresh: bool = False  # build anew even when cached: new tensors at new addresses
    first: bool = False  # the case's first build: measure peak memory, count a network
    keep_s: float = 0.0  # cache only builds that took longer than this (seconds)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- reports --------------------------------------------------------------------------------

R = TypeVar("R", bound="Report")


class Report:
    """A dataclass that travels as JSON: ``to_json`` and ``from_json`` (unknown keys ignored,
    so a newer worker can add fields)."""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_json(cls: type[R], data: Mapping[str, Any]) -> R:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class BackendReport(Report):
    """One backend in one environment: can it run, on what, and which configurations not."""

    available: bool
    reason: str = ""
    device: str = ""
    device_name: str = ""
    versions: dict[str, str] = field(default_factory=dict)
    timer_overhead_s: float = math.nan
    cannot: list[tuple[dict[str, Any], str]] = field(default_factory=list)  # (spec, reason)
    notes: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # user models that do not load or build


@dataclass
class Failable(Report):
    """A report that can say its case failed: a status (``OK`` or a kind of failure), one
    line for people and the traceback for the record."""

    status: str = OK
    error: str = ""
    traceback: str = ""


@dataclass
class PrepareReport(Failable):
    prepare_s: dict[str, float] = field(default_factory=dict)  # this build, compile excluded
    compile_s: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)
    execution: dict[str, str] = field(default_factory=dict)
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)  # cold: Prepared.cache
    kernels: dict[str, str] = field(default_factory=dict)  # first build: kernels.describe(...)
    warnings: dict[str, str] = field(default_factory=dict)  # first build: "code: message; ..."
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> Parity fields
    # On a first build: counts.Counts fields per variant (whole networks, whose counts need
    # torch to trace), and their per-layer-type breakdown.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    breakdown: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    built: bool = False  # False when the variants came from the cache
    phases: dict[str, float] = field(default_factory=dict)  # prepare, compile, parity, counting


@dataclass
class CalibrateReport(Failable):
    iterations: dict[str, int] = field(default_factory=dict)
    per_iteration_s: dict[str, float] = field(default_factory=dict)
    untimed_s: float = 0.0


@dataclass
class CountReport(Failable):
    """Instructions one call of each variant executes (instructions.per_iteration), counted in a
    worker under valgrind."""

    instructions: dict[str, float] = field(default_factory=dict)  # the memory allocators' apart
    allocator: dict[str, float] = field(default_factory=dict)  # in the memory allocators
    kernels: dict[str, str] = field(default_factory=dict)  # named by the uncounted first call
    warnings: dict[str, str] = field(default_factory=dict)  # a reference kernel among them
    kernels_s: float = 0.0  # of untimed_s, naming the kernels
    untimed_s: float = 0.0


@dataclass
class TurnReport(Failable):
    """``block_s``: each timed block's duration in seconds (the whole block, in the order
    asked); a failure ends the turn early with the blocks measured before it."""

    block_s: list[float] = field(default_factory=list)
    untimed_s: float = 0.0


class ExecutorLost(Exception):
    """The process behind an executor died (a segfault, an OOM kill); ``restart`` starts a new
    one. ``how`` says how it ended, when known ('killed by SIGSEGV', 'exit status 1')."""

    def __init__(self, message: str = "", how: str = ""):
        super().__init__(message)
        self.how = how
