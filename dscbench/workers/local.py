"""Executors: where the measuring happens. The coordinator (runner.py) decides what to measure
and in which order; an executor builds the variants, checks them, calibrates and times turns.

``LocalExecutor`` measures in this process. A plain ``dscbench run`` uses it directly, and every
worker process (``python -m dscbench.worker``, one per ``--env``) serves the same calls with one
of its own (server.py), so both paths run the same timing code; client.WorkerExecutor is the
coordinator's side of such a worker. Arguments and reports are plain data (protocol.py), which
is the whole worker protocol. Failures of the user's workload come back as a report's status
(failures.py); an exception escaping from dscbench's own code is a bug and propagates.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import dscbench.workers.checks as checks
from dscbench.measure import HarnessOptions, Workload, run_turn, warm_up_and_calibrate
from dscbench.spec import VARIANTS, BackendOptions, Spec, spec_from_json, spec_to_json
from dscbench.workers.cache import PreparedCache, held_bytes
from dscbench.workers.failures import fail, one_line
from dscbench.workers.protocol import (
    PROTOCOL_VERSION,
    BackendReport,
    CalibrateReport,
    CountReport,
    PrepareReport,
    PrepareRequest,
    TurnReport,
)

if TYPE_CHECKING:
    from dscbench.backends.base import Backend, Prepared

# PrepareReport.phases, in seconds ("kernels": naming each variant's kernels, kernels.py)
PHASES = ("prepare", "compile", "parity", "counting", "kernels")


class Executor(Protocol):
    """What the coordinator calls; LocalExecutor and client.WorkerExecutor provide it.
    ``restartable``: whether ``restart`` gives a new process (extra rounds ask for one, in
    two halves, ``begin_restart`` and ``finish_restart``, so that several start at once)."""

    restartable: bool

    def hello(self) -> dict[str, Any]: ...

    def available(self) -> list[str]: ...

    def setup(
        self, options: dict[str, Any], specs: dict[str, list[dict[str, Any]]]
    ) -> dict[str, BackendReport]: ...

    def prepare(self, *args: Any, **kwargs: Any) -> PrepareReport:
        """Arguments: protocol.PrepareRequest's fields."""
        ...

    def calibrate(self, key: str, harness: dict[str, Any]) -> CalibrateReport: ...

    def turn(
        self, key: str, blocks: list[tuple[str, int]], rewarm: list[str], settle_s: float
    ) -> TurnReport: ...

    def count(self, key: str, iterations: int) -> CountReport: ...

    def restart(self) -> None: ...

    def begin_restart(self) -> None: ...

    def finish_restart(self) -> None: ...

    def close(self) -> None: ...


@dataclass
class _Entry:
    """What this executor knows about one case: its spec, backend and ready variants."""

    spec: Spec
    backend: str
    workloads: dict[str, Workload] = field(default_factory=dict)
    modules: dict[str, Any] = field(default_factory=dict)  # torch modules, for a network's MACs
    probes: dict[str, Any] = field(default_factory=dict)  # kernel probes (Prepared.kernels)
    size: int = 0  # bytes its variants hold (the cache's budget)


