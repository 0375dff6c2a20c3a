"""Statistics over rounds: the unit of replication behind every interval dscbench prints.

Samples taken within one round come from one machine state, seconds apart, so they agree far
more closely than two runs do; an interval built from samples (or from resampled blocks)
claims a precision that a rerun does not reproduce. Rounds revisit every configuration in a
fresh order over the whole run, so the spread of a row's per-round values shows how much the
machine wandered while it ran. Rounds measured by one worker process also share what that
process drew at start-up, so the unit of replication is the process: a row's round values are
averaged within each process first (``unit_values``; a run measured in one process falls back to
its rounds). Every estimate here is a mean of such unit values on the log scale (ratios become
differences), with a t interval over units:

- from 10 rounds on, a Yuen trimmed mean (``TRIM`` of the rounds from each end: one round of
  ten), whose standard error comes from the winsorized variance, so one round spoiled by a slow
  phase of the machine neither moves the estimate nor swamps its spread;
- two estimates combine by Yuen-Welch (``welch``), as compare does for two runs.

Pure functions over numpy arrays and pandas frames; scipy is imported where a quantile is needed.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dscbench.defaults import CONFIDENCE
from dscbench.stats.samples import StatWarning

TRIM = 0.1  # share of rounds trimmed from each end: none below 10 rounds, one of 10, two of 20
MAD_TO_SD = 1.4826  # the MAD of a normal sample, times this, estimates its standard deviation


def trimmed_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Yuen's trimmed mean (TRIM from each end) of each row of ``x`` (rows x rounds), the
    squared standard error from the winsorized variance, and its degrees of freedom (h - 1,
    h = rounds kept). With fewer than 10 rounds nothing is trimmed: a plain mean and t. With
    fewer than 2 rounds kept the standard error is NaN."""
    x = np.sort(np.asarray(x, dtype=float), axis=1)
    n = x.shape[1]
    g = int(TRIM * n)
    h = n - 2 * g
    mean = x[:, g : n - g].mean(axis=1)
    if h < 2:
        return mean, np.full(len(x), np.nan), np.zeros(len(x))
    w = x.copy()
    w[:, :g] = x[:, [g]]
    w[:, n - g :] = x[:, [n - g - 1]]
    se2 = (n - 1) * w.var(axis=1, ddof=1) / (h * (h - 1))
    return mean, se2, np.full(len(x), h - 1.0)


def t_quantile(confidence: float, df: np.ndarray | float) -> np.ndarray | float:
    """The two-sided Student t quantile for ``confidence`` at ``df`` degrees of freedom."""
    if np.ndim(df) == 0:
        return _t_quantile(float(confidence), float(df))
    from scipy import stats

    return stats.t.ppf(0.5 + confidence / 2, df)


@functools.lru_cache(maxsize=1024)
def _t_quantile(confidence: float, df: float) -> float:
    """One quantile, remembered: a result table asks for the same few thousands of times,
    and scipy takes a fraction of a millisecond each."""
    from scipy import stats

    return float(stats.t.ppf(0.5 + confidence / 2, df))


@dataclass(frozen=True)
class RoundEstimate:
    """The (trimmed) mean of per-round values on the log scale, with its standard error."""

    mean: float
    se2: float  # squared standard error; NaN with fewer than 2 rounds
    df: float
    n: int  # rounds

    def half_width(self, confidence: float = CONFIDENCE) -> float:
        """Half-width of the t interval (log scale); NaN without two rounds."""
        if not (self.df >= 1 and math.isfinite(self.se2)):
            return math.nan
        return float(t_quantile(confidence, self.df)) * math.sqrt(self.se2)


def estimate(values: np.ndarray | list[float]) -> RoundEstimate:
    """The RoundEstimate of one row's per-round values (log scale)."""
    x = np.asarray(values, dtype=float)[None, :]
    if x.size == 0:
        return RoundEstimate(math.nan, math.nan, 0.0, 0)
    mean, se2, df = trimmed_stats(x)
    return RoundEstimate(float(mean[0]), float(se2[0]), float(df[0]), x.shape[1])


