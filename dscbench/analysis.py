"""Answers from result tables: per-backend summaries, wins and losses, break-even channel
counts. Pure pandas over result rows (no torch), shared by `report` and `plot`."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dscbench.export.table import pairs
from dscbench.stats import geometric_mean

GROUP_AXES = ("backend", "env", "kernel")


def measured_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, backend, environment) with a measured speedup."""
    joined = pairs(results)
    return joined[(joined.status == "ok") & joined.speedup.notna()].copy()


@dataclass
class BackendSummary:
    backend: str
    env: str
    configurations: int
    speedup: float  # geometric mean
    mac_reduction: float  # geometric mean
    faster: int  # interval above 1
    slower: int  # interval below 1
    unclear: int

    @property
    def efficiency(self) -> float:
        return self.speedup / self.mac_reduction


def backend_summaries(results: pd.DataFrame) -> list[BackendSummary]:
    ok = measured_pairs(results)
    out = []
    for (backend, env), rows in ok.groupby(["backend", "env"], sort=False):
        faster = int((rows.speedup_ci_low > 1).sum())
        slower = int((rows.speedup_ci_high < 1).sum())
        out.append(
            BackendSummary(
                str(backend),
                str(env),
                len(rows),
                geometric_mean(rows.speedup),
                geometric_mean(rows.mac_reduction),
                faster,
                slower,
                len(rows) - faster - slower,
            )
        )
    return out


@dataclass
class BreakEven:
    """Per backend and kernel size: the input-channel count above which separable wins.

    ``channels`` interpolates log-linearly between the last losing and the first winning
    channel count (when every larger count wins too); ``status`` says ``crosses``,
    ``always`` (wins from the smallest count measured), ``never`` (loses up to the largest)
    or ``mixed`` (wins and losses alternate)."""

    backend: str
    env: str
    kernel: int
    status: str
    channels: float
    lowest: int
    highest: int

    def describe(self) -> str:
        if self.status == "crosses":
            return f"above ~{self.channels:.0f} channels"
        if self.status == "always":
            return f"always (from {self.lowest} channels)"
        if self.status == "never":
            return f"never (up to {self.highest} channels)"
        return "no single crossing (wins and losses alternate)"


def break_even(results: pd.DataFrame) -> list[BreakEven]:
    """Break-even channel counts of layer rows (network rows have no channel axis). Several
    configurations with one channel count (other sizes or strides) enter as their geometric
    mean."""
    ok = measured_pairs(results)
    ok = ok[ok.kernel.notna()]
    out = []
    for (backend, env, kernel), rows in ok.groupby(list(GROUP_AXES), sort=False):
        by_c = rows.groupby("in_channels").speedup.apply(geometric_mean).sort_index()
        channels = by_c.index.to_numpy(dtype=float)
        speedup = by_c.to_numpy(dtype=float)
        wins = speedup >= 1
        entry = BreakEven(
            str(backend), str(env), int(kernel), "mixed", math.nan, int(channels[0]),
            int(channels[-1]),
        )  # fmt: skip
        if wins.all():
            entry.status = "always"
        elif not wins.any():
            entry.status = "never"
        else:
            first = int(np.argmax(wins))
            if wins[first:].all():
                entry.status = "crosses"
                lo, hi = first - 1, first
                x0, x1 = math.log2(channels[lo]), math.log2(channels[hi])
                y0, y1 = math.log(speedup[lo]), math.log(speedup[hi])
                entry.channels = 2 ** (x0 + (x1 - x0) * (0 - y0) / (y1 - y0))
        out.append(entry)
    return out


def wins_and_losses(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured pairs where separable is faster (interval above 1) and slower (below 1),
    best and worst first."""
    ok = measured_pairs(results)
    wins = ok[ok.speedup_ci_low > 1].sort_values("speedup", ascending=False)
    losses = ok[ok.speedup_ci_high < 1].sort_values("speedup")
    return wins, losses