class LocalExecutor:
    """Measures in this process. ``backends`` maps names to ready instances (tests pass fakes);
    otherwise ``setup`` creates them from the registry."""

    restartable = False  # this process is the executor

    def __init__(
        self,
        backends: Mapping[str, Backend] | None = None,
        *,
        cache_bytes: int = 1 << 30,
    ):
        self.backends: dict[str, Backend] = dict(backends or {})
        self.given = set(self.backends)
        self.cache = PreparedCache(cache_bytes)
        self.entries: dict[str, _Entry] = {}
        self.current: str | None = None  # the case whose variants are in use
        self.options = BackendOptions()

    # -- handshake -------------------------------------------------------------------------

    def hello(self) -> dict[str, Any]:
        """Protocol and dscbench versions, Python, the environment and torch's default thread
        count: what a coordinator checks before trusting this executor's numbers."""
        from dscbench.about import __version__
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
            invalid = checks.user_model_problems(specs_here)
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

    def prepare(self, *args: Any, **kwargs: Any) -> PrepareReport:
        """Make the case's variants ready (arguments: PrepareRequest's fields): from the cache,
        or built with ``seed`` (always built anew with ``fresh``: new tensors at new addresses,
        same values). On request, check their outputs against the float64 reference and their
        counts against fvcore. On the ``first`` build of a case, measure each variant's peak
        memory and count a network's layers.

        Only builds that took longer than ``keep_s`` seconds are cached for later visits (the
        runner rebuilds the cheaper ones on every visit anyway), and only the case at hand
        holds its variants outside the cache: memory stays bounded however long the sweep."""
        r = PrepareRequest(*args, **kwargs)
        entry = self._enter(r.key, r.spec, r.backend, r.fresh)
        report = PrepareReport(phases=dict.fromkeys(PHASES, 0))
        prepared = self.cache.get(r.key)
        if prepared is None:
            prepared = self._build(entry, r.seed, report)
            if prepared is None:
                return report
            if _built_s(report) > r.keep_s:
                self.cache.put(r.key, prepared, held_bytes(entry.spec, prepared, entry.size))
        entry.workloads = {v: Workload(prepared[v].run, prepared[v].context) for v in VARIANTS}
        entry.modules = {v: prepared[v].module for v in VARIANTS}
        entry.probes = {v: prepared[v].kernels for v in VARIANTS}
        if r.first and not self._first_build(entry, prepared, report):
            return report
        s = entry.spec
        if r.verify_counts:
            counted = functools.partial(checks.verify_counts, s, prepared, report)
            if not _timed(report, "counting", s, "count check", counted):
                return report
        if r.parity:
            compared = functools.partial(checks.check_parity, s, prepared, r.seed, report)
            _timed(report, "parity", s, "parity check", compared)
        return report

    def _enter(self, key: str, spec: dict[str, Any], backend: str, fresh: bool) -> _Entry:
        """Make ``key`` the case at hand: the previous case's variants let go (they live on in
        the cache, or are rebuilt), and with ``fresh`` this case's too."""
        if self.current is not None and self.current != key:
            previous = self.entries.get(self.current)
            if previous is not None:
                previous.workloads = {}  # what it built lives on in the cache, or is rebuilt
                previous.modules, previous.probes = {}, {}
        self.current = key
        entry = self.entries.get(key)
        if entry is None:
            entry = self.entries[key] = _Entry(spec_from_json(spec), backend)
        if fresh:
            self.cache.drop(key)
            entry.workloads = {}  # let the old tensors go before the new ones are allocated
        return entry

    def _build(self, entry: _Entry, seed: int, report: PrepareReport) -> dict[str, Prepared] | None:
        """Build both variants with the case's backend, timing each (compilation apart); None,
        with the case failed in ``report``, when one does not build."""
        from dscbench.backends.base import CompileFailed

        impl = self.backends[entry.backend]
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
                if p.cache:
                    report.cache[v] = p.cache
                prepared[v] = p
        except Exception as exc:  # a broken build must not stop the sweep
            error = str(exc) if isinstance(exc, CompileFailed) else one_line(exc)
            fail(report, exc, error=error, building=True)
            return None
        report.built = True
        return prepared

    @staticmethod
    def _first_build(
        entry: _Entry, prepared: Mapping[str, Prepared], report: PrepareReport
    ) -> bool:
        """``checks.first_build``, timed as counting; False, with the case failed in
        ``report``, when the workload fails run outside the timed loop."""
        t0 = time.perf_counter()
        try:
            checks.first_build(entry.spec, prepared, report)
        except Exception as exc:  # the workload fails when run outside the timed loop
            fail(report, exc)
            return False
        if report.counts:
            entry.size = sum(c["bytes"] for c in report.counts.values())
        report.phases["counting"] += time.perf_counter() - t0 - report.phases["kernels"]
        return True

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
            fail(report, exc)
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
            exc.partial = _partial_turn(exc)  # type: ignore[attr-defined]
            raise
        except Exception as exc:
            report = _partial_turn(exc)
            fail(report, exc)
            return report
        return TurnReport(block_s=times.block_s, untimed_s=times.untimed_s)

    def count(self, key: str, iterations: int) -> CountReport:
        """Instructions per call of each variant (instructions.per_iteration), in a window of
        at least ``iterations`` calls, more for a small layer (instructions.calls_for, from
        its MACs): only in a worker started under valgrind (``dscbench run --measure
        instructions``)."""
        from dscbench import instructions

        if not instructions.under_valgrind():
            raise RuntimeError("count asked of a worker that does not run under valgrind")
        entry = self.entries[key]
        self.backends[entry.backend].set_threads(entry.spec.threads)
        report = CountReport()
        t0 = time.perf_counter()
        try:
            for v in VARIANTS:
                work = entry.workloads[v]
                calls = max(
                    iterations,
                    instructions.calls_for(checks.macs(entry.spec, v, entry.modules.get(v))),
                )
                first = self._naming_call(entry.probes.get(v), v, report)
                with work.context():
                    counted = instructions.per_iteration(work.fn, calls, first)
                report.instructions[v], report.allocator[v] = counted
        except Exception as exc:
            fail(report, exc)
        report.untimed_s = time.perf_counter() - t0
        return report

    @staticmethod
    def _naming_call(
        probe: Callable[[], Any] | None, variant: str, report: CountReport
    ) -> Callable[[], None] | None:
        """The uncounted first call of a count: the variant's kernel probe where it has one,
        its findings into ``report`` (workers/checks.first_build leaves them to it under
        valgrind)."""
        if probe is None:
            return None

        def call() -> None:
            from dscbench.kernels import describe

            t0 = time.perf_counter()
            found = probe()
            report.kernels_s += time.perf_counter() - t0
            report.kernels[variant] = describe(found.kernels)
            if found.warning():
                report.warnings[variant] = found.warning()

        return call

    def restart(self) -> None:
        """Nothing to restart: this process is the executor."""

    def begin_restart(self) -> None:
        self.restart()

    def finish_restart(self) -> None:
        """Nothing to wait for."""

    def close(self) -> None:
        self.cache = PreparedCache(self.cache.budget)
        self.entries.clear()


def _built_s(report: PrepareReport) -> float:
    """Seconds the build took, compilation included."""
    return sum(report.prepare_s.values()) + sum(
        c for c in report.compile_s.values() if math.isfinite(c)
    )


def _timed(
    report: PrepareReport, phase: str, spec: Spec, what: str, check: Callable[[], None]
) -> bool:
    """``checks.checked``, its seconds added to ``phase`` when it passed."""
    t0 = time.perf_counter()
    if not checks.checked(spec, report, what, check):
        return False
    report.phases[phase] += time.perf_counter() - t0
    return True


def _partial_turn(exc: BaseException) -> TurnReport:
    """What ``run_turn`` measured before ``exc`` ended it (its ``partial``)."""
    partial = getattr(exc, "partial", None)
    return TurnReport(
        block_s=partial.block_s if partial else [],
        untimed_s=partial.untimed_s if partial else 0.0,
    )
