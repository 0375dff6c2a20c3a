"""Decisions: a verdict for each comparable row from its log cost ratio and variance, read
against the shift that all rows of its backend share (and, in a sequential comparison, the
machine canary).

Verdicts at threshold t, on the interval of ``d`` (log cost ratio, cost = latency or
1/speedup): ``slower`` if all of it lies above log(1 + t), ``faster`` if below -log(1 + t),
``same`` if inside, else ``inconclusive``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from dscbench import stats
from dscbench.compare.model import Shift, Verdict
from dscbench.defaults import POWER
from dscbench.stats.runs import MIN_ROWS_FOR_SPREAD

SHIFTED_QUANTILE = 3.0  # the interval quantile for "beyond the whole run's shift"
# How far a run's conv rows and its canary can drift apart while the machine alone changes
# speed, at least: the standard deviation, between back-to-back runs, of (rows' whole-run
# shift - canary shift). `nox -s bench -- gate` (benchmarks/REPORT-gate.md) measured 1.5%, 1.8%
# and 2.8% in three sets of 11 quick steady runs on the development VM; this allows for the
# largest. Busier runs drift apart further (6.5% at round spreads of 10-18%,
# benchmarks/REPORT-canary.md), which the runs' own rounds show: compare uses the larger of this
# and that (canary_check.tracking_variance).
CANARY_TRACKING_SD = 0.03


def classify(low: np.ndarray, high: np.ndarray, bound: float) -> np.ndarray:
    """Verdicts of intervals [low, high] of the log cost ratio at ``bound`` = log(1 + t)."""
    verdict = np.empty(low.shape, dtype=object)
    verdict[:] = Verdict.INCONCLUSIVE  # (np.full would store a plain str)
    verdict[low > bound] = Verdict.SLOWER
    verdict[high < -bound] = Verdict.FASTER
    verdict[(low > -bound) & (high < bound)] = Verdict.SAME
    return verdict


@dataclass
class RowModel:
    """The comparable rows as arrays: the log cost ratio ``d`` (candidate - baseline), its
    variance ``v`` and degrees of freedom, and both sides' values (log cost) for display."""

    keys: list[tuple]
    d: np.ndarray
    v: np.ndarray
    df: np.ndarray
    few: np.ndarray  # fewer than 2 rounds on a side: no interval
    mean_b: np.ndarray
    mean_c: np.ndarray
    rounds: list[tuple[int, int]]
    units: np.ndarray | None = None  # per row: the units its interval is over
    unit_names: list[str] | None = None  # what they are: process, process pair or round
    backends: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.backends = np.array([k[1] for k in self.keys])


@dataclass
class Decision:
    """Per comparable row: verdict, the interval shown (log scale, around ``d``) and a note."""

    verdict: np.ndarray
    half: np.ndarray
    notes: list[str]
    shifts: list[Shift]
    detectable: np.ndarray | None = None  # relative minimum detectable change per row


def decide_rows(
    model: RowModel,
    bound: float,
    confidence: float,
    *,
    sign: float = 1.0,
    extra: np.ndarray | None = None,
    shift_reading: str = "machine",
    canary: tuple[float, float, float] | None = None,
) -> Decision:
    """Verdicts for the comparable rows.

    ``sign``: +1 when the metric is a cost (latency), -1 when it is a benefit (speedup), so
    shifts are reported in the metric's direction. ``extra``: run-to-run variance added to each
    row (sequential). ``shift_reading``:
    ``machine`` (sequential: a detected whole-run shift may be the machine; with ``canary`` =
    (log ratio, its variance, the variance of how far rows and canary drift apart) it is the
    machine only if the canary shares it) or ``real``
    (interleaved: the machine cancels, every row is judged on its own ratio).
    """
    rows = _Rows(model, bound, confidence, extra)
    shifts = [
        rows.judge_shift(backend, sign, shift_reading, canary)
        for backend in dict.fromkeys(model.backends)
    ]
    judge_huge_changes(model, rows.verdict, rows.notes)
    detectable = detectable_changes(rows.half, model.df, confidence, POWER)
    return Decision(rows.verdict, rows.half, list(rows.notes), shifts, detectable)


def detectable_changes(
    half: np.ndarray, df: np.ndarray, confidence: float, power: float
) -> np.ndarray:
    """Each row's minimum detectable change (relative) from the half-width of the interval it
    was judged on: the standard error behind it (half / t quantile), times the sum of the
    confidence's and the power's t quantiles (stats.detectable_change)."""
    q = stats.t_quantile(confidence, np.maximum(df, 1))
    out = np.full(len(half), np.nan)
    for j, (h, d) in enumerate(zip(half, df, strict=True)):
        if np.isfinite(h) and d >= 1:
            out[j] = stats.detectable_change(float(h / q[j]), float(d), confidence, power)
    return out


