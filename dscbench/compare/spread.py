"""How much a run's rounds disagree, and how much is too much (a disturbed run)."""

from __future__ import annotations

import math

import pandas as pd

from dscbench import stats
from dscbench.compare.noise import row_stats

# A run whose rows' round values spread more than this (median over rows, log scale) was
# disturbed: on the development VM steady runs measured 0.7-2.2%, disturbed ones 5-9%.
DISTURBED_ROUND_SPREAD = 0.03


def run_round_spread(samples: pd.DataFrame) -> float:
    """How much a run's rounds disagree (stats.spread of its latency rows)."""
    return stats.spread(row_stats(samples, "latency")) if len(samples) else math.nan
