"""Executors: where the measuring happens. The coordinator (runner.py) decides what to measure
and in which order; an executor builds the variants, checks them, calibrates and times turns.

``LocalExecutor`` measures in this process. A plain ``dscbench run`` uses it directly, and every
worker process (``python -m dscbench.worker``, one per ``--env``) serves the same calls with one
of its own, so both paths run the same timing code. Arguments and reports are plain data
(JSON-ready dataclasses), which is the whole worker protocol.

Failures of the user's workload (a kernel that does not build, a compiler that gives up, memory
that runs out, an output that disagrees with the reference) come back as a report's status, with
the traceback kept for the record; the sweep goes on. An exception escaping from dscbench's own
code still propagates: it is a bug, and it keeps its traceback.
"""

from __future__ import annotations

import functools
import math
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from dscbench import counting
from dscbench.measure import HarnessOptions, Workload, run_turn, warm_up_and_calibrate
from dscbench.spec import VARIANTS, BackendOptions, Spec, spec_from_json, spec_to_json
from dscbench.status import Status

if TYPE_CHECKING:
    from dscbench.backends.base import Backend, Prepared

PROTOCOL_VERSION = 2  # 2: prepare takes keep_s

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
class PrepareReport(Report):
    status: str = Status.OK
    error: str = ""
    traceback: str = ""
    prepare_s: dict[str, float] = field(default_factory=dict)  # this build, compile excluded
    compile_s: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)
    execution: dict[str, str] = field(default_factory=dict)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)  # variant -> Parity fields
    # On a first build: counts.Counts fields per variant (whole networks, whose counts need
    # torch to trace), and their per-layer-type breakdown.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    breakdown: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    built: bool = False  # False when the variants came from the cache
    phases: dict[str, float] = field(default_factory=dict)  # prepare, compile, parity, counting


@dataclass
class CalibrateReport(Report):
    status: str = Status.OK
    error: str = ""
    traceback: str = ""
    iterations: dict[str, int] = field(default_factory=dict)
    per_iteration_s: dict[str, float] = field(default_factory=dict)
    untimed_s: float = 0.0


@dataclass
class TurnReport(Report):
    """``block_s``: each timed block's duration in seconds (the whole block, in the order
    asked); a failure ends the turn early with the blocks measured before it."""

    status: str = Status.OK
    error: str = ""
    traceback: str = ""
    block_s: list[float] = field(default_factory=list)
    untimed_s: float = 0.0


class ExecutorLost(Exception):
    """The process behind an executor died (a segfault, an OOM kill); ``restart`` starts a new
    one. ``how`` says how it ended, when known ('killed by SIGSEGV', 'exit status 1')."""

    def __init__(self, message: str = "", how: str = ""):
        super().__init__(message)
        self.how = how


class Executor(Protocol):
    """What the coordinator calls; LocalExecutor and envs.WorkerExecutor provide it."""

    def hello(self) -> dict[str, Any]: ...

    def available(self) -> list[str]: ...

    def setup(
        self, options: dict[str, Any], specs: dict[str, list[dict[str, Any]]]
    ) -> dict[str, BackendReport]: ...

    def prepare(
        self,
        key: str,
        spec: dict[str, Any],
        backend: str,
        seed: int,
        parity: bool,
        verify_counts: bool,
        fresh: bool,
        first: bool,
        keep_s: float = 0.0,
    ) -> PrepareReport: ...

    def calibrate(self, key: str, harness: dict[str, Any]) -> CalibrateReport: ...

    def turn(
        self, key: str, blocks: list[tuple[str, int]], rewarm: list[str], settle_s: float
    ) -> TurnReport: ...

    def restart(self) -> None: ...

    def close(self) -> None: ...


def _held_bytes(prepared: Mapping[str, Prepared]) -> int:
    """Bytes of the weights and inputs the variants hold (the cache budget's estimate)."""
    from dscbench.memory import resident_bytes

    held = []
    for p in prepared.values():
        if p.module is not None:
            held += [*p.module.parameters(), p.example_input]
    return resident_bytes(held)


def is_user_spec(spec: Spec) -> bool:
    """A model of the user's own (``--model package.module:callable``)."""
    from dscbench.models import is_user_model

    return spec.kind == "model" and is_user_model(spec.model)


