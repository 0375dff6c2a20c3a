"""What a sweep has measured so far: per case, environment and variant, its status and raw
samples (``SweepState`` and its parts), the deltas a checkpoint appends to the journal, and the
resume point an interrupted run is restored from. The coordinator (runner.py) changes these;
checkpoints (commands/run/recorder.py) read them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from dscbench import counting, stats
from dscbench.parity import Parity
from dscbench.results import SAMPLE_COLUMNS, CaseRecord
from dscbench.spec import VARIANTS, Case, RunSettings, spec_to_json
from dscbench.status import HEALTHY, RunStatus, Status

if TYPE_CHECKING:
    import pandas as pd

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
    processes: list[int] = field(default_factory=list)  # worker process of the environment
    measured_s: float = 0.0  # sum of timed block durations
    flushed: int = 0  # samples already handed to a checkpoint (SweepState.take_delta)

    def add(self, block_s: float, round_index: int, set_index: int, process: int = 0) -> None:
        self.times.append(block_s / self.iterations)
        self.rounds.append(round_index)
        self.pairs.append(set_index)
        self.processes.append(process)
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
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)  # cold: cold.Rotation
    kernels: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)  # found while preparing
    parity: dict[str, Parity] = field(default_factory=dict)
    # --measure instructions: per variant, instructions per call, one count per visit
    instructions: dict[str, list[float]] = field(default_factory=dict)
    allocator_instructions: dict[str, list[float]] = field(default_factory=dict)

    @property
    def healthy(self) -> bool:
        return self.status in HEALTHY

    @property
    def calibrated(self) -> bool:
        return bool(self.series) and all(s.iterations > 0 for s in self.series.values())

    def fail(self, status: str, error: str, tb: str = "") -> None:
        self.status, self.error, self.traceback = status, error, tb

    def paired(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(standard, separable, round, process) for the sets where both variants were
        measured (an interrupt can leave a set half done)."""
        std, sep = self.series.get("standard"), self.series.get("separable")
        if std is None or sep is None:
            none = np.empty(0, dtype=int)
            return np.empty(0), np.empty(0), none, none
        return stats.pair_blocks(
            std.pairs, std.times, std.rounds, sep.pairs, sep.times, std.processes
        )

    def speedup(self) -> stats.Speedup | None:
        a, b, r, p = self.paired()
        return stats.round_speedup(a, b, r, processes=p) if a.size else None


