"""The coordinator: rounds over shuffled cases; each visit times every environment x variant of
a case in interleaved sets of blocks.

- **Rounds.** Each round visits every still-healthy case once, in a fresh shuffled order, and
  spends ``min_time / rounds`` seconds of timed blocks on each variant in each environment, so a
  slow phase of a shared machine spreads over all cases instead of landing on one.
- **Sets.** A visit is a number of *sets*; a set is one block of every environment x variant,
  in a fresh random order (``plan_visit``: by default the environments in random order, each
  one's two variants back to back in random order). With one environment a set is the
  familiar pair (standard and separable adjacent in time); with several, the same
  configuration in every environment is measured within the same few milliseconds, so a
  machine that changes speed moves all of them alike. Samples record their set index
  (``pair``), which is what pairs them up later. The number of sets comes from block-length
  estimates; blocks that ran shorter than estimated get more sets (up to ``TOP_UPS`` more
  batches), so a visit's timed seconds, averaged over its environment x variant slots, reach
  its share.
- **Turns.** Consecutive blocks of one environment go to its executor as one turn; only one
  executor works at a time, the others wait. Executors time their own blocks, so inter-process
  messages are never inside a sample.
- **Canary.** After every visit the machine canary (canary.py) takes a sample (several where a
  round has fewer than ``CANARY_PER_ROUND`` visits), recorded with its round.
- **Extra rounds** (extra_rounds.py). With ``precision`` or ``decide``, rounds continue after
  ``settings.rounds``, each in fresh worker processes, over the cases still short of the target,
  until none is or ``max_time`` seconds have passed since the sweep started; with ``decide``
  and several environments, a slowdown is then confirmed in fresh processes.
- **Counting** (counted_rounds.py). With ``measure="instructions"`` a round counts each case's
  instructions in worker processes under valgrind instead of timing blocks, several processes
  at once.

After every round (and on Ctrl-C or a crash) the caller's ``checkpoint`` receives the state, so
nothing measured is lost. The
coordinator is a class (``Coordinator``) whose methods are these steps; its state lives in
sweep_state.py.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from dscbench import counting
from dscbench.counted_rounds import CountedRounds
from dscbench.extra_rounds import ExtraRounds
from dscbench.measure import HarnessOptions
from dscbench.parity import Parity
from dscbench.spec import VARIANTS, Case, RunSettings, spec_to_json
from dscbench.status import RunStatus, Status
from dscbench.sweep_state import (
    CaseState,
    EnvState,
    Phases,
    Precision,
    ResumePoint,
    Series,
    SweepState,
    restore,
)
from dscbench.workers import (
    Executor,
    ExecutorLost,
    LocalExecutor,
    PrepareReport,
    TurnReport,
)

if TYPE_CHECKING:
    from dscbench.backends.base import Backend
    from dscbench.canary import Canary

# Re-exported: the state classes (sweep_state.py) are what run_sweep returns and resumes from.
__all__ = [
    "CaseState",
    "Coordinator",
    "EnvState",
    "ExecutorLost",
    "LocalExecutor",
    "Phases",
    "Precision",
    "ResumePoint",
    "Series",
    "SweepState",
    "run_sweep",
]

MAX_CRASHES = 3  # a worker that dies this many times in a row is given up on
# With settings.fresh, a case is rebuilt on every visit unless its first build (compilation
# included) took more than this share of the visit's timed budget in that environment.
FRESH_BUILD_SHARE = 0.05
# Besides every round, a checkpoint follows a visit when this many seconds have passed since
# the last one, so a kill loses at most this much (plus the visit in progress); checkpoints
# append to a journal, so their cost does not grow with the run (results.Journal).
CHECKPOINT_INTERVAL_S = 2.0

Checkpoint = Callable[[SweepState], None]
Progress = Callable[[int, int, str], None]  # (visits done, visits total, label of current case)


def local(backends: Mapping[str, Backend], *, cache_bytes: int = 1 << 30) -> dict[str, Executor]:
    """The executors of a plain, single-environment sweep measured in this process."""
    return {"": LocalExecutor(backends, cache_bytes=cache_bytes)}


# The machine canary samples after every visit, and more than once where a round has fewer
# visits than this: a round's median needs samples of its own (canary.run_estimate).
CANARY_PER_ROUND = 10

# A visit tops up its sets at most this many times when its blocks ran shorter than planned.
TOP_UPS = 3


def plan_visit(
    envs: list[str],
    series: Mapping[str, Mapping[str, Series]],
    budget_s: float,
    rng: np.random.Generator,
    order: str = "env",
) -> list[list[tuple[str, str]]]:
    """The sets of one visit, each in a fresh random order: of the environments, each one's
    two variant blocks adjacent in a random order of their own (``order="env"``), or of every
    (environment, variant) block (``order="block"``: the most mixing, about twice the switches
    between worker processes). As many sets as it takes, by the current block-length
    estimates, for the blocks to add up to ``budget_s`` per environment x variant (at least
    one set). With one environment both orders are the same random pair."""
    slots = [(env, v) for env in envs for v in VARIANTS]
    per_set = sum(series[env][v].block_estimate_s for env, v in slots)
    target = budget_s * len(slots)
    n = max(1, math.ceil(target / per_set - 1e-9)) if per_set > 0 else 1
    if order == "block":
        return [[slots[i] for i in rng.permutation(len(slots))] for _ in range(n)]
    sets = []
    for _ in range(n):
        one: list[tuple[str, str]] = []
        for e in rng.permutation(len(envs)):
            one += [(envs[e], VARIANTS[i]) for i in rng.permutation(len(VARIANTS))]
        sets.append(one)
    return sets


def turns_of(sets: list[list[tuple[str, str]]]) -> list[tuple[str, list[tuple[str, int]]]]:
    """Group a visit's blocks into turns: runs of consecutive blocks of one environment, each
    block as (variant, set number within the visit)."""
    turns: list[tuple[str, list[tuple[str, int]]]] = []
    for set_no, order in enumerate(sets):
        for env, v in order:
            if turns and turns[-1][0] == env:
                turns[-1][1].append((v, set_no))
            else:
                turns.append((env, [(v, set_no)]))
    return turns


def run_sweep(
    cases: list[Case],
    settings: RunSettings,
    executors: Mapping[str, Executor | Sequence[Executor]],
    **options: Any,
) -> SweepState:
    """Measure every case in every environment for ``settings.rounds`` rounds, and more with
    ``precision``; return the final state. ``options`` are Coordinator's keywords.

    ``executors`` maps each environment to its executor, or to several: its *processes*.
    Round ``r`` of an environment is measured by its process ``r mod K``, so what differs from
    one process to another (where its code and buffers landed, which kernels it picked) shows
    up between rounds, where the intervals see it, instead of biasing the whole run.

    ``skipped`` maps (case, environment) to why it cannot run there; those are recorded and
    never run. On the first build of a case in an environment, its outputs are checked against
    a float64 reference (``settings.parity``) and its counts against fvcore (``verify_counts``);
    a case that fails parity is not timed there. A failure of one case in one environment
    (including its worker dying) marks only that; KeyboardInterrupt checkpoints the state with
    status ``interrupted`` and propagates.

    ``resume`` continues an interrupted run: what it measured in its complete rounds is kept,
    and rounds go on from there.
    """
    return Coordinator(cases, settings, executors, **options).run()


class Coordinator(ExtraRounds, CountedRounds):
    """One sweep being measured (``run_sweep`` says what it does). The state it builds up is
    ``self.sweep``; its methods are the steps of a round, top-down: ``run`` -> ``one_round``
    -> ``visit`` (``ready`` to prepare and calibrate a case, then one ``turn`` per run of
    blocks of one environment) -> ``save``; ``refine`` adds the rounds ``precision`` asks for;
    ``lost`` handles a worker that died."""

    def __init__(
        self,
        cases: list[Case],
        settings: RunSettings,
        executors: Mapping[str, Executor | Sequence[Executor]],
        *,
        checkpoint: Checkpoint | None = None,
        progress: Progress | None = None,
        harness: HarnessOptions | None = None,
        verify_counts: bool = True,
        skipped: Mapping[tuple[Case, str], str] | None = None,
        canary: Canary | None = None,
        precision: float | None = None,
        decide: float | None = None,
        max_time: float = math.inf,
        wall: Callable[[], float] = time.perf_counter,
        resume: ResumePoint | None = None,
        measure: str = "time",
    ):
        self.settings = settings
        self.count_instructions = measure == "instructions"  # count instructions instead of timing
        self.checkpoint = checkpoint
        self.progress = progress
        self.harness = harness or HarnessOptions(warmup=settings.warmup)
        self.verify_counts = verify_counts
        self.canary = canary
        self.precision = precision if decide is None else decide  # the target, or None
        self.max_time = max_time
        self.wall = wall
        self.pools = {
            env: list(ex) if isinstance(ex, (list, tuple)) else [ex]
            for env, ex in executors.items()
        }
        self.envs = list(self.pools)
        # Which process measured a block: replica i of an environment starts as process i; a
        # restart (a crash, or the fresh processes of extra rounds) makes it a new process.
        self.identity = {env: list(range(len(pool))) for env, pool in self.pools.items()}
        self.next_identity = {env: len(pool) for env, pool in self.pools.items()}
        self.phases = Phases()
        self.started = wall()
        self.states = self._fresh_states(cases, skipped or {})
        self.sweep = SweepState(self.states, settings, envs=self.envs, phases=self.phases)
        self.first_round = 0
        if resume is not None:
            restore(self.states, resume)
            self.renumber(resume)
            self.first_round = self.sweep.rounds_done = resume.rounds_done
            self.sweep.canary = [c for c in resume.canary if c.get("round", 0) < self.first_round]
            self.sweep.canary_flushed = len(self.sweep.canary)
        if decide is not None:
            self.sweep.precision = Precision(decide, max_time, mode="decide")
        elif precision is not None:
            self.sweep.precision = Precision(precision, max_time)
            self.sweep.precision.extra_rounds = max(0, self.first_round - settings.rounds)
        self.last_write = time.perf_counter()
        # A resumed run's later rounds get their own stream (the interrupted process's
        # generator state is gone), still determined by the seed.
        self.rng = np.random.default_rng(
            [settings.seed, self.first_round] if self.first_round else settings.seed
        )
        self.share = settings.min_time / settings.rounds  # timed s per variant, env and visit
        self.settle = self.harness.switch_settle if len(self.envs) > 1 else 0.0
        self.canary_samples = 1  # after each visit; one_round raises it for short rounds
        self.canary_visits = 0
        self.total = len(self.states) * settings.rounds  # visits, for the progress callback
        self.done = len(self.states) * min(self.first_round, settings.rounds)

    def _fresh_states(
        self, cases: list[Case], skipped: Mapping[tuple[Case, str], str]
    ) -> list[CaseState]:
        """A state per case (a layer's closed-form counts included), skips marked."""
        t0 = time.perf_counter()
        states = [
            CaseState(
                case,
                {v: counting.closed_form(case.spec, v) for v in VARIANTS}
                if case.spec.kind == "conv"
                else {},
                {env: EnvState() for env in self.envs},
            )
            for case in cases
        ]
        self.phases.counting += time.perf_counter() - t0
        for state in states:
            for env, env_state in state.envs.items():
                reason = skipped.get((state.case, env))
                if reason is not None:
                    env_state.fail(Status.SKIPPED, reason)
        return states

    def run(self) -> SweepState:
        """The rounds, then the extra rounds of ``precision``; a checkpoint after each, and one
        with the final status however the sweep ends."""
        sweep, settings = self.sweep, self.settings
        # Before anything is measured: a kill during the first round leaves a readable run
        # whose rows are all not_measured, not an empty directory.
        self.save()
        try:
            for round_index in range(self.first_round, settings.rounds):
                order = [self.states[i] for i in self.rng.permutation(len(self.states))]
                self.one_round(round_index, order)
                sweep.rounds_done = round_index + 1
                if round_index + 1 < settings.rounds or self.precision:
                    self.save()
            if sweep.precision is not None:
                self.refine(sweep.precision)
                if sweep.precision.mode == "decide":
                    self.confirm(sweep.precision.target)
        except KeyboardInterrupt:
            self.finish(RunStatus.INTERRUPTED)
            raise
        except BaseException:
            self.finish(RunStatus.CRASHED)
            raise
        self.finish(RunStatus.COMPLETE)
        return sweep

    def finish(self, status: str) -> None:
        self.sweep.status = status
        if self.checkpoint is not None:
            self.checkpoint(self.sweep)

    def save(self, force: bool = True) -> None:
        """Checkpoint now, or (``force`` False) if CHECKPOINT_INTERVAL_S have passed."""
        if self.checkpoint is None:
            return
        if force or time.perf_counter() - self.last_write >= CHECKPOINT_INTERVAL_S:
            self.checkpoint(self.sweep)
            self.last_write = time.perf_counter()

    def one_round(self, round_index: int, order: list[CaseState], deadline: bool = False) -> int:
        """Visit the healthy cases of ``order``; with ``deadline``, stop when ``max_time`` has
        run out. Returns the number of visits made."""
        if self.count_instructions:
            return self.count_round(round_index, order, deadline)
        visited = 0
        healthy = sum(state.healthy for state in order)
        self.canary_samples = max(1, math.ceil(CANARY_PER_ROUND / max(1, healthy)))
        for state in order:
            if deadline and self.timed_out():
                break
            if self.progress is not None:
                self.progress(self.done, self.total, state.case.spec.label())
            if state.healthy:
                self.visit(state, round_index)
                visited += 1
                self.save(force=False)
            self.done += 1
        if self.progress is not None:
            self.progress(self.done, self.total, "")
        return visited

    def timed_out(self) -> bool:
        return self.wall() - self.started >= self.max_time

    def visit(self, state: CaseState, round_index: int) -> None:
        """One visit of a case: prepare it in every healthy environment, then its sets of
        blocks, turn by turn; a canary sample after."""
        state.dirty = True
        replica = {env: round_index % len(self.pools[env]) for env in self.envs}
        live = [
            env
            for env in self.envs
            if state.envs[env].healthy and self.ready(state, env, replica[env])
        ]
        if not live:
            return
        before = {(env, v): s.measured_s for env in live for v, s in state.envs[env].series.items()}
        warmed: set[str] = set()
        budget = self.share
        for _ in range(1 + TOP_UPS):
            sets = plan_visit(
                live,
                {env: state.envs[env].series for env in live},
                budget,
                self.rng,
                self.harness.order,
            )
            for env, blocks in turns_of(sets):
                if not state.envs[env].healthy:
                    continue  # failed earlier in this visit
                self.turn(state, env, replica[env], blocks, round_index, rewarm=env not in warmed)
                warmed.add(env)
            state.sets += len(sets)
            # The plan trusted block-length estimates; blocks that ran shorter leave the visit
            # short of its timed seconds: more sets (planned from the updated estimates) top
            # it up.
            live = [env for env in live if state.envs[env].healthy]
            spent = [
                s.measured_s - before[env, v]
                for env in live
                for v, s in state.envs[env].series.items()
            ]
            budget = self.share - sum(spent) / max(1, len(spent))
            if not spent or budget <= 0:
                break
        for env in live:
            env_state = state.envs[env]
            if env_state.healthy:
                env_state.visits += 1
                if env_state.status == Status.NOT_MEASURED:
                    env_state.status = Status.OK
        if self.canary is not None:
            t0 = time.perf_counter()
            self.canary_visits += 1  # samples of one visit are one moment (canary.run_estimate)
            for _ in range(self.canary_samples):
                self.sweep.canary.append(
                    {"round": round_index, "visit": self.canary_visits, **self.canary.sample()}
                )
            self.phases.canary += time.perf_counter() - t0

    def turn(
        self,
        state: CaseState,
        env: str,
        replica: int,
        blocks: list[tuple[str, int]],
        round_index: int,
        rewarm: bool,
    ) -> None:
        """Time ``blocks`` (variant, set number) of ``state`` in ``env``'s process
        ``replica``, after an untimed call of each variant on the environment's first turn of
        the visit (``rewarm``)."""
        env_state = state.envs[env]
        asked = [(v, env_state.series[v].iterations) for v, _ in blocks]
        t0 = time.perf_counter()
        try:
            report = self.pools[env][replica].turn(
                state.key, asked, list(VARIANTS) if rewarm else [], self.settle
            )
        except ExecutorLost as exc:
            self.lost(env, replica, state, exc)
            return
        except KeyboardInterrupt as exc:
            partial = getattr(exc, "partial", None)
            if partial is not None:
                self.record(state, env, blocks, partial, round_index, replica)
            raise
        busy = sum(report.block_s) + report.untimed_s
        self.phases.ipc += max(0.0, time.perf_counter() - t0 - busy)
        self.record(state, env, blocks, report, round_index, replica)
        if report.status != Status.OK:
            env_state.fail(report.status, report.error, report.traceback)

    def record(
        self,
        state: CaseState,
        env: str,
        blocks: list[tuple[str, int]],
        report: TurnReport,
        round_index: int,
        replica: int,
    ) -> None:
        env_state = state.envs[env]
        process = self.identity[env][replica]
        for (v, set_no), block_s in zip(blocks, report.block_s, strict=False):
            env_state.series[v].add(block_s, round_index, state.sets + set_no, process)
        self.phases.timed += sum(report.block_s)
        self.phases.warmup += report.untimed_s

    def ready(self, state: CaseState, env: str, replica: int, checking: bool = True) -> bool:
        """Prepare the case in ``env``'s process ``replica``: on the case's first build, check
        it (unless not ``checking`` yet), and on its first visit, warm it up and calibrate its
        blocks."""
        env_state = state.envs[env]
        executor = self.pools[env][replica]
        settings = self.settings
        checks = checking and not env_state.checked
        fresh = settings.fresh and env_state.fresh and env_state.checked
        t0 = time.perf_counter()
        try:
            report = executor.prepare(
                state.key,
                spec_to_json(state.case.spec),
                state.case.backend,
                settings.seed,
                settings.parity and checks,
                self.verify_counts and checks,
                fresh,
                checks,
                # with settings.fresh, builds cheaper than this are rebuilt on every visit
                # (see FRESH_BUILD_SHARE): the executor need not keep them
                FRESH_BUILD_SHARE * 2 * self.share if settings.fresh else 0.0,
            )
        except ExecutorLost as exc:
            self.lost(env, replica, state, exc)
            return False
        self.phases.ipc += max(0.0, time.perf_counter() - t0 - sum(report.phases.values()))
        self.absorb(state, env_state, report)
        if checks:
            env_state.build_s = report.phases["prepare"] + report.phases["compile"]
            env_state.fresh = env_state.build_s <= FRESH_BUILD_SHARE * 2 * self.share
            env_state.checked = True
        if not env_state.healthy:
            return False
        if self.count_instructions:
            return True
        if not env_state.calibrated and not self.calibrate(state, env, replica):
            return False
        # Other processes start with the turn's untimed call of each variant, as every visit
        # does with its freshly built tensors.
        env_state.warmed.add(replica)
        return True

    def calibrate(self, state: CaseState, env: str, replica: int) -> bool:
        """Warm the case up and size its blocks (the first process to see it does)."""
        env_state = state.envs[env]
        t0 = time.perf_counter()
        try:
            cal = self.pools[env][replica].calibrate(state.key, self.harness.to_json())
        except ExecutorLost as exc:
            self.lost(env, replica, state, exc)
            return False
        self.phases.warmup += cal.untimed_s
        self.phases.ipc += max(0.0, time.perf_counter() - t0 - cal.untimed_s)
        if cal.status != Status.OK:
            env_state.fail(cal.status, cal.error, cal.traceback)
            return False
        env_state.series = {v: Series(cal.iterations[v], cal.per_iteration_s[v]) for v in VARIANTS}
        return True

    def absorb(self, state: CaseState, env_state: EnvState, report: PrepareReport) -> None:
        """What preparing found: counts, breakdown, phase times, memory, parity, status."""
        for v, fields_ in report.counts.items():
            state.counts.setdefault(v, counting.Counts(**fields_))
        for v, rows in report.breakdown.items():
            state.breakdown.setdefault(v, rows)
        for name, seconds in report.phases.items():
            setattr(self.phases, name, getattr(self.phases, name) + seconds)
        for v, seconds in report.prepare_s.items():
            env_state.prepare_s[v] = env_state.prepare_s.get(v, 0.0) + seconds
        for target, values in (
            (env_state.compile_s, report.compile_s),
            (env_state.peak_memory_bytes, report.peak_memory_bytes),
            (env_state.execution, report.execution),
            (env_state.cache, report.cache),
            (env_state.kernels, report.kernels),
            (env_state.warnings, report.warnings),
        ):
            for v, value in values.items():
                target.setdefault(v, value)
        for v, fields_ in report.parity.items():
            env_state.parity[v] = Parity(**fields_)
        if report.status == Status.COUNT_MISMATCH:
            env_state.status, env_state.error = Status.COUNT_MISMATCH, report.error
        elif report.status != Status.OK:
            env_state.fail(report.status, report.error, report.traceback)

    def lost(self, env: str, replica: int, state: CaseState, exc: ExecutorLost) -> None:
        """A worker died while working on ``state``: that case fails in that environment; the
        worker is restarted, or, after MAX_CRASHES, its environment is given up on."""
        crashes = self.sweep.crashes
        crashes[env] = crashes.get(env, 0) + 1
        state.envs[env].fail(Status.WORKER_CRASHED, str(exc))
        if crashes[env] >= MAX_CRASHES:
            for other in self.states:
                if other.envs[env].healthy:
                    other.dirty = True
                    other.envs[env].fail(
                        Status.WORKER_CRASHED,
                        f"not measured: the workers of environment {env!r} died "
                        f"{MAX_CRASHES} times (last: {exc})",
                    )
            return
        try:
            executor = self.pools[env][replica]
            executor.begin_restart()  # in two halves: counting threads may work meanwhile
            executor.finish_restart()
            self.renew(env, replica)
        except ExecutorLost as again:
            self.lost(env, replica, state, again)