class _Rows:
    """The verdicts, shown intervals and notes of the comparable rows while they are decided:
    first each row on its own interval, then each backend's rows against their shared shift."""

    def __init__(
        self, model: RowModel, bound: float, confidence: float, extra: np.ndarray | None
    ) -> None:
        from scipy import stats as sps

        self.model, self.bound, self.confidence = model, bound, confidence
        d, v, few = model.d, model.v, model.few
        self.extra = np.zeros_like(d) if extra is None else extra
        self.z = float(sps.norm.ppf(0.5 + confidence / 2))
        self.q = stats.t_quantile(confidence, model.df)
        self.half = self.q * np.sqrt(np.where(few, np.nan, v + self.extra))
        self.verdict = classify(d - self.half, d + self.half, bound)
        self.notes = np.full(len(d), "", dtype=object)
        self.notes[few] = (
            f"fewer than 2 rounds on a side, so no interval: only a change beyond "
            f"x{HUGE_CHANGE:g} is judged; rerun with --rounds 3 or more"
        )
        self.verdict[few] = Verdict.INCONCLUSIVE

    def judge_shift(
        self, backend: str, sign: float, reading: str, canary: tuple[float, float, float] | None
    ) -> Shift:
        """The shift ``backend``'s rows share; when it is detected, its cause decides how its
        rows are judged."""
        mine = self.model.backends == backend
        s = stats.common_shift(self.model.d[mine], self.confidence, MIN_ROWS_FOR_SPREAD)
        enough = s.rows >= MIN_ROWS_FOR_SPREAD
        detected = enough and abs(s.center) >= self.bound / 2 and (s.low > 0 or s.high < 0)
        cause = self._cause(s, reading, canary) if detected else ""
        whole = ("", math.nan, math.nan)
        if cause == "rows":
            assert canary is not None
            self._judge_net_of_canary(mine, *canary)
            whole = self._whole_run(s, canary)
        elif cause in ("machine", "undetermined"):
            self._judge_beyond_shift(mine, s)
        low, high = sorted(math.exp(sign * x) for x in (s.low, s.high))
        drift = math.sqrt(tracking(canary[2] - canary[1])) if canary is not None else math.nan
        return Shift(
            str(backend), math.exp(sign * s.center), low, high, s.rows, detected, cause, drift,
            *whole,
        )  # fmt: skip

    def _excess(self, s: stats.LogShift, canary: tuple[float, float, float]) -> tuple[float, float]:
        """The rows' shift beyond the canary's (log) and its variance: the shift's own, the
        canary's, and how far rows and canary drift apart."""
        m, var_m, var_track = canary
        return s.center - m, (s.half_width / self.z) ** 2 + var_m + tracking(var_track - var_m)

    def _whole_run(
        self, s: stats.LogShift, canary: tuple[float, float, float]
    ) -> tuple[str, float, float]:
        """Every row changed together: is the run as a whole beyond the threshold, net of the
        canary? (verdict "slower", "faster" or "", and the interval of that ratio). Each row's
        own change can stay uncertain (the drift applies to each) while their common one is
        clear."""
        excess, var = self._excess(s, canary)
        half = self.z * math.sqrt(var)
        verdict = classify(np.array([excess - half]), np.array([excess + half]), self.bound)[0]
        named = verdict.value if verdict in (Verdict.SLOWER, Verdict.FASTER) else ""
        return named, math.exp(excess - half), math.exp(excess + half)

    def _cause(
        self, s: stats.LogShift, reading: str, canary: tuple[float, float, float] | None
    ) -> str:
        """Why all rows moved: ``real`` (interleaved), ``machine`` or ``rows`` (did the machine,
        the canary, move with them?), or ``undetermined`` (the canary did not move, but the rows'
        shift is within how far rows and canary drift apart on a machine alone)."""
        if reading == "real":
            return "real"
        if canary is None:
            return "machine"
        m, var_m, _ = canary
        excess, var_excess = self._excess(s, canary)
        beyond = (
            abs(excess) >= self.bound / 2
            and abs(excess) > self.z * math.sqrt(var_excess)
            and np.sign(excess) == np.sign(s.center)
        )
        if beyond:
            return "rows"
        # Not beyond the canary: the machine, if the canary itself moved the rows' way; if it
        # did not, it is as consistent with a still machine as with a moving one.
        moved = abs(m) > self.z * math.sqrt(var_m) and np.sign(m) == np.sign(s.center)
        return "machine" if moved else "undetermined"

    def _judge_net_of_canary(
        self, mine: np.ndarray, m: float, var_m: float, var_track: float
    ) -> None:
        """Every row changed: judge each on its own ratio, net of what the machine did."""
        d, v, few = self.model.d, self.model.v, self.model.few
        var_rows = v + self.extra + var_m + tracking(var_track - var_m)
        adj_half = self.q * np.sqrt(np.where(few, np.nan, var_rows))
        e = d - m
        judged = classify(e - adj_half, e + adj_half, self.bound)
        pick = mine & ~few
        self.verdict[pick], self.half[pick] = judged[pick], adj_half[pick]
        self.notes[pick] = "every row changed (the machine canary did not); judged net of it"

    def _judge_beyond_shift(self, mine: np.ndarray, s: stats.LogShift) -> None:
        """The machine changed speed. Rows respond unevenly to that (memory-bound rows suffer
        more from a noisy neighbour), so a row is called slower beyond the shift only at three
        standard errors."""
        d, v, few = self.model.d, self.model.v, self.model.few
        shift_var = (s.half_width / self.z) ** 2
        q_excess = np.maximum(self.q, SHIFTED_QUANTILE)
        half_excess = q_excess * np.sqrt(np.where(few, np.nan, v + self.extra + shift_var))
        e = d - s.center
        beyond = classify(e - half_excess, e + half_excess, self.bound)
        for j in np.flatnonzero(mine & ~few):
            if self.verdict[j] in (Verdict.SLOWER, Verdict.FASTER):
                if beyond[j] != self.verdict[j]:
                    self.verdict[j] = Verdict.INCONCLUSIVE
                    self.notes[j] = "moved with the whole run (see the machine shift)"
                else:
                    self.notes[j] = "beyond the whole run's shift"


