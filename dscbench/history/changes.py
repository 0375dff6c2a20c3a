"""Change points in the history's series: where a series stepped to another level, between
which commits, by how much (with an interval).

- **Whole runs move.** On a shared machine a whole run can be 30% slower than the last, every
  row alike. So each run's common shift is taken out first (``run_effects``: the median, over
  the run's series, of each value's log distance from its series' median; a run with fewer than
  ``MIN_SERIES`` series keeps its values), and the shifts form a series of their own, checked
  like the others ("(whole run)"): a step there is every row moving at once, which the machine
  or a change that touched everything can cause. A step in a row's series is that row moving
  against the others of its runs.
- **Change points** (``pelt``): the optimal segmentation of the log values into stretches of
  constant mean under a penalty per change (PELT, Killick, Fearnhead & Eckley 2012, J. Am. Stat.
  Assoc. 107:1590; the L2 cost, pruned, exact), the penalty ``PENALTY`` x sigma^2 x ln n with
  sigma the noise of the series estimated robustly from its successive differences (the MAD of
  the differences / sqrt 2, which a step barely moves), and at least ``MIN_SEGMENT`` runs per
  stretch, so one odd run is never a change on its own.
- **A change** is reported with the last run before it and the first after it (the commit
  range), its size as the ratio of the stretches' geometric means and that ratio's 95%
  interval (Welch's t interval on the log values, scipy.stats), and the series. The newest
  runs, fewer than ``MIN_SEGMENT``, cannot form a stretch: ``newest`` judges them against the
  last stretch instead (its prediction interval), so the newest commit can fail a CI job at
  once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

MIN_SERIES = 5  # runs with fewer series keep their values (no common shift to estimate)
MIN_SEGMENT = 3  # runs per stretch, at least
PENALTY = 8.0  # x sigma^2 x ln n per change point (see tests/test_history_changes.py)
CONFIDENCE = 0.95
# The newest runs' test: every series, every check, so a strict one (at 0.999, 4% of A/A
# histories of 20 series raised a change on their newest run)
NEWEST_CONFIDENCE = 0.9999
TRIM = 0.1  # the largest successive differences noise_sigma leaves out
# E[Z^2 | |Z| < z_0.95] for a standard normal Z: 1 - 2 z phi(z) / 0.9 at z = 1.645
TRIMMED_VARIANCE = 0.6232
WHOLE_RUN = "(whole run)"


@dataclass(frozen=True)
class Change:
    """A step in one series between runs ``before`` (the last at the old level) and
    ``after`` (the first at the new one); ``ratio`` = new level / old level."""

    series: str
    position: int  # index of the first run at the new level, in the series' order
    before_commit: str
    after_commit: str
    after_started: pd.Timestamp
    ratio: float
    low: float
    high: float
    n_before: int
    n_after: int
    newest: bool = False  # judged from the newest runs alone (fewer than MIN_SEGMENT)

    @property
    def direction(self) -> str:
        return "slower" if self.ratio > 1 else "faster"

    def beyond(self, threshold: float) -> bool:
        """A slowdown larger than ``threshold`` (regression)."""
        return regression(self.ratio, self.low, threshold)


def regression(ratio: float, low: float, threshold: float) -> bool:
    """A slowdown larger than ``threshold`` (a fraction) whose interval lies above no change:
    what exits 1."""
    return ratio > 1 + threshold and low > 1


def noise_sigma(y: np.ndarray) -> float:
    """The noise of a series, robust to steps: the root mean square of its successive
    differences without the largest ``TRIM`` of them (where the steps are), scaled to the
    normal's full variance (``TRIMMED_VARIANCE``), over sqrt 2 (a difference of two independent
    values has twice the variance). Less variable than the MAD of the differences (on 30 runs
    the MAD's estimate ranged 0.7-1.5x the true noise), which the penalty grows with squared."""
    if len(y) < 3:
        return math.nan
    d = np.sort(np.abs(np.diff(y)))
    kept = d[: max(1, math.floor(len(d) * (1 - TRIM)))]
    return math.sqrt(float(np.mean(kept**2)) / TRIMMED_VARIANCE / 2)


def pelt(y: np.ndarray, penalty: float, min_segment: int = MIN_SEGMENT) -> list[int]:
    """The positions where a new stretch begins in the optimal segmentation of ``y`` (L2
    cost, ``penalty`` per change, stretches of at least ``min_segment``): PELT, the candidate
    starts evaluated together (numpy)."""
    n = len(y)
    if n < 2 * min_segment:
        return []
    s1 = np.concatenate([[0.0], np.cumsum(y)])
    s2 = np.concatenate([[0.0], np.cumsum(y * y)])
    best = np.full(n + 1, np.inf)
    best[0] = -penalty
    last = np.zeros(n + 1, dtype=int)
    candidates = np.array([0])
    for t in range(min_segment, n + 1):
        length = t - candidates
        cost = s2[t] - s2[candidates] - (s1[t] - s1[candidates]) ** 2 / np.maximum(length, 1)
        total = best[candidates] + cost
        usable = length >= min_segment
        if usable.any():
            i = int(np.argmin(np.where(usable, total, np.inf)))
            best[t], last[t] = total[i] + penalty, candidates[i]
        # prune: a start that cannot beat the best now never will (PELT's condition, K = 0)
        candidates = candidates[~usable | (total <= best[t])]
        candidates = np.append(candidates, t)
    changes = []
    t = n
    while t > 0:
        t = int(last[t])
        if t > 0:
            changes.append(t)
    return sorted(changes)


def step_interval(before: np.ndarray, after: np.ndarray) -> tuple[float, float, float]:
    """The ratio of the stretches' geometric means (log values in) and its 95% interval."""
    ratio = math.exp(float(np.mean(after) - np.mean(before)))
    if len(before) < 2 or len(after) < 2 or (np.ptp(before) == 0 and np.ptp(after) == 0):
        return ratio, ratio, ratio
    ci = stats.ttest_ind(after, before, equal_var=False).confidence_interval(CONFIDENCE)
    return ratio, math.exp(ci.low), math.exp(ci.high)


def series_changes(series: str, points: pd.DataFrame, sigma_floor: float = 0.0) -> list[Change]:
    """The changes in one series (``points``: oldest first, columns ``log``, ``commit``,
    ``started_at``)."""
    y = points["log"].to_numpy(dtype=float)
    n = len(y)
    sigma = max(noise_sigma(y), sigma_floor) if n >= 3 else math.nan
    if not math.isfinite(sigma) or sigma == 0:
        sigma = max(sigma_floor, 1e-12)
    found = []
    bounds = significant(y, pelt(y, PENALTY * sigma**2 * math.log(max(n, 2))))
    edges = [0, *bounds, n]
    for k, at in enumerate(bounds):
        before, after = y[edges[k] : at], y[at : edges[k + 2]]
        ratio, low, high = step_interval(before, after)
        found.append(_change(series, points, at, ratio, low, high, len(before), len(after)))
    newest = newest_change(series, points, edges[-2] if len(edges) > 2 else 0, sigma_floor)
    if newest is not None:
        found.append(newest)
    return found


def significant(y: np.ndarray, bounds: list[int]) -> list[int]:
    """``bounds`` without the changes whose step interval includes no change (the stretches
    either side merged, the weakest first): a stretch of a few runs can take in one odd run
    and pass the penalty, but not this test."""
    bounds = list(bounds)
    while bounds:
        edges = [0, *bounds, len(y)]
        weak = []
        for k, at in enumerate(bounds):
            _, low, high = step_interval(y[edges[k] : at], y[at : edges[k + 2]])
            if low <= 1 <= high:
                weak.append((min(high - 1, 1 - low), k))
        if not weak:
            break
        bounds.pop(min(weak)[1])
    return bounds


def newest_change(
    series: str, points: pd.DataFrame, start: int, sigma_floor: float
) -> Change | None:
    """The newest runs (1 to MIN_SEGMENT - 1 of them) against the rest of the last stretch: a
    change when their mean lies outside that stretch's NEWEST_CONFIDENCE prediction interval
    (the tail that stands out most)."""
    y = points["log"].to_numpy(dtype=float)
    n = len(y)
    tests = []  # (how far beyond its bound, tail, shift, half-width)
    for tail in range(1, MIN_SEGMENT):
        before, after = y[start : n - tail], y[n - tail :]
        if len(before) < MIN_SEGMENT:
            continue
        # the noise of what came before: the runs under test must not widen their own bound
        noise = noise_sigma(y[: n - tail])
        if not math.isfinite(noise):
            continue
        noise = max(noise, sigma_floor, 1e-12)
        spread = noise * math.sqrt(1 / len(before) + 1 / tail)
        half = float(stats.t.ppf(0.5 + NEWEST_CONFIDENCE / 2, len(before) - 1)) * spread
        shift = float(np.mean(after) - np.mean(before))
        tests.append((abs(shift) / half, tail, shift, half))
    if not tests or max(tests)[0] <= 1:
        return None
    _, tail, shift, half = max(tests)  # the newest runs that stand out most
    return _change(series, points, n - tail, math.exp(shift), math.exp(shift - half),
                   math.exp(shift + half), n - tail - start, tail, newest=True)  # fmt: skip


def _change(series: str, points: pd.DataFrame, at: int, ratio: float, low: float, high: float,
            n_before: int, n_after: int, newest: bool = False) -> Change:  # fmt: skip
    return Change(
        series=series,
        position=at,
        before_commit=str(points["commit"].iloc[at - 1]),
        after_commit=str(points["commit"].iloc[at]),
        after_started=points["started_at"].iloc[at],
        ratio=ratio,
        low=low,
        high=high,
        n_before=n_before,
        n_after=n_after,
        newest=newest,
    )


def run_effects(points: pd.DataFrame, level: pd.Series | None = None) -> pd.Series:
    """Per run: the median over its series of each log value's distance from its series'
    median, or from its stretch's ``level`` (0 for a run with fewer than MIN_SERIES series)."""
    if level is None:
        level = points.groupby("series")["log"].transform("median")
    centred = points["log"] - level
    per_run = centred.groupby(points["run_id"])
    effect = per_run.median().where(per_run.size() >= MIN_SERIES, 0.0)
    return effect


def levels(points: pd.DataFrame, effects: pd.Series) -> pd.Series:
    """Each value's stretch level: the mean of its series' stretch (from the changes found
    with ``effects`` taken out), effects left in."""
    out = pd.Series(0.0, index=points.index)
    adjusted = points["log"] - points["run_id"].map(effects)
    for _, one in points.assign(adjusted=adjusted).groupby("series", sort=False):
        y = one["adjusted"].to_numpy()
        sigma = noise_sigma(y)
        bounds = pelt(y, PENALTY * sigma**2 * math.log(max(len(y), 2))) if sigma > 0 else []
        for a, b in zip([0, *bounds], [*bounds, len(y)], strict=True):
            out.loc[one.index[a:b]] = float(np.mean(y[a:b]))
    return out


def find_changes(
    points: pd.DataFrame, sigma_floor: float = 0.0, whole_runs: bool = True
) -> list[Change]:
    """Every change in every series of ``points`` (one row per series and run: ``series``,
    ``run_id``, ``commit``, ``started_at``, ``value`` > 0), runs' common shifts taken out; the
    shifts' own changes under WHOLE_RUN.

    The shifts are estimated twice: first against each series' median, then against each
    value's stretch level from the changes that first estimate finds, so that rows which
    stepped do not pull their runs' shifts (with 5 of 20 series 10% slower, the first estimate
    moved by about a quarter of the step). ``whole_runs`` False keeps each run's values as
    they are (instruction counts do not move with the machine); ``sigma_floor`` is the least
    noise a series is taken to have (log units)."""
    ok = points[(points["value"] > 0) & np.isfinite(points["value"])].copy()
    ok["log"] = np.log(ok["value"].astype(float))
    ok = ok.sort_values(["started_at", "run_id"], kind="stable")
    effects = run_effects(ok) if whole_runs else pd.Series(0.0, index=ok["run_id"].unique())
    if (effects != 0).any():
        effects = run_effects(ok, levels(ok, effects))
    ok["log"] = ok["log"] - ok["run_id"].map(effects)
    found: list[Change] = []
    for series, one in ok.groupby("series", sort=True):
        found += series_changes(str(series), one.reset_index(drop=True), sigma_floor)
    runs = ok.drop_duplicates("run_id")[["run_id", "commit", "started_at"]].reset_index(drop=True)
    if (effects != 0).any():
        runs["log"] = runs["run_id"].map(effects).to_numpy()
        found += series_changes(WHOLE_RUN, runs)
    return found