def user_model_problems(specs: list[Spec]) -> list[str]:
    """Load and build every user model once (both variants, run once on its input shape on the
    meta device, in its mode), so one that does not import, build, fit its input or return one
    tensor is one line before anything is measured."""
    from dscbench.errors import ModelError
    from dscbench.models.twins import check_output

    problems = []
    seen = set()
    for spec in specs:
        if not is_user_spec(spec):
            continue
        key = (spec.model, spec.twin, spec.input_shape, spec.mode)
        if key in seen:
            continue
        seen.add(key)
        try:
            for v in VARIANTS:
                module = ops_build(spec, v)
                check_output(spec.model, v, meta_forward(module, spec))
                counting.layer_counts(module, spec.input_dims(), training=False)
        except ModelError as exc:
            problems.append(str(exc))
        except Exception as exc:
            c, h, w = spec.input_shape
            problems.append(
                f"--model {spec.model!r} ({v}) does not run on --input-shape {c},{h},{w}: "
                f"{one_line(exc)}"
            )
    return problems


def ops_build(spec: Spec, variant: str) -> Any:
    from dscbench import ops

    return ops.build(spec, variant)


def meta_forward(module: Any, spec: Spec) -> Any:
    """What ``module`` (moved to the meta device, in the spec's mode) returns for the spec's
    input: shapes only, no arithmetic and no memory."""
    import torch

    from dscbench import ops

    training = spec.mode == "training"
    module = module.to("meta").train(training)
    x = torch.empty(spec.input_dims(), device="meta", dtype=ops.TORCH_DTYPES[spec.dtype])
    with torch.set_grad_enabled(training):
        return module(x)


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
        return Status.OUT_OF_MEMORY
    if isinstance(exc, CompileFailed):
        return Status.COMPILE_ERROR
    return Status.BUILD_ERROR if building else Status.RUNTIME_ERROR


def is_workload_failure(spec: Spec, exc: BaseException) -> bool:
    """Whether an exception raised while checking a case's variants (their counts, their
    parity) fails that case rather than being a bug in dscbench: memory that ran out, or
    anything a model of the user's own does wrong. Anything else keeps its traceback."""
    return is_user_spec(spec) or failure_status(exc) == Status.OUT_OF_MEMORY


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def _checked(spec: Spec, report: PrepareReport, what: str, check: Callable[[], None]) -> bool:
    """Run ``check()``; False, with the case failed in ``report``, when it raised a workload's
    failure (``is_workload_failure``). A bug in dscbench propagates with its traceback."""
    from dscbench.errors import DscbenchError

    try:
        check()
    except Exception as exc:
        if not is_workload_failure(spec, exc):
            raise
        report.status = failure_status(exc)
        detail = str(exc) if isinstance(exc, DscbenchError) else one_line(exc)
        report.error = f"{what}: {detail}"
        report.traceback = traceback.format_exc()
        return False
    return True


