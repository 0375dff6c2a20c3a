"""Statistics of one variant's raw samples (seconds per iteration): summaries and typed warnings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Thresholds for typed warnings; torch.utils.benchmark flags IQR > 10% of the median too.
HIGH_SPREAD_RATIO = 0.10
OUTLIER_MODIFIED_Z = 14.0  # hyperfine's threshold on the modified Z-score
OUTLIER_SHARE = 0.05  # a few stray blocks do not move a median; warn when they are common
MIN_SAMPLES = 10
SHORT_BLOCK_OVERHEAD_RATIO = 1000.0  # a block should last >= 1000x the timer's own overhead


@dataclass(frozen=True)
class Summary:
    """Order statistics of per-iteration times, seconds."""

    n: int
    median: float
    mean: float
    min: float
    max: float
    q1: float
    q3: float
    p10: float
    p90: float
    std: float

    @property
    def iqr(self) -> float:
        return self.q3 - self.q1

    @property
    def cv(self) -> float:
        """Coefficient of variation: standard deviation / mean."""
        return self.std / self.mean if self.mean > 0 else float("nan")


def summarize(times: np.ndarray | list[float]) -> Summary:
    x = np.asarray(times, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    p10, q1, median, q3, p90 = np.percentile(x, [10, 25, 50, 75, 90])
    return Summary(
        n=int(x.size),
        median=float(median),
        mean=float(x.mean()),
        min=float(x.min()),
        max=float(x.max()),
        q1=float(q1),
        q3=float(q3),
        p10=float(p10),
        p90=float(p90),
        std=float(x.std(ddof=1)) if x.size > 1 else 0.0,
    )


def geometric_mean(values: np.ndarray | list[float]) -> float:
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    return float(np.exp(np.log(x).mean())) if x.size else float("nan")


@dataclass(frozen=True)
class StatWarning:
    """A typed warning about one variant's samples; renderers decide how to show it."""

    code: str  # high_spread | outliers | few_samples | short_samples
    message: str


def check_samples(
    times: np.ndarray | list[float],
    block_seconds: float | None = None,
    timer_overhead: float | None = None,
) -> list[StatWarning]:
    """Warnings for one variant's samples: spread, outliers, too few, too short.

    ``block_seconds`` is the median duration of one timed block and ``timer_overhead`` the cost
    of timing an empty block; a block under 1000x that overhead is dominated by the clock.
    """
    x = np.asarray(times, dtype=float)
    s = summarize(x)
    found = []
    if s.n < MIN_SAMPLES:
        found.append(StatWarning("few_samples", f"only {s.n} samples; raise --min-time"))
    ratio = s.iqr / s.median if s.median > 0 else 0.0
    if ratio > HIGH_SPREAD_RATIO:
        found.append(StatWarning("high_spread", f"IQR is {ratio:.0%} of the median"))
    mad = float(np.median(np.abs(x - s.median)))
    if mad > 0:
        z = 0.6745 * np.abs(x - s.median) / mad
        outliers = int((z > OUTLIER_MODIFIED_Z).sum())
        if outliers > OUTLIER_SHARE * s.n:
            found.append(StatWarning("outliers", f"{outliers} of {s.n} samples are outliers"))
    if (
        block_seconds is not None
        and timer_overhead is not None
        and timer_overhead > 0
        and block_seconds < SHORT_BLOCK_OVERHEAD_RATIO * timer_overhead
    ):
        found.append(
            StatWarning(
                "short_samples",
                f"blocks last {block_seconds * 1e6:.1f} us, under 1000x the timer overhead",
            )
        )
    return found