def welch(
    se2_a: np.ndarray, df_a: np.ndarray, se2_b: np.ndarray, df_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Variance and Welch-Satterthwaite degrees of freedom of the difference of two
    independent estimates (Yuen-Welch for trimmed means). Where the formula breaks down (a
    zero variance), the smaller of the two degrees of freedom, at least 1."""
    v = se2_a + se2_b
    with np.errstate(divide="ignore", invalid="ignore"):
        df = v**2 / (se2_a**2 / df_a + se2_b**2 / df_b)
    fallback = np.maximum(np.minimum(df_a, df_b), 1)
    return v, np.where(np.isfinite(df) & (df > 0), df, fallback)


def per_round_log_median(values: np.ndarray, rounds: np.ndarray) -> np.ndarray:
    """log of the median of ``values`` within each round, in round order."""
    r = np.asarray(rounds)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return np.empty(0)
    order = np.argsort(r, kind="stable")
    r, x = r[order], x[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    return np.log([np.median(part) for part in np.split(x, starts[1:])])


@dataclass(frozen=True)
class Speedup:
    """How many times faster the separable variant ran: the geometric mean over rounds of each
    round's median per-pair ratio (trimmed from 10 rounds on), with a t interval over rounds.
    ``ci_low``/``ci_high`` are NaN with fewer than two rounds."""

    value: float
    ci_low: float
    ci_high: float
    confidence: float
    rounds: int
    units: int = 0  # processes (or rounds, when all ran in one process) behind the interval
    se2: float = math.nan  # squared standard error of log(value)
    df: float = 0.0  # its degrees of freedom

    @property
    def relative_half_width(self) -> float:
        """Half the interval's width as a share of the value (the ``--precision`` measure)."""
        if not (math.isfinite(self.ci_low) and math.isfinite(self.ci_high)):
            return math.nan
        return (self.ci_high - self.ci_low) / 2 / self.value


def pair_blocks(
    standard_pairs: Sequence[int],
    standard_times: Sequence[float],
    standard_rounds: Sequence[int],
    separable_pairs: Sequence[int],
    separable_times: Sequence[float],
    standard_processes: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(standard, separable, round, process) of the sets where both variants were measured,
    matched by set index (an interrupt can leave a set half done)."""
    other = dict(zip(separable_pairs, separable_times, strict=True))
    keep = [i for i, p in enumerate(standard_pairs) if p in other]
    a = np.array([standard_times[i] for i in keep], dtype=float)
    b = np.array([other[standard_pairs[i]] for i in keep], dtype=float)
    r = np.array([standard_rounds[i] for i in keep], dtype=int)
    procs = standard_processes if standard_processes is not None else [0] * len(standard_pairs)
    p = np.array([procs[i] for i in keep], dtype=int)
    return a, b, r, p


def process_means(values: np.ndarray, processes: np.ndarray | None) -> np.ndarray:
    """``values`` (one per round, in round order) averaged within each process when they come
    from two processes or more (the unit, as ``unit_values``), else unchanged."""
    if processes is None:
        return values
    p = np.asarray(processes)
    if len(np.unique(p)) < 2:
        return values
    index = np.unique(p, return_inverse=True)[1]
    return np.bincount(index, weights=values) / np.bincount(index)


def round_speedup(
    standard: np.ndarray | list[float],
    separable: np.ndarray | list[float],
    rounds: np.ndarray | list[int],
    confidence: float = CONFIDENCE,
    processes: np.ndarray | list[int] | None = None,
) -> Speedup:
    """The speedup of separable over standard from paired blocks (``standard[i]`` and
    ``separable[i]`` adjacent in time, measured in round ``rounds[i]`` by ``processes[i]``).

    Within a round, the median of the per-pair ratios cancels a machine that changes speed
    (both blocks of a pair see it alike). Across rounds, the spread of those round values is
    what a rerun would see, so the interval is a t interval over rounds, not a resampling of
    pairs: pairs seconds apart are not independent replicates. Rounds of one worker process are
    averaged first: the interval is over processes (``unit_values`` says why).
    """
    a = np.asarray(standard, dtype=float)
    b = np.asarray(separable, dtype=float)
    if a.shape != b.shape or a.size == 0:
        raise ValueError("paired samples must be non-empty and of equal length")
    r = np.asarray(rounds)
    per_round = per_round_log_median(a / b, r)
    process_of_round = None
    if processes is not None:
        order = np.argsort(r, kind="stable")
        first = np.flatnonzero(np.r_[True, r[order][1:] != r[order][:-1]])
        process_of_round = np.asarray(processes)[order][first]
    units = process_means(per_round, process_of_round)
    est = estimate(units)
    half = est.half_width(confidence)
    if half == 0:  # every round gave exactly the same ratio: no spread to estimate from
        half = math.nan
    return Speedup(
        value=math.exp(est.mean),
        ci_low=math.exp(est.mean - half),
        ci_high=math.exp(est.mean + half),
        confidence=confidence,
        rounds=len(per_round),
        units=est.n,
        se2=est.se2,
        df=est.df,
    )


def rerun_interval(ratio: Speedup, between_run_sd: float) -> tuple[float, float]:
    """Where another run's estimate of this speedup lands, at ``ratio.confidence``: a
    prediction interval, log(value) +/- t * sqrt(2 se^2 + 2 tau^2). The rerun has a sampling
    error of its own (as large as this run's, with the same settings), and each run's machine
    state moves its true speedup by ``between_run_sd`` (tau; nothing inside one run sees it).
    Degrees of freedom by Welch-Satterthwaite, tau taken as known. NaN without an interval."""
    if not (math.isfinite(ratio.se2) and ratio.df >= 1 and ratio.se2 > 0):
        return math.nan, math.nan
    sampling = 2 * ratio.se2
    variance = sampling + 2 * between_run_sd**2
    df = min(variance**2 / (sampling**2 / ratio.df), 1e6)
    half = float(t_quantile(ratio.confidence, df)) * math.sqrt(variance)
    center = math.log(ratio.value)
    return math.exp(center - half), math.exp(center + half)


def between_run_variance(d: np.ndarray, se2_a: np.ndarray, se2_b: np.ndarray) -> float:
    """tau^2 from pairs of runs: ``d`` the log differences of their estimates, ``se2_*`` their
    squared standard errors. E[d^2] = se2_a + se2_b + 2 tau^2, so tau^2 is half the mean excess
    (method of moments), at least 0."""
    excess = np.asarray(d, float) ** 2 - np.asarray(se2_a, float) - np.asarray(se2_b, float)
    return max(0.0, float(np.mean(excess)) / 2) if len(excess) else math.nan


def decided(ratio: Speedup, bound: float) -> bool:
    """Whether a ratio's interval settles the question at ``bound`` = log(1 + threshold): all
    of it within +/-bound (the same) or all of it beyond one side (changed). No interval yet:
    not decided."""
    if not (math.isfinite(ratio.ci_low) and math.isfinite(ratio.ci_high)):
        return False
    low, high = math.log(ratio.ci_low), math.log(ratio.ci_high)
    return (low > -bound and high < bound) or low > bound or high < -bound


def detectable_change(se: float, df: float, confidence: float, power: float) -> float:
    """The smallest relative change a test at ``confidence`` finds with probability ``power``,
    from an estimate with standard error ``se`` (log scale) on ``df`` degrees of freedom:
    exp((t_conf + t_power) * se) - 1. NaN without an interval."""
    if not (df >= 1 and math.isfinite(se)):
        return math.nan
    from scipy import stats as sps

    q = float(t_quantile(confidence, df)) + float(sps.t.ppf(power, df))
    return math.expm1(q * se)


def check_rounds(rounds: int, interval: bool = True) -> list[StatWarning]:
    """Why a speedup has no interval: ``few_rounds`` (one round) or ``zero_spread`` (every
    round gave exactly the same ratio, so there is nothing to estimate its spread from; a
    coarse clock or identical copies of a result do that)."""
    if rounds < 2:
        return [
            StatWarning("few_rounds", f"{rounds} round(s) give no interval; use --rounds 3 or more")
        ]
    if not interval:
        return [
            StatWarning(
                "zero_spread",
                f"all {rounds} rounds gave the same ratio; no interval can be estimated",
            )
        ]
    return []


def unit_values(values: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """The units of replication of each key of ``values`` (one row per key and round, column
    ``cost``, and ``process`` when the rounds ran in worker processes): the mean of each
    process's round values where a key's rounds ran in two processes or more, else the rounds
    themselves (a run measured in one process can only show round-to-round noise).

    Rounds of one process share what that process drew at start-up (where its code and buffers
    landed, which kernels it picked): they agree with each other more than with another
    process's, so treating them as independent overstates the precision. The process is the
    unit (``benchmarks/REPORT-noise.md`` measures both levels). Columns: key, ``cost``,
    ``unit`` ("process" or "round")."""
    if "process" not in values.columns or values.empty:
        return values[[*key, "cost"]].assign(unit="round")
    per_key = values.groupby(key, sort=False).process.transform("nunique")
    several = values[per_key >= 2]
    by_process = (
        several.groupby([*key, "process"], sort=False).cost.mean().reset_index(level="process")
    )
    by_process = by_process.reset_index()[[*key, "cost"]].assign(unit="process")
    single = values.loc[per_key < 2, [*key, "cost"]].assign(unit="round")
    return pd.concat([by_process, single], ignore_index=True)


def row_estimates(values: pd.DataFrame, key: list[str]) -> pd.DataFrame:
    """Per key of ``values`` (one row per key and round, column ``cost``; ``process`` when
    known): the trimmed mean over its units (``unit_values``: processes, or rounds), its
    squared standard error, degrees of freedom and number of units ``n``; ``rounds``, the
    ``unit`` and ``round_sd``, the standard deviation of its round values (what
    ``spread`` summarises)."""
    units = unit_values(values, key)
    lists = units.groupby(key, sort=False).cost.agg(list)
    sizes = lists.map(len).to_numpy()
    columns = ["mean", "se2", "df", "n", "rounds", "round_sd"]
    out = pd.DataFrame(index=lists.index, columns=columns, dtype=float)
    for n in np.unique(sizes):
        pick = sizes == n
        mean, se2, df = trimmed_stats(np.array(lists[pick].tolist(), dtype=float))
        out.loc[pick, "mean"], out.loc[pick, "se2"], out.loc[pick, "df"] = mean, se2, df
        out.loc[pick, "n"] = n
    per_round = values.groupby(key, sort=False).cost
    out["rounds"] = per_round.size().reindex(out.index).astype(float)
    out["round_sd"] = per_round.std(ddof=1).reindex(out.index)
    out["unit"] = units.groupby(key, sort=False).unit.first().reindex(out.index)
    return out


def remove_round_effects(
    values: pd.DataFrame, key: list[str], group: str, min_rows: int
) -> pd.DataFrame:
    """Subtract from every round value (column ``cost``, log scale) the part all rows of its
    ``group`` (a backend) share in that round.

    A machine that runs 15% slow for one round slows every row visited in it; in log space that
    is an additive round effect, estimated as the median over rows of (round value - the row's
    mean). Groups with fewer than ``min_rows`` rows are left as they are. What remains is each
    row's own round-to-round noise, which is what its interval should reflect.
    """
    values = values.copy()
    row_mean = values.groupby(key, sort=False).cost.transform("mean")
    values["residual"] = values.cost - row_mean
    rows_per_group = values.groupby(group).cost.transform("size") / values.groupby(group)[
        "round"
    ].transform("nunique")
    effect = values.groupby([group, "round"]).residual.transform("median")
    effect = effect.where(rows_per_group >= min_rows, 0.0)
    values["cost"] = values.cost - effect
    return values.drop(columns="residual")


def round_effects(values: pd.DataFrame, key: list[str]) -> pd.Series:
    """The part of each round's values that all rows share: per round, the median over rows of
    (round value - the row's mean), log scale. What a machine canary is checked against."""
    residual = values.cost - values.groupby(key, sort=False).cost.transform("mean")
    return residual.groupby(values["round"]).median()


@dataclass(frozen=True)
class LogShift:
    """The median of many rows' log-ratios, with its distribution-free interval."""

    center: float
    low: float
    high: float
    rows: int

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


def common_shift(d: np.ndarray, confidence: float, min_rows: int) -> LogShift:
    """The median of the rows' log-ratios ``d`` with its order-statistic interval (scipy's
    ``quantile_test``); with fewer than ``min_rows`` rows (or all equal) the interval is the
    point."""
    from scipy import stats

    d = np.asarray(d, dtype=float)
    center = float(np.median(d))
    low = high = center
    if len(d) >= min_rows and np.ptp(d) > 0:
        ci = stats.quantile_test(d, q=center, p=0.5).confidence_interval(confidence)
        low, high = float(ci.low), float(ci.high)
    return LogShift(center, low, high, len(d))


def robust_sd(x: np.ndarray) -> float:
    """MAD-based standard deviation of ``x`` around its median."""
    x = np.asarray(x, dtype=float)
    return float(MAD_TO_SD * np.median(np.abs(x - np.median(x)))) if x.size else math.nan


def spread(table: pd.DataFrame) -> float:
    """How much a run's round values disagree: the median over rows of the standard deviation
    of a row's round values (log scale), from a ``row_estimates`` table. NaN without two rounds."""
    sd = table["round_sd"].to_numpy(dtype=float)
    sd = sd[np.isfinite(sd)]
    return float(np.median(sd)) if sd.size else math.nan