class _PreparedCache:
    """Keeps prepared variants between visits while their tensors fit in ``budget_bytes``;
    evicted ones are rebuilt (same seed, same weights) on their next visit."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.items: OrderedDict[str, tuple[dict[str, Prepared], int]] = OrderedDict()
        self.used = 0

    def get(self, key: str) -> dict[str, Prepared] | None:
        hit = self.items.get(key)
        if hit is None:
            return None
        self.items.move_to_end(key)
        return hit[0]

    def drop(self, key: str) -> None:
        hit = self.items.pop(key, None)
        if hit is not None:
            self.used -= hit[1]

    def put(self, key: str, prepared: dict[str, Prepared], size: int) -> None:
        while self.items and self.used + size > self.budget:
            _, (_, old) = self.items.popitem(last=False)
            self.used -= old
        if size <= self.budget:
            self.items[key] = (prepared, size)
            self.used += size


@dataclass
class _Entry:
    """What this executor knows about one case: its spec, backend and ready variants."""

    spec: Spec
    backend: str
    workloads: dict[str, Workload] = field(default_factory=dict)
    size: int = 0  # bytes its variants hold (the cache's budget)


class LocalExecutor:
    """Measures in this process. ``backends`` maps names to ready instances (tests pass fakes);
    otherwise ``setup`` creates them from the registry."""

    def __init__(
        self,
        backends: Mapping[str, Backend] | None = None,
        *,
        cache_bytes: int = 1 << 30,
    ):
        self.backends: dict[str, Backend] = dict(backends or {})
        self.given = set(self.backends)
        self.cache = _PreparedCache(cache_bytes)
        self.entries: dict[str, _Entry] = {}
        self.current: str | None = None  # the case whose variants are in use
        self.options = BackendOptions()

    # -- handshake -------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """Protocol and dscbench versions, Python, the environment and torch's default thread
        count: what a coordinator checks before trusting this executor's numbers."""
        from dscbench import __version__
        from dscbench.env import collect_environment

        environment = collect_environment()
        torch_info = environment.get("torch") or {}
        return {
            "protocol": PROTOCOL_VERSION,
            "dscbench": __version__,
            "python": environment["python"],
            "executable": environment["executable"],
            "environment": environment,
            "default_threads": torch_info.get("num_threads") or 1,
        }

    def available(self) -> list[str]:
        """The backends that can run in this environment (what ``--backend all`` means)."""
        from dscbench import backends as registry

        return registry.available_names()

    def setup(
        self, options: dict[str, Any], specs: dict[str, list[dict[str, Any]]]
    ) -> dict[str, BackendReport]:
        """Create each backend the sweep uses (when available here) and let it plan its specs:
        which it cannot run, and notes (onnxruntime's thread pool choice)."""
        from dscbench import backends as registry

        self.options = BackendOptions(**options)
        reports = {}
        for name, spec_dicts in specs.items():
            if name in self.given:
                status = self.backends[name].availability()
            else:
                status = registry.availability(name)
            if not status.available:
                reports[name] = BackendReport(False, status.reason)
                continue
            if name not in self.backends:
                self.backends[name] = registry.create(name, self.options)
            backend = self.backends[name]
            specs_here = [spec_from_json(s) for s in spec_dicts]
            cannot = backend.plan(specs_here)
            invalid = user_model_problems(specs_here)
            reports[name] = BackendReport(
                True,
                device=backend.device,
                device_name=backend.device_name(),
                versions=backend.versions(),
                timer_overhead_s=backend.timer().overhead(),
                cannot=[(spec_to_json(s), reason) for s, reason in cannot.items()],
                notes=list(getattr(backend, "notes", [])),
                invalid=invalid,
            )
        return reports

    # -- measuring -------------------------------------------------------------------------

    def prepare(
        self,
        key: str,
        spec: dict[str, Any],
        backend: str,
        seed: int,
        parity: bool = False,
        verify_counts: bool = False,
        fresh: bool = False,
        first: bool = False,
        keep_s: float = 0.0,
    ) -> PrepareReport:
        """Make the case's variants ready: from the cache, or built with ``seed`` (always built
        anew with ``fresh``: new tensors at new addresses, same values). On request, check their
        outputs against the float64 reference and their counts against fvcore. On the ``first``
        build of a case, measure each variant's peak memory and count a network's layers.

        Only builds that took longer than ``keep_s`` seconds are cached for later visits (the
        runner rebuilds the cheaper ones on every visit anyway), and only the case at hand
        holds its variants outside the cache: memory stays bounded however long the sweep."""
        from dscbench.backends.base import CompileFailed

        if self.current is not None and self.current != key:
            previous = self.entries.get(self.current)
            if previous is not None:
                previous.workloads = {}  # what it built lives on in the cache, or is rebuilt
        self.current = key
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry(spec_from_json(spec), backend)
        report = PrepareReport(
            phases=dict.fromkeys(("prepare", "compile", "parity", "counting"), 0)
        )
        if fresh:
            self.cache.drop(key)
            entry.workloads = {}  # let the old tensors go before the new ones are allocated
        prepared = self.cache.get(key)
        if prepared is None:
            impl = self.backends[backend]
            prepared = {}
            try:
                for v in VARIANTS:
                    t0 = time.perf_counter()
                    p = impl.prepare(entry.spec, v, seed)
                    spent = time.perf_counter() - t0
                    compiled = p.compile_s if math.isfinite(p.compile_s) else 0.0
                    report.phases["compile"] += compiled
                    report.phases["prepare"] += spent - compiled
                    report.prepare_s[v] = spent - compiled
                    report.compile_s[v] = p.compile_s
                    report.execution[v] = p.execution
                    prepared[v] = p
            except Exception as exc:  # a broken build must not stop the sweep
                report.status = failure_status(exc, building=True)
                report.error = str(exc) if isinstance(exc, CompileFailed) else one_line(exc)
                report.traceback = traceback.format_exc()
                return report
            report.built = True
            built_s = sum(report.prepare_s.values()) + sum(
                c for c in report.compile_s.values() if math.isfinite(c)
            )
            if built_s > keep_s:
                if entry.spec.kind == "conv":
                    size = sum(counting.closed_form(entry.spec, v).bytes for v in VARIANTS)
                else:
                    size = entry.size or _held_bytes(prepared)
                self.cache.put(key, prepared, size)
        entry.workloads = {v: Workload(prepared[v].run, prepared[v].context) for v in VARIANTS}
        if first:
            t0 = time.perf_counter()
            try:
                self._first_build(entry, prepared, report)
            except Exception as exc:  # the workload fails when run outside the timed loop
                report.status, report.error = failure_status(exc), one_line(exc)
                report.traceback = traceback.format_exc()
                return report
            report.phases["counting"] += time.perf_counter() - t0
        if verify_counts:
            t0 = time.perf_counter()
            counted = functools.partial(self._verify_counts, entry.spec, prepared, report)
            if not _checked(entry.spec, report, "count check", counted):
                return report
            report.phases["counting"] += time.perf_counter() - t0
        if parity:
            t0 = time.perf_counter()
            compared = functools.partial(self._check_parity, entry.spec, prepared, seed, report)
            if not _checked(entry.spec, report, "parity check", compared):
                return report
            report.phases["parity"] += time.perf_counter() - t0
        return report

    def calibrate(self, key: str, harness: dict[str, Any]) -> CalibrateReport:
        """Warm each variant up and size its blocks (``HarnessOptions`` fields in ``harness``)."""
        entry = self.entries[key]
        impl = self.backends[entry.backend]
        impl.set_threads(entry.spec.threads)
        options = HarnessOptions(**harness)
        timer = impl.timer()
        report = CalibrateReport()
        try:
            for v in VARIANTS:
                cal = warm_up_and_calibrate(entry.workloads[v], timer, options)
                report.iterations[v] = cal.iterations
                report.per_iteration_s[v] = cal.per_iteration_s
                report.untimed_s += cal.spent_s
        except Exception as exc:
            report.status, report.error = failure_status(exc), one_line(exc)
            report.traceback = traceback.format_exc()
        return report

    def turn(
        self,
        key: str,
        blocks: list[tuple[str, int]],
        rewarm: list[str] | tuple[str, ...] = (),
        settle_s: float = 0.0,
    ) -> TurnReport:
        """Time ``blocks`` of (variant, iterations) back to back after the untimed calls
        ``run_turn`` describes. A failing workload ends the turn with what was measured."""
        entry = self.entries[key]
        impl = self.backends[entry.backend]
        impl.set_threads(entry.spec.threads)
        try:
            times = run_turn(
                entry.workloads, impl.timer(), [tuple(b) for b in blocks], rewarm, settle_s
            )
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "partial", None)
            exc.partial = TurnReport(  # type: ignore[attr-defined]
                block_s=partial.block_s if partial else [],
                untimed_s=partial.untimed_s if partial else 0.0,
            )
            raise
        except Exception as exc:
            partial = getattr(exc, "partial", None)
            return TurnReport(
                status=failure_status(exc),
                error=one_line(exc),
                traceback=traceback.format_exc(),
                block_s=partial.block_s if partial else [],
                untimed_s=partial.untimed_s if partial else 0.0,
            )
        return TurnReport(block_s=times.block_s, untimed_s=times.untimed_s)

    def restart(self) -> None:
        """Nothing to restart: this process is the executor."""

    def close(self) -> None:
        self.cache = _PreparedCache(self.cache.budget)
        self.entries.clear()

    # -- checks ----------------------------------------------------------------------------

    @staticmethod
    def _first_build(
        entry: _Entry, prepared: Mapping[str, Prepared], report: PrepareReport
    ) -> None:
        """Peak memory of each variant, and a network's counts and breakdown (a conv layer's
        counts are closed forms the coordinator computes itself)."""
        for v in VARIANTS:
            p = prepared[v]
            if p.memory is not None:
                report.peak_memory_bytes[v] = p.memory()
            if entry.spec.kind == "model" and p.module is not None:
                records = counting.layer_counts(
                    p.module, entry.spec.input_dims(), entry.spec.mode == "training"
                )
                report.counts[v] = asdict(counting.model_counts(records))
                report.breakdown[v] = counting.breakdown(records)
        if report.counts:
            entry.size = sum(c["bytes"] for c in report.counts.values())

    @staticmethod
    def _check_parity(
        spec: Spec, prepared: Mapping[str, Prepared], seed: int, report: PrepareReport
    ) -> None:
        from dscbench import parity
        from dscbench.models.twins import check_output

        problems = []
        for v in VARIANTS:
            output = prepared[v].output()
            if is_user_spec(spec):
                check_output(spec.model, v, output)  # run time can differ from the meta device
            result = parity.check(output, parity.reference_output(spec, v, seed), spec.dtype)
            report.parity[v] = asdict(result)
            if not result.passed:
                problems.append(f"{v}: {result.problem}")
        if problems:
            report.status, report.error = Status.PARITY_FAILED, "; ".join(problems)

    @staticmethod
    def _verify_counts(spec: Spec, prepared: Mapping[str, Prepared], report: PrepareReport) -> None:
        problems = []
        for v in VARIANTS:
            p = prepared[v]
            if p.module is None:
                continue  # a backend without a torch module (fakes, future exported graphs)
            if spec.kind == "model":
                if v not in report.counts:
                    continue
                expected = counting.Counts(**report.counts[v])
            else:
                expected = counting.closed_form(spec, v)
            mismatch = counting.cross_check(expected, p.module, p.example_input)
            if mismatch:
                problems.append(f"{v}: {mismatch}")
        if problems and report.status == Status.OK:
            report.status, report.error = Status.COUNT_MISMATCH, "; ".join(problems)