def env_ratio(
    candidate: Series | None, baseline: Series | None, confidence: float = stats.CONFIDENCE
) -> stats.Speedup | None:
    """The candidate's latency over the baseline's, from the blocks one set measured in both
    (an interleaved run), with its interval over process pairs (stats.round_speedup)."""
    if candidate is None or baseline is None:
        return None
    a, b, r, p = stats.pair_blocks(
        candidate.pairs,
        candidate.times,
        candidate.rounds,
        baseline.pairs,
        baseline.times,
        candidate.processes,
    )
    return stats.round_speedup(a, b, r, confidence, processes=p) if a.size else None


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
            cache=dict(e.cache),
            kernels=dict(e.kernels),
            warnings=dict(e.warnings),
            instructions={v: list(c) for v, c in e.instructions.items()},
            allocator_instructions={v: list(c) for v, c in e.allocator_instructions.items()},
            parity={v: asdict(p) for v, p in e.parity.items()},
            breakdown=dict(self.breakdown),
        )

    @property
    def key(self) -> str:
        return f"{self.case.spec.config_id}@{self.case.backend}"

    @property
    def healthy(self) -> bool:
        return any(e.healthy for e in self.envs.values())

    def imprecise(self, target: float) -> list[tuple[str, float]]:
        """(environment, relative half-width) of each healthy row whose speedup interval is
        wider than +/-target (or has none yet)."""
        out = []
        for env, env_state in self.envs.items():
            if env_state.healthy:
                sp = env_state.speedup()
                width = sp.relative_half_width if sp is not None else math.nan
                if not width <= target:
                    out.append((env, width))
        return out

    def undecided(self, bound: float) -> list[tuple[str, float]]:
        """(row, relative half-width) of each healthy row whose question is still open at
        ``bound`` = log(1 + threshold) (``stats.decided``): with several environments, each
        variant's latency in every other environment against the first, paired by set; in a
        plain run, the speedup of separable over standard."""
        envs = [env for env, e in self.envs.items() if e.healthy]
        if len(self.envs) == 1:
            out = []
            for env in envs:
                sp = self.envs[env].speedup()
                if sp is None or not stats.decided(sp, bound):
                    out.append((env, sp.relative_half_width if sp is not None else math.nan))
            return out
        names = list(self.envs)
        base = self.envs[names[0]]
        if not base.healthy:
            return []
        out = []
        for env in names[1:]:
            if env not in envs:
                continue
            for v in VARIANTS:
                ratio = env_ratio(self.envs[env].series.get(v), base.series.get(v))
                if ratio is None or not stats.decided(ratio, bound):
                    width = ratio.relative_half_width if ratio is not None else math.nan
                    out.append((f"{env}/{v}", width))
        return out

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
    kernels: float = 0.0  # naming each variant's kernels on its first build (kernels.py)
    instructions: float = 0.0  # counting instructions under valgrind (--measure instructions)
    canary: float = 0.0  # machine canary samples, settle sleep included
    ipc: float = 0.0  # waiting for executors beyond the work they report (messages, start-up)
    restart: float = 0.0  # fresh worker processes for extra rounds (--precision, --decide)


@dataclass
class Precision:
    """What ``--precision`` or ``--decide`` did: the target (``precision``: the relative
    half-width of the speedup interval; ``decide``: the threshold every row's question must be
    settled at), the extra rounds it added, why it stopped, and the rows that did not get
    there."""

    target: float
    max_time_s: float
    mode: str = "precision"  # or "decide"
    extra_rounds: int = 0
    stopped: str = ""
    unmet: list[dict[str, Any]] = field(default_factory=list)

    def open_rows(self, state: CaseState) -> list[tuple[str, float]]:
        """The rows of ``state`` this target still asks more of: (row, relative half-width)."""
        if self.mode == "decide":
            return state.undecided(math.log1p(self.target))
        return state.imprecise(self.target)


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
    confirmation: list[dict[str, Any]] | None = None  # extra_rounds.confirm's records
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
                    columns["process"] += t.processes[t.flushed :]
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
                ("env", object), ("round", "int32"), ("pair", "int32"), ("process", "int32"),
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
            columns["process"][at:end] = t.processes
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
    kept: dict[tuple[str, str, str, str], list[tuple[int, int, int, float]]] = {}
    cols = point.samples
    for cid, v, backend, env, round_, pair, process, time_s in zip(
        cols["config_id"], cols["variant"], cols["backend"], cols["env"], cols["round"],
        cols["pair"], cols["process"], cols["time_s"], strict=True,
    ):  # fmt: skip
        if round_ < point.rounds_done:
            kept.setdefault((cid, backend, env, v), []).append((round_, pair, process, time_s))
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
            e.kernels, e.warnings = dict(r.kernels), dict(r.warnings)
            e.cache = dict(r.cache)
            e.instructions = {v: list(c) for v, c in r.instructions.items()}
            e.allocator_instructions = {v: list(c) for v, c in r.allocator_instructions.items()}
            e.parity = {v: Parity(**p) for v, p in r.parity.items()}
            rounds_seen: set[int] = set()
            for v, n in r.iterations.items():
                t = Series(n)
                for round_, pair, process, time_s in kept.get((cid, backend, env, v), []):
                    t.times.append(time_s)
                    t.rounds.append(round_)
                    t.pairs.append(pair)
                    t.processes.append(process)
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
