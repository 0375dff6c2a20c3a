"""The sweep: rounds over shuffled cases, each visit measuring both variants as pairs.

Each round visits every still-healthy case once, in a fresh shuffled order, and spends
``min_time / rounds`` seconds of timed blocks on each variant, so a slow phase of a shared
machine spreads over all cases instead of landing on one. After every round (and on Ctrl-C or
a crash) the caller's ``checkpoint`` receives the state, so nothing measured is lost.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from dscbench import counting, parity
from dscbench.backends.base import CompileFailed
from dscbench.measure import HarnessOptions, Timed, measure_pairs, rewarm, warm_up_and_calibrate
from dscbench.spec import VARIANTS, Case, RunSettings

if TYPE_CHECKING:
    from dscbench.backends.base import Backend, Prepared

# Statuses a case can end in ("kind of failure" otherwise).
OK = "ok"
PENDING = "not_measured"  # interrupted before its first visit finished
BUILD_ERROR = "build_error"
RUNTIME_ERROR = "runtime_error"
OUT_OF_MEMORY = "out_of_memory"
COUNT_MISMATCH = "count_mismatch"
COMPILE_ERROR = "compile_error"
PARITY_FAILED = "parity_failed"  # a wrong answer: never timed, never in a summary
SKIPPED = "skipped"  # its backend cannot run it here (--skip-unavailable)


@dataclass
class CaseState:
    case: Case
    counts: dict[str, counting.Counts]
    timed: dict[str, Timed] = field(default_factory=dict)
    status: str = PENDING
    error: str = ""
    visits: int = 0
    prepare_s: dict[str, float] = field(default_factory=dict)  # per variant, all builds
    compile_s: dict[str, float] = field(default_factory=dict)  # per variant, first build
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)
    execution: dict[str, str] = field(default_factory=dict)
    parity: dict[str, parity.Parity] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status in (OK, PENDING, COUNT_MISMATCH)


@dataclass
class Phases:
    """Where the wall time went, seconds. ``timed`` is inside timed blocks only."""

    timed: float = 0.0
    warmup: float = 0.0
    prepare: float = 0.0  # building models and sessions, compilation excluded
    compile: float = 0.0  # torch.compile, TensorRT engine builds
    parity: float = 0.0  # float64 reference outputs and comparisons
    counting: float = 0.0


@dataclass
class SweepState:
    cases: list[CaseState]
    settings: RunSettings
    rounds_done: int = 0
    status: str = "running"  # running | complete | interrupted | crashed
    phases: Phases = field(default_factory=Phases)


Checkpoint = Callable[[SweepState], None]
Progress = Callable[[int, int, str], None]  # (visits done, visits total, label of current case)


class _PreparedCache:
    """Keeps prepared variants between visits while their tensors fit in ``budget_bytes``;
    evicted ones are rebuilt (same seed, same weights) on their next visit."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.items: OrderedDict[Case, tuple[dict[str, Prepared], int]] = OrderedDict()
        self.used = 0

    def get(self, case: Case) -> dict[str, Prepared] | None:
        hit = self.items.get(case)
        if hit is None:
            return None
        self.items.move_to_end(case)
        return hit[0]

    def put(self, case: Case, prepared: dict[str, Prepared], size: int) -> None:
        while self.items and self.used + size > self.budget:
            _, (_, old) = self.items.popitem(last=False)
            self.used -= old
        if size <= self.budget:
            self.items[case] = (prepared, size)
            self.used += size


def _failure_status(exc: BaseException) -> str:
    text = str(exc).lower()
    if isinstance(exc, MemoryError) or "out of memory" in text or "can't allocate" in text:
        return OUT_OF_MEMORY
    return RUNTIME_ERROR


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".strip()


