"""Intervals over seeds: each twin's test accuracy (mean and Student's t interval over the
seeds), the paired difference separable - standard (the same seeds: weights drawn under one
seed differ between twins, but the batch order is shared), and the training time per epoch
(each seed's median epoch; the twins' ratio as a t interval on the log ratios of paired
seeds). scipy.stats does the t quantiles."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from dscbench.defaults import CONFIDENCE


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float
    n: int

    def to_json(self) -> dict[str, float]:
        return {"estimate": self.estimate, "low": self.low, "high": self.high, "n": self.n}


def mean_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The mean and its t interval; a single value's interval is NaN wide (unknown)."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0)
    mean = float(values.mean())
    if n < 2:
        return Interval(mean, math.nan, math.nan, n)
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * float(values.std(ddof=1)) / n**0.5
    return Interval(mean, mean - half, mean + half, n)


def ratio_interval(top: np.ndarray, bottom: np.ndarray, confidence: float = CONFIDENCE) -> Interval:
    """The geometric mean of paired ratios top/bottom and its t interval (on the logs)."""
    logs = mean_interval(np.log(np.asarray(top, float) / np.asarray(bottom, float)), confidence)
    return Interval(*(math.exp(v) for v in (logs.estimate, logs.low, logs.high)), logs.n)


def share(i: Interval) -> Interval:
    """An interval of a share (accuracy), clipped to 0..1."""
    return Interval(i.estimate, max(0.0, i.low), min(1.0, i.high), i.n) if i.n > 1 else i


@dataclass(frozen=True)
class Summary:
    """Per twin: accuracy; both: the paired accuracy difference and epoch-time ratio."""

    accuracy: dict[str, Interval]
    difference: Interval  # separable - standard, in accuracy (a fraction)
    epoch_time_s: dict[str, float]  # median over seeds of each seed's median epoch
    epoch_time_ratio: Interval  # separable / standard

    def to_json(self) -> dict[str, object]:
        return {
            "accuracy": {k: v.to_json() for k, v in self.accuracy.items()},
            "difference": self.difference.to_json(),
            "epoch_time_s": self.epoch_time_s,
            "epoch_time_ratio": self.epoch_time_ratio.to_json(),
        }


def summarize(table, confidence: float = CONFIDENCE) -> Summary:  # type: ignore[no-untyped-def]
    """``table``: accuracy.parquet's rows (variant, seed, test_accuracy, epoch_time_s)."""
    wide = table.pivot_table(
        index="seed", columns="variant", values=["test_accuracy", "epoch_time_s"]
    )
    accuracy = {
        v: share(
            mean_interval(table.loc[table["variant"] == v, "test_accuracy"].to_numpy(), confidence)
        )
        for v in ("standard", "separable")
    }
    paired = wide.dropna()
    acc, epoch = paired["test_accuracy"], paired["epoch_time_s"]
    has_both = {"standard", "separable"} <= set(acc.columns)
    nan = Interval(math.nan, math.nan, math.nan, 0)
    difference = (
        mean_interval((acc["separable"] - acc["standard"]).to_numpy(), confidence)
        if has_both
        else nan
    )
    ratio = (
        ratio_interval(epoch["separable"].to_numpy(), epoch["standard"].to_numpy(), confidence)
        if has_both
        else nan
    )
    times = {
        v: float(table.loc[table["variant"] == v, "epoch_time_s"].median())
        for v in ("standard", "separable")
    }
    return Summary(accuracy, difference, times, ratio)
