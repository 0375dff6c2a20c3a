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
  (``pair``), which is what pairs them up later.
- **Turns.** Consecutive blocks of one environment go to its executor as one turn; only one
  executor works at a time, the others wait. Executors time their own blocks, so inter-process
  messages are never inside a sample.
- **Canary.** After every visit the machine canary (canary.py) takes one sample, recorded with
  its round.
- **Precision.** With ``precision``, rounds continue after ``settings.rounds`` over the cases
  whose speedup interval is still wider than +/-precision, until none is or ``max_time`` seconds
  have passed since the sweep started.

After every round (and on Ctrl-C or a crash) the caller's ``checkpoint`` receives the state, so
nothing measured is lost.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dscbench import counting, stats
from dscbench.measure import HarnessOptions
from dscbench.parity import Parity
from dscbench.results import SAMPLE_COLUMNS, CaseRecord
from dscbench.spec import VARIANTS, Case, RunSettings, spec_to_json
from dscbench.status import HEALTHY, RunStatus, Status
from dscbench.workers import (
    Executor,
    ExecutorLost,
    LocalExecutor,
    PrepareReport,
    TurnReport,
)

if TYPE_CHECKING:
    import pandas as pd

    from dscbench.backends.base import Backend
    from dscbench.canary import Canary

# Re-exported: the executor's names the runner's callers use.
__all__ = [
    "ExecutorLost",
    "LocalExecutor",
    "SweepState",
    "run_sweep",
]

MAX_CRASHES = 3  # a worker that dies this many times in a row is given up on
# With settings.fresh, a case is rebuilt on every visit unless its first build (compilation
# included) took more than this share of the visit's timed budget in that environment.
FRESH_BUILD_SHARE = 0.05
MAX_EXTRA_ROUNDS = 100  # --precision never adds more rounds than this
# Besides every round, a checkpoint follows a visit when this many seconds have passed since
# the last one, so a kill loses at most this much (plus the visit in progress); checkpoints
# append to a journal, so their cost does not grow with the run (results.Journal).
CHECKPOINT_INTERVAL_S = 2.0
RECENT_SAMPLES = 20  # how many recent samples estimate a block's length for planning
DELTA_CASES = 200  # cases per journal line (a checkpoint of 10,000 is written 200 at a time)


@dataclass(slots=True)  # thousands of these: no per-instance __dict__
class Series:
    """The raw samples of one variant of one case in one environment."""

    iterations: int = 0  # per block, fixed after calibration
    per_iteration_s: float = math.nan  # current estimate, for planning visits
    times: list[float] = field(default_factory=list)  # seconds per iteration, one per block
    rounds: list[int] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)  # set index within the case
    measured_s: float = 0.0  # sum of timed block durations
    flushed: int = 0  # samples already handed to a checkpoint (SweepState.take_delta)

    def add(self, block_s: float, round_index: int, set_index: int) -> None:
        self.times.append(block_s / self.iterations)
        self.rounds.append(round_index)
        self.pairs.append(set_index)
        self.measured_s += block_s
        recent = self.times[-RECENT_SAMPLES:]
        self.per_iteration_s = float(np.median(recent))

    @property
    def block_estimate_s(self) -> float:
        return self.iterations * self.per_iteration_s


