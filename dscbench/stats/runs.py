"""A run's rows seen through its rounds: per-round values, per-row estimates and how much the
rounds of a whole run disagree (its round spread: a disturbed machine shows here first).

Results (run.json's ``round_spread``), compare and the console read these; they live here, below
all of them, because they are statistics of samples and nothing else.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from dscbench.stats.rounds import remove_round_effects, row_estimates, spread

KEY = ["config_id", "backend", "env", "variant"]  # what a row's samples are found by
MIN_ROWS_FOR_SPREAD = 5  # fewer rows in a backend: no run-to-run spread or shift estimate
# A run whose rows' round values spread more than this (median over rows, log scale) was
# disturbed: on the development VM steady runs measured 0.7-2.2%, disturbed ones 5-9%.
DISTURBED_ROUND_SPREAD = 0.03


def round_values(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (KEY, round) with ``cost`` = log of the round's median latency, or minus the
    log of the round's median speedup (std/sep per set), and the ``process`` that measured it."""
    if metric == "latency":
        per_round = samples.groupby([*KEY, "round"], sort=False).agg(
            cost=("time_s", "median"), process=("process", "first")
        )
        per_round["cost"] = np.log(per_round["cost"])
        return per_round.reset_index()
    pairs = sets(samples, ["config_id", "backend", "env", "round", "pair"], "variant")
    ratio = (pairs["standard"] / pairs["separable"]).rename("speedup")
    levels = ["config_id", "backend", "env", "round"]
    per_round = ratio.groupby(level=levels, sort=False).median()
    out = (-np.log(per_round)).rename("cost").reset_index()
    process = samples.groupby(levels, sort=False).process.first()
    out["process"] = process.reindex(pd.MultiIndex.from_frame(out[levels])).to_numpy()
    out["variant"] = "pair"
    return out


def sets(samples: pd.DataFrame, index: list[str], columns: str | list[str]) -> pd.DataFrame:
    """The blocks' times (seconds per iteration) side by side: one row per ``index`` (a set of
    a round), one column per ``columns``; sets that lack a block are dropped."""
    return samples.pivot_table(
        index=index, columns=columns, values="time_s", aggfunc="first"
    ).dropna()


def row_stats(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per key: trimmed mean of the round costs (round effects removed), its squared standard
    error, degrees of freedom and number of rounds."""
    values = round_values(samples, metric)
    values = remove_round_effects(values, KEY, "backend", MIN_ROWS_FOR_SPREAD)
    return row_estimates(values, KEY)


def run_round_spread(samples: pd.DataFrame) -> float:
    """How much a run's rounds disagree (stats.spread of its latency rows)."""
    return spread(row_stats(samples, "latency")) if len(samples) else math.nan