def tracking(var_track: float) -> float:
    """The variance allowed for rows and canary drifting apart: what the two runs themselves
    show (compare/canary_check.py ``tracking_variance``, less the canary's own variance, which
    its round values carry and which is counted on its own), at least CANARY_TRACKING_SD**2."""
    floor = CANARY_TRACKING_SD**2
    return max(floor, var_track) if math.isfinite(var_track) else floor


# A change this large is beyond any drift a machine showed between runs (the busiest development
# VM moved 5-65%), so rows too short for an interval are still judged when every estimate says
# it; a CI gate must not wave through a configuration that became 170x slower.
HUGE_CHANGE = 2.0
SHORT_ROUNDS = 3  # fewer rounds on a side: the interval is missing or hardly informative


def judge_huge_changes(model: RowModel, verdict: np.ndarray, notes: np.ndarray) -> None:
    """Rows with fewer than SHORT_ROUNDS rounds on a side whose change is beyond HUGE_CHANGE
    become slower/faster (instead of inconclusive), with a note that says on what basis."""
    short = np.array([min(r) < SHORT_ROUNDS for r in model.rounds], dtype=bool)
    huge = short & (np.abs(model.d) >= math.log(HUGE_CHANGE)) & (verdict == Verdict.INCONCLUSIVE)
    for j in np.flatnonzero(huge):
        verdict[j] = Verdict.SLOWER if model.d[j] > 0 else Verdict.FASTER
        notes[j] = (
            f"{min(model.rounds[j])} round(s) on a side: no usable interval, but a change of "
            f"x{math.exp(abs(model.d[j])):.1f} is beyond x{HUGE_CHANGE:g}, more than machine "
            "drift; rerun with --rounds 3 or more for an interval"
        )


def between_run_variance(model: RowModel) -> tuple[np.ndarray, list[str]]:
    """Run-to-run variance per row (sequential comparisons): per backend, the robust spread of
    the rows' log-ratios around their median, minus the typical within-run variance. Backends
    with too few rows get none, and a note."""
    extra = np.zeros_like(model.d)
    notes = []
    for backend in dict.fromkeys(model.backends):
        mine = model.backends == backend
        if mine.sum() >= MIN_ROWS_FOR_SPREAD:
            spread = stats.robust_sd(model.d[mine])
            finite = model.v[mine][np.isfinite(model.v[mine])]
            within = float(np.median(finite)) if finite.size else 0.0
            extra[mine] = max(0.0, spread**2 - within)
        else:
            notes.append(
                f"{backend}: fewer than {MIN_ROWS_FOR_SPREAD} comparable rows, so run-to-run "
                "noise cannot be estimated; intervals cover round-to-round noise only"
            )
    return extra, notes