@dataclass(slots=True)
class EnvState:
    """One case in one environment: status, per-variant samples and what preparing found."""

    status: str = Status.NOT_MEASURED
    error: str = ""
    traceback: str = ""
    visits: int = 0
    checked: bool = False  # parity and counts checked on a first build
    warmed: set[int] = field(default_factory=set)  # processes that warmed this case up
    build_s: float = math.nan  # the first build of both variants, compilation included
    fresh: bool = True  # still rebuilt on every visit (see FRESH_BUILD_SHARE)
    series: dict[str, Series] = field(default_factory=dict)
    prepare_s: dict[str, float] = field(default_factory=dict)  # per variant, all builds
    compile_s: dict[str, float] = field(default_factory=dict)  # per variant, first build
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)
    execution: dict[str, str] = field(default_factory=dict)
    parity: dict[str, Parity] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status in HEALTHY

    @property
    def calibrated(self) -> bool:
        return bool(self.series) and all(s.iterations > 0 for s in self.series.values())

    def fail(self, status: str, error: str, tb: str = "") -> None:
        self.status, self.error, self.traceback = status, error, tb

    def paired(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(standard, separable, round) for the sets where both variants were measured (an
        interrupt can leave a set half done)."""
        std, sep = self.series.get("standard"), self.series.get("separable")
        if std is None or sep is None:
            return np.empty(0), np.empty(0), np.empty(0, dtype=int)
        return stats.pair_blocks(std.pairs, std.times, std.rounds, sep.pairs, sep.times)

    def speedup(self) -> stats.Speedup | None:
        a, b, r = self.paired()
        return stats.round_speedup(a, b, r) if a.size else None


@dataclass(slots=True)
class CaseState:
    case: Case
    counts: dict[str, counting.Counts]  # per variant; a network's arrive with its first build
    envs: dict[str, EnvState]
    sets: int = 0  # sets measured so far (the next set's index)
    breakdown: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    dirty: bool = True  # changed since the last checkpoint

    def record(self, env: str) -> CaseRecord:
        """This case in ``env`` as plain data, for result files and the journal."""
        e = self.envs[env]
        return CaseRecord(
            spec=spec_to_json(self.case.spec),
            backend=self.case.backend,
            env=env,
            status=e.status,
            error=e.error,
            traceback=e.traceback,
            visits=e.visits,
            sets=self.sets,
            checked=e.checked,
            build_s=e.build_s,
            fresh=e.fresh,
            iterations={v: t.iterations for v, t in e.series.items()},
            counts={v: asdict(c) for v, c in self.counts.items()},
            prepare_s=dict(e.prepare_s),
            compile_s=dict(e.compile_s),
            peak_memory_bytes=dict(e.peak_memory_bytes),
            execution=dict(e.execution),
            parity={v: asdict(p) for v, p in e.parity.items()},
            breakdown=dict(self.breakdown),
        )

    @property
    def key(self) -> str:
        return f"{self.case.spec.config_id}@{self.case.backend}"

    @property
    def healthy(self) -> bool:
        return any(e.healthy for e in self.envs.values())

    @property
    def only(self) -> EnvState:
        """The state of a single-environment sweep's one environment."""
        if len(self.envs) != 1:
            raise ValueError("this case was measured in several environments")
        return next(iter(self.envs.values()))


@dataclass
class Phases:
    """Where the wall time went, seconds. ``timed`` is inside timed blocks only."""

    timed: float = 0.0
    warmup: float = 0.0  # warm-up, calibration and the untimed calls that start each turn
    prepare: float = 0.0  # building models and sessions, compilation excluded
    compile: float = 0.0  # torch.compile, TensorRT engine builds
    parity: float = 0.0  # float64 reference outputs and comparisons
    counting: float = 0.0
    canary: float = 0.0  # machine canary samples, settle sleep included
    ipc: float = 0.0  # waiting for executors beyond the work they report (messages, start-up)


@dataclass
class Precision:
    """What ``--precision`` did: the target (relative half-width of the speedup interval), the
    extra rounds it added, why it stopped, and the rows that did not get there."""

    target: float
    max_time_s: float
    extra_rounds: int = 0
    stopped: str = ""
    unmet: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class SweepState:
    cases: list[CaseState]
    settings: RunSettings
    envs: list[str] = field(default_factory=lambda: [""])
    rounds_done: int = 0
    status: str = RunStatus.RUNNING
    phases: Phases = field(default_factory=Phases)
    canary: list[dict[str, float]] = field(default_factory=list)  # {"round": r, part: seconds}
    precision: Precision | None = None
    crashes: dict[str, int] = field(default_factory=dict)  # env -> worker deaths
    canary_flushed: int = 0

    def records(self) -> Iterator[CaseRecord]:
        """Every case in every environment as a record, made one at a time (a sweep of
        thousands of configurations never holds them all)."""
        for state in self.cases:
            for env in state.envs:
                yield state.record(env)

    def _new_samples(self, cases: Iterable[CaseState]) -> dict[str, list[Any]]:
        """The samples of ``cases`` not yet handed to a checkpoint, as columns of
        results.SAMPLE_COLUMNS (a journal line)."""
        columns: dict[str, list[Any]] = {c: [] for c in SAMPLE_COLUMNS}
        for state in cases:
            cid, backend = state.case.spec.config_id, state.case.backend
            for env, e in state.envs.items():
                for v, t in e.series.items():
                    n = len(t.times) - t.flushed
                    if n <= 0:
                        continue
                    columns["config_id"] += [cid] * n
                    columns["variant"] += [v] * n
                    columns["backend"] += [backend] * n
                    columns["env"] += [env] * n
                    columns["round"] += t.rounds[t.flushed :]
                    columns["pair"] += t.pairs[t.flushed :]
                    columns["iterations"] += [t.iterations] * n
                    columns["time_s"] += t.times[t.flushed :]
        return columns

    def samples_frame(self) -> pd.DataFrame:
        """Every sample as a typed frame of results.SAMPLE_COLUMNS, filled into arrays
        allocated once (from Python lists, or from an array per series, a sweep of thousands
        of configurations would take several times the memory of the result)."""
        import pandas as pd

        series = [
            (state.case.spec.config_id, state.case.backend, env, v, t)
            for state in self.cases
            for env, e in state.envs.items()
            for v, t in e.series.items()
            if t.times
        ]
        n = sum(len(t.times) for *_, t in series)
        columns = {
            c: np.empty(n, dtype=dtype)
            for c, dtype in (
                ("config_id", object), ("variant", object), ("backend", object),
                ("env", object), ("round", "int32"), ("pair", "int32"),
                ("iterations", "int64"), ("time_s", "float64"),
            )
        }  # fmt: skip
        at = 0
        for cid, backend, env, v, t in series:
            end = at + len(t.times)
            for c, value in (("config_id", cid), ("variant", v), ("backend", backend),
                             ("env", env), ("iterations", t.iterations)):  # fmt: skip
                columns[c][at:end] = value
            columns["round"][at:end] = t.rounds
            columns["pair"][at:end] = t.pairs
            columns["time_s"][at:end] = t.times
            at = end
        return pd.DataFrame(columns)

    def take_delta(self) -> Iterator[dict[str, Any]]:
        """What changed since the last call, in parts of at most DELTA_CASES cases: the
        records of the cases touched and their new samples (columns); the last part also
        carries the new canary samples. Marks each part's cases handed over as it goes."""
        dirty = [state for state in self.cases if state.dirty]
        for start in range(0, max(len(dirty), 1), DELTA_CASES):
            chunk = dirty[start : start + DELTA_CASES]
            part: dict[str, Any] = {
                "records": [state.record(env).to_json() for state in chunk for env in state.envs],
                "samples": self._new_samples(chunk),
            }
            for state in chunk:
                for e in state.envs.values():
                    for t in e.series.values():
                        t.flushed = len(t.times)
                state.dirty = False
            if start + DELTA_CASES >= len(dirty):
                part["canary"] = self.canary[self.canary_flushed :]
                self.canary_flushed = len(self.canary)
            yield part


@dataclass
class ResumePoint:
    """Where an interrupted run stopped (``--resume``): the journal's records and samples, and
    how many rounds were complete. Samples of later rounds (the interrupted one) are dropped:
    that round is redone, not half counted."""

    records: list[CaseRecord]
    samples: Mapping[str, Sequence[Any]]  # columns of results.SAMPLE_COLUMNS
    canary: list[dict[str, float]]
    rounds_done: int


def restore(states: list[CaseState], point: ResumePoint) -> None:
    """Put the measured part of a run back into fresh case states (matched by configuration,
    backend and environment; the caller checked that the sweep is the same)."""
    by_key = {(r.key[0], r.backend, r.env): r for r in point.records}
    kept: dict[tuple[str, str, str, str], list[tuple[int, int, float]]] = {}
    cols = point.samples
    for cid, v, backend, env, round_, pair, time_s in zip(
        cols["config_id"], cols["variant"], cols["backend"], cols["env"], cols["round"],
        cols["pair"], cols["time_s"], strict=True,
    ):  # fmt: skip
        if round_ < point.rounds_done:
            kept.setdefault((cid, backend, env, v), []).append((round_, pair, time_s))
    for state in states:
        cid, backend = state.case.spec.config_id, state.case.backend
        for env, e in state.envs.items():
            r = by_key.get((cid, backend, env))
            if r is None or e.status == Status.SKIPPED:
                continue
            state.sets = max(state.sets, r.sets)
            state.counts.update(
                {v: counting.Counts(**c) for v, c in r.counts.items() if v not in state.counts}
            )
            state.breakdown.update(r.breakdown)
            e.status, e.error, e.traceback = r.status, r.error, r.traceback
            e.checked, e.build_s, e.fresh = r.checked, r.build_s, r.fresh
            e.prepare_s, e.compile_s = dict(r.prepare_s), dict(r.compile_s)
            e.peak_memory_bytes, e.execution = dict(r.peak_memory_bytes), dict(r.execution)
            e.parity = {v: Parity(**p) for v, p in r.parity.items()}
            rounds_seen: set[int] = set()
            for v, n in r.iterations.items():
                t = Series(n)
                for round_, pair, time_s in kept.get((cid, backend, env, v), []):
                    t.times.append(time_s)
                    t.rounds.append(round_)
                    t.pairs.append(pair)
                    t.measured_s += time_s * n
                    rounds_seen.add(round_)
                t.flushed = len(t.times)  # already in the journal
                if t.times:
                    t.per_iteration_s = float(np.median(t.times[-RECENT_SAMPLES:]))
                e.series[v] = t
            e.visits = len(rounds_seen)
            if e.status == Status.OK and not e.visits:  # measured only in the round being redone
                e.status = Status.NOT_MEASURED
            if e.series and not all(t.times for t in e.series.values()):
                e.series = {}  # calibrated in the redone round only: calibrate again


Checkpoint = Callable[[SweepState], None]
Progress = Callable[[int, int, str], None]  # (visits done, visits total, label of current case)


def local(backends: Mapping[str, Backend], *, cache_bytes: int = 1 << 30) -> dict[str, Executor]:
    """The executors of a plain, single-environment sweep measured in this process."""
    return {"": LocalExecutor(backends, cache_bytes=cache_bytes)}


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
    *,
    checkpoint: Checkpoint | None = None,
    progress: Progress | None = None,
    harness: HarnessOptions | None = None,
    verify_counts: bool = True,
    skipped: Mapping[tuple[Case, str], str] | None = None,
    canary: Canary | None = None,
    precision: float | None = None,
    max_time: float = math.inf,
    wall: Callable[[], float] = time.perf_counter,
    resume: ResumePoint | None = None,
) -> SweepState:
    """Measure every case in every environment for ``settings.rounds`` rounds, and more with
    ``precision``; return the final state.

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
    harness = harness or HarnessOptions(warmup=settings.warmup)
    pools = {
        env: list(ex) if isinstance(ex, (list, tuple)) else [ex] for env, ex in executors.items()
    }
    envs = list(pools)
    phases = Phases()
    started = wall()
    t0 = time.perf_counter()
    states = [
        CaseState(
            case,
            {v: counting.closed_form(case.spec, v) for v in VARIANTS}
            if case.spec.kind == "conv"
            else {},
            {env: EnvState() for env in envs},
        )
        for case in cases
    ]
    phases.counting += time.perf_counter() - t0
    for state in states:
        for env, env_state in state.envs.items():
            reason = (skipped or {}).get((state.case, env))
            if reason is not None:
                env_state.fail(Status.SKIPPED, reason)
    sweep = SweepState(states, settings, envs=envs, phases=phases)
    first_round = 0
    if resume is not None:
        restore(states, resume)
        first_round = sweep.rounds_done = resume.rounds_done
        sweep.canary = [c for c in resume.canary if c.get("round", 0) < first_round]
        sweep.canary_flushed = len(sweep.canary)
    if precision is not None:
        sweep.precision = Precision(precision, max_time)
        sweep.precision.extra_rounds = max(0, first_round - settings.rounds)
    last_write = [time.perf_counter()]

    def save(force: bool = True) -> None:
        """Checkpoint now, or (``force`` False) if CHECKPOINT_INTERVAL_S have passed."""
        if checkpoint is None:
            return
        if force or time.perf_counter() - last_write[0] >= CHECKPOINT_INTERVAL_S:
            checkpoint(sweep)
            last_write[0] = time.perf_counter()

    # Before anything is measured: a kill during the first round leaves a readable run whose
    # rows are all not_measured, not an empty directory.
    save()
    # A resumed run's later rounds get their own stream (the interrupted process's generator
    # state is gone), still determined by the seed.
    rng = np.random.default_rng([settings.seed, first_round] if first_round else settings.seed)
    share = settings.min_time / settings.rounds
    settle = harness.switch_settle if len(envs) > 1 else 0.0
    total = len(states) * settings.rounds
    done = len(states) * min(first_round, settings.rounds)

    def lost(env: str, replica: int, state: CaseState, exc: ExecutorLost) -> None:
        """A worker died while working on ``state``: that case fails in that environment; the
        worker is restarted, or, after MAX_CRASHES, its environment is given up on."""
        sweep.crashes[env] = sweep.crashes.get(env, 0) + 1
        state.envs[env].fail(Status.WORKER_CRASHED, str(exc))
        if sweep.crashes[env] >= MAX_CRASHES:
            for other in states:
                if other.envs[env].healthy:
                    other.dirty = True
                    other.envs[env].fail(
                        Status.WORKER_CRASHED,
                        f"not measured: the workers of environment {env!r} died "
                        f"{MAX_CRASHES} times (last: {exc})",
                    )
            return
        try:
            pools[env][replica].restart()
        except ExecutorLost as again:
            lost(env, replica, state, again)

    def absorb(state: CaseState, env_state: EnvState, report: PrepareReport) -> None:
        for v, fields_ in report.counts.items():
            state.counts.setdefault(v, counting.Counts(**fields_))
        for v, rows in report.breakdown.items():
            state.breakdown.setdefault(v, rows)
        for name, seconds in report.phases.items():
            setattr(phases, name, getattr(phases, name) + seconds)
        for v, seconds in report.prepare_s.items():
            env_state.prepare_s[v] = env_state.prepare_s.get(v, 0.0) + seconds
        for target, values in (
            (env_state.compile_s, report.compile_s),
            (env_state.peak_memory_bytes, report.peak_memory_bytes),
            (env_state.execution, report.execution),
        ):
            for v, value in values.items():
                target.setdefault(v, value)
        for v, fields_ in report.parity.items():
            env_state.parity[v] = Parity(**fields_)
        if report.status == Status.COUNT_MISMATCH:
            env_state.status, env_state.error = Status.COUNT_MISMATCH, report.error
        elif report.status != Status.OK:
            env_state.fail(report.status, report.error, report.traceback)

    def ready(state: CaseState, env: str, replica: int) -> bool:
        """Prepare the case in ``env``'s process ``replica``: on the case's first build, check
        it, and on its first visit, warm it up and calibrate its blocks."""
        env_state = state.envs[env]
        executor = pools[env][replica]
        spec = state.case.spec
        checks = not env_state.checked
        fresh = settings.fresh and env_state.fresh and env_state.checked
        t0 = time.perf_counter()
        try:
            report = executor.prepare(
                state.key,
                spec_to_json(spec),
                state.case.backend,
                settings.seed,
                settings.parity and checks,
                verify_counts and checks,
                fresh,
                checks,
                # with settings.fresh, builds cheaper than this are rebuilt on every visit
                # (see FRESH_BUILD_SHARE): the executor need not keep them
                FRESH_BUILD_SHARE * 2 * share if settings.fresh else 0.0,
            )
        except ExecutorLost as exc:
            lost(env, replica, state, exc)
            return False
        phases.ipc += max(0.0, time.perf_counter() - t0 - sum(report.phases.values()))
        absorb(state, env_state, report)
        if not env_state.checked:
            env_state.build_s = report.phases["prepare"] + report.phases["compile"]
            env_state.fresh = env_state.build_s <= FRESH_BUILD_SHARE * 2 * share
        env_state.checked = True
        if not env_state.healthy:
            return False
        if not env_state.calibrated:  # the first process to see the case sizes its blocks
            t0 = time.perf_counter()
            try:
                cal = executor.calibrate(state.key, harness.to_json())
            except ExecutorLost as exc:
                lost(env, replica, state, exc)
                return False
            phases.warmup += cal.untimed_s
            phases.ipc += max(0.0, time.perf_counter() - t0 - cal.untimed_s)
            if cal.status != Status.OK:
                env_state.fail(cal.status, cal.error, cal.traceback)
                return False
            env_state.series = {
                v: Series(cal.iterations[v], cal.per_iteration_s[v]) for v in VARIANTS
            }
        # Other processes start with the turn's untimed call of each variant, as every visit
        # does with its freshly built tensors.
        env_state.warmed.add(replica)
        return True

    def record(
        state: CaseState, env: str, blocks: list[tuple[str, int]], report: TurnReport, round_: int
    ) -> None:
        env_state = state.envs[env]
        for (v, set_no), block_s in zip(blocks, report.block_s, strict=False):
            env_state.series[v].add(block_s, round_, state.sets + set_no)
        phases.timed += sum(report.block_s)
        phases.warmup += report.untimed_s

    def visit(state: CaseState, round_index: int) -> None:
        state.dirty = True
        replica = {env: round_index % len(pools[env]) for env in envs}
        live = [env for env in envs if state.envs[env].healthy and ready(state, env, replica[env])]
        if not live:
            return
        sets = plan_visit(
            live, {env: state.envs[env].series for env in live}, share, rng, harness.order
        )
        warmed: set[str] = set()
        for env, blocks in turns_of(sets):
            env_state = state.envs[env]
            if not env_state.healthy:
                continue  # failed earlier in this visit
            asked = [(v, env_state.series[v].iterations) for v, _ in blocks]
            rewarm = [] if env in warmed else list(VARIANTS)
            warmed.add(env)
            t0 = time.perf_counter()
            try:
                report = pools[env][replica[env]].turn(state.key, asked, rewarm, settle)
            except ExecutorLost as exc:
                lost(env, replica[env], state, exc)
                continue
            except KeyboardInterrupt as exc:
                partial = getattr(exc, "partial", None)
                if partial is not None:
                    record(state, env, blocks, partial, round_index)
                raise
            busy = sum(report.block_s) + report.untimed_s
            phases.ipc += max(0.0, time.perf_counter() - t0 - busy)
            record(state, env, blocks, report, round_index)
            if report.status != Status.OK:
                env_state.fail(report.status, report.error, report.traceback)
        state.sets += len(sets)
        for env in live:
            env_state = state.envs[env]
            if env_state.healthy:
                env_state.visits += 1
                if env_state.status == Status.NOT_MEASURED:
                    env_state.status = Status.OK
        if canary is not None:
            t0 = time.perf_counter()
            sample = canary.sample()
            phases.canary += time.perf_counter() - t0
            sweep.canary.append({"round": round_index, **sample})

    def one_round(round_index: int, order: list[CaseState], timed_out: Callable[[], bool]) -> None:
        nonlocal done
        for state in order:
            if timed_out():
                break
            if progress is not None:
                progress(done, total, state.case.spec.label())
            if state.healthy:
                visit(state, round_index)
                save(force=False)
            done += 1
        if progress is not None:
            progress(done, total, "")

    def imprecise(state: CaseState, target: float) -> list[tuple[str, float]]:
        """(environment, relative half-width) of each healthy row of ``state`` whose speedup
        interval is wider than +/-target (or has none yet)."""
        out = []
        for env, env_state in state.envs.items():
            if env_state.healthy:
                sp = env_state.speedup()
                width = sp.relative_half_width if sp is not None else math.nan
                if not width <= target:
                    out.append((env, width))
        return out

    def refine(p: Precision) -> None:
        """Extra rounds over the cases still short of the precision target."""
        nonlocal total

        def timed_out() -> bool:
            return wall() - started >= max_time

        while True:
            todo = [s for s in states if s.healthy and imprecise(s, p.target)]
            if not todo:
                p.stopped = "every row reached the target"
                break
            if timed_out():
                p.stopped = "--max-time ran out"
                break
            if p.extra_rounds >= MAX_EXTRA_ROUNDS:
                p.stopped = f"{MAX_EXTRA_ROUNDS} extra rounds"
                break
            total += len(todo)
            round_index = settings.rounds + p.extra_rounds
            one_round(round_index, [todo[i] for i in rng.permutation(len(todo))], timed_out)
            p.extra_rounds += 1
            sweep.rounds_done = round_index + 1
            save()
        p.unmet = [
            {
                "config_id": s.case.spec.config_id,
                "backend": s.case.backend,
                "env": env,
                "relative_half_width": width,
            }
            for s in states
            for env, width in imprecise(s, p.target)
        ]

    try:
        for round_index in range(first_round, settings.rounds):
            one_round(round_index, [states[i] for i in rng.permutation(len(states))], lambda: False)
            sweep.rounds_done = round_index + 1
            if round_index + 1 < settings.rounds or precision:
                save()
        if sweep.precision is not None:
            refine(sweep.precision)
    except KeyboardInterrupt:
        sweep.status = RunStatus.INTERRUPTED
        if checkpoint is not None:
            checkpoint(sweep)
        raise
    except BaseException:
        sweep.status = RunStatus.CRASHED
        if checkpoint is not None:
            checkpoint(sweep)
        raise
    sweep.status = RunStatus.COMPLETE
    if checkpoint is not None:
        checkpoint(sweep)
    return sweep
