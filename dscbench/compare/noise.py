"""The noise model's inputs: per-round values of every row and the row estimates over rounds
(the statistics themselves live in ``dscbench.stats``)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dscbench import stats

MIN_ROWS_FOR_SPREAD = 5  # fewer rows in a backend: no run-to-run spread or shift estimate
KEY = ["config_id", "backend", "env", "variant"]


def round_values(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (KEY, round) with ``cost`` = log of the round's median latency, or minus the
    log of the round's median speedup (std/sep per set)."""
    if metric == "latency":
        per_round = samples.groupby([*KEY, "round"], sort=False).time_s.median()
        return np.log(per_round).rename("cost").reset_index()
    pairs = _sets(samples, ["config_id", "backend", "env", "round", "pair"], "variant")
    ratio = (pairs["standard"] / pairs["separable"]).rename("speedup")
    per_round = ratio.groupby(level=["config_id", "backend", "env", "round"], sort=False).median()
    out = (-np.log(per_round)).rename("cost").reset_index()
    out["variant"] = "pair"
    return out


def _sets(samples: pd.DataFrame, index: list[str], columns: str | list[str]) -> pd.DataFrame:
    """The blocks' times (seconds per iteration) side by side: one row per ``index`` (a set of
    a round), one column per ``columns``; sets that lack a block are dropped."""
    return samples.pivot_table(
        index=index, columns=columns, values="time_s", aggfunc="first"
    ).dropna()


def row_stats(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per key: trimmed mean of the round costs (round effects removed), its squared standard
    error, degrees of freedom and number of rounds."""
    values = stats.remove_round_effects(
        round_values(samples, metric), KEY, "backend", MIN_ROWS_FOR_SPREAD
    )
    return stats.row_estimates(values, KEY)


def paired_round_values(
    samples: pd.DataFrame, base_env: str, cand_env: str, metric: str
) -> pd.DataFrame:
    """Interleaved design: one row per (KEY, round) with ``cost`` = the median, over the sets of
    that round, of log(candidate block) - log(baseline block) measured side by side (for the
    speedup metric, minus the log of the ratio of the two environments' speedups)."""
    both = samples[samples.env.isin([base_env, cand_env])]
    if metric == "latency":
        wide = _sets(both, ["config_id", "backend", "variant", "round", "pair"], "env")
        log_ratio = np.log(wide[cand_env]) - np.log(wide[base_env])
        levels = ["config_id", "backend", "variant", "round"]
    else:
        wide = _sets(both, ["config_id", "backend", "round", "pair"], ["env", "variant"])
        speed = {
            env: wide[(env, "standard")] / wide[(env, "separable")] for env in (base_env, cand_env)
        }
        log_ratio = -(np.log(speed[cand_env]) - np.log(speed[base_env]))
        levels = ["config_id", "backend", "round"]
    per_round = log_ratio.groupby(level=levels, sort=False).median()
    out = per_round.rename("cost").reset_index()
    if metric == "speedup":
        out["variant"] = "pair"
    out["env"] = ""
    return out[[*KEY, "round", "cost"]]


def typical_values(table: pd.DataFrame, sign: float, confidence: float) -> dict[tuple, tuple]:
    """key -> (geometric mean of the round values, relative half-width of its interval)."""
    df = table["df"].to_numpy()
    with np.errstate(invalid="ignore"):
        half = stats.t_quantile(confidence, np.maximum(df, 1)) * np.sqrt(table["se2"])
    spread = np.where(df >= 1, np.expm1(half), np.nan)
    values = np.exp(sign * table["mean"].to_numpy())
    return dict(zip(table.index, zip(values, spread, strict=True), strict=True))