def run_sweep(
    cases: list[Case],
    settings: RunSettings,
    backends: Mapping[str, Backend],
    *,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    harness: HarnessOptions | None = None,
    verify_counts: bool = True,
    cache_bytes: int = 1 << 30,
    skipped: Mapping[Case, str] | None = None,
) -> SweepState:
    """Measure every case for ``settings.rounds`` rounds; return the final state.

    ``backends`` maps backend names to instances (tests pass fakes with a fake clock). Cases in
    ``skipped`` (case -> reason) are recorded as skipped and never run. On the first visit of
    a case, both variants' outputs are checked against a float64 reference (``settings.parity``)
    and a case that fails is not timed. On KeyboardInterrupt the state is checkpointed with
    status ``interrupted`` and the interrupt propagates; on any other exception escaping a case,
    only that case is marked failed.
    """
    harness = harness or HarnessOptions(warmup=settings.warmup)
    phases = Phases()
    started = time.perf_counter()
    states = [
        CaseState(case, {v: counting.closed_form(case.spec, v) for v in VARIANTS}) for case in cases
    ]
    phases.counting += time.perf_counter() - started
    for state in states:
        reason = (skipped or {}).get(state.case)
        if reason is not None:
            state.status, state.error = SKIPPED, reason
    sweep = SweepState(states, settings, phases=phases)
    cache = _PreparedCache(cache_bytes)
    rng = np.random.default_rng(settings.seed)
    coin = rng.random
    share = settings.min_time / settings.rounds
    total = len(states) * settings.rounds
    done = 0

    def prepare(state: CaseState, backend: Backend) -> dict[str, Prepared]:
        prepared = cache.get(state.case)
        if prepared is not None:
            return prepared
        prepared = {}
        for v in VARIANTS:
            t0 = time.perf_counter()
            p = backend.prepare(state.case.spec, v, settings.seed)
            spent = time.perf_counter() - t0
            compiled = p.compile_s if math.isfinite(p.compile_s) else 0.0
            phases.compile += compiled
            phases.prepare += spent - compiled
            state.prepare_s[v] = state.prepare_s.get(v, 0.0) + spent - compiled
            state.compile_s.setdefault(v, p.compile_s)
            state.peak_memory_bytes.setdefault(v, p.peak_memory_bytes)
            state.execution.setdefault(v, p.execution)
            prepared[v] = p
        if verify_counts and state.visits == 0:
            t0 = time.perf_counter()
            _verify(state, prepared)
            phases.counting += time.perf_counter() - t0
        if settings.parity and not state.parity:
            t0 = time.perf_counter()
            _check_parity(state, prepared, settings.seed)
            phases.parity += time.perf_counter() - t0
        size = sum(state.counts[v].bytes for v in VARIANTS)
        cache.put(state.case, prepared, size)
        return prepared

    def visit(state: CaseState, round_index: int) -> None:
        backend = backends[state.case.backend]
        backend.set_threads(state.case.spec.threads)
        timer = backend.timer()
        try:
            prepared = prepare(state, backend)
        except CompileFailed as exc:
            state.status, state.error = COMPILE_ERROR, str(exc)
            return
        except Exception as exc:  # a broken build must not stop the sweep
            state.status, state.error = BUILD_ERROR, _one_line(exc)
            return
        if not state.healthy:  # parity failed: a fast wrong answer is not a result
            return
        try:
            if not state.timed:
                state.timed = {v: Timed(prepared[v].run, prepared[v].context) for v in VARIANTS}
                for timed in state.timed.values():
                    warm_up_and_calibrate(timed, timer, harness)
                    phases.warmup += timed.warmup_s
            else:
                for v, timed in state.timed.items():
                    timed.rebind(prepared[v].run, prepared[v].context)
                    before = timed.warmup_s
                    rewarm(timed, timer)
                    phases.warmup += timed.warmup_s - before
            a, b = (state.timed[v] for v in VARIANTS)
            before = a.measured_s + b.measured_s
            measure_pairs(a, b, timer, share, round_index, coin)
            phases.timed += a.measured_s + b.measured_s - before
        except Exception as exc:
            state.status, state.error = _failure_status(exc), _one_line(exc)
            return
        state.visits += 1
        if state.status == PENDING:
            state.status = OK

    try:
        for round_index in range(settings.rounds):
            order = rng.permutation(len(states))
            for i in order:
                state = states[i]
                if progress is not None:
                    progress(done, total, state.case.spec.label())
                if state.healthy:
                    visit(state, round_index)
                done += 1
            sweep.rounds_done = round_index + 1
            if progress is not None:
                progress(done, total, "")
            if checkpoint is not None and round_index + 1 < settings.rounds:
                checkpoint(sweep)
    except KeyboardInterrupt:
        sweep.status = "interrupted"
        if checkpoint is not None:
            checkpoint(sweep)
        raise
    except BaseException:
        sweep.status = "crashed"
        if checkpoint is not None:
            checkpoint(sweep)
        raise
    sweep.status = "complete"
    if checkpoint is not None:
        checkpoint(sweep)
    return sweep


def _check_parity(state: CaseState, prepared: Mapping[str, Prepared], seed: int) -> None:
    """Compare each variant's output with the float64 reference; mark the case on failure."""
    spec = state.case.spec
    problems = []
    for v in VARIANTS:
        result = parity.check(
            prepared[v].output(), parity.reference_output(spec, v, seed), spec.dtype
        )
        state.parity[v] = result
        if not result.passed:
            problems.append(f"{v}: {result.problem}")
    if problems:
        state.status = PARITY_FAILED
        state.error = "; ".join(problems)


def _verify(state: CaseState, prepared: Mapping[str, Prepared]) -> None:
    """Cross-check closed-form counts with fvcore on the real modules; record a mismatch."""
    problems = []
    for v in VARIANTS:
        p = prepared[v]
        if p.module is None:
            continue  # a backend without a torch module (fakes, future exported graphs)
        mismatch = counting.cross_check(state.counts[v], p.module, p.example_input)
        if mismatch:
            problems.append(f"{v}: {mismatch}")
    if problems:
        state.status = COUNT_MISMATCH
        state.error = "; ".join(problems)
