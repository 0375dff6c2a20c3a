"""The noise model's inputs beyond a single run's (stats/runs.py has those: per-round values,
row estimates, round spread): the interleaved design's paired round values, and the typical
value of a row with its interval."""

from __future__ import annotations

import numpy as np
import pandas as pd

from dscbench import stats
from dscbench.stats.runs import KEY, sets


def paired_round_values(
    samples: pd.DataFrame, base_env: str, cand_env: str, metric: str
) -> pd.DataFrame:
    """Interleaved design: one row per (KEY, round) with ``cost`` = the median, over the sets of
    that round, of log(candidate block) - log(baseline block) measured side by side (for the
    speedup metric, minus the log of the ratio of the two environments' speedups)."""
    both = samples[samples.env.isin([base_env, cand_env])]
    if metric == "latency":
        wide = sets(both, ["config_id", "backend", "variant", "round", "pair"], "env")
        log_ratio = np.log(wide[cand_env]) - np.log(wide[base_env])
        levels = ["config_id", "backend", "variant", "round"]
    else:
        wide = sets(both, ["config_id", "backend", "round", "pair"], ["env", "variant"])
        speed = {
            env: wide[(env, "standard")] / wide[(env, "separable")] for env in (base_env, cand_env)
        }
        log_ratio = -(np.log(speed[cand_env]) - np.log(speed[base_env]))
        levels = ["config_id", "backend", "round"]
    per_round = log_ratio.groupby(level=levels, sort=False).median()
    out = per_round.rename("cost").reset_index()
    # Round r ran in process r mod N of each environment: the baseline's process names the
    # pair of processes, the unit of an interleaved row (stats.unit_values).
    process = both[both.env == base_env].groupby(levels, sort=False).process.first()
    out["process"] = process.reindex(pd.MultiIndex.from_frame(out[levels])).to_numpy()
    if metric == "speedup":
        out["variant"] = "pair"
    out["env"] = ""
    return out[[*KEY, "round", "process", "cost"]]


def typical_values(table: pd.DataFrame, sign: float, confidence: float) -> dict[tuple, tuple]:
    """key -> (geometric mean of the round values, relative half-width of its interval)."""
    df = table["df"].to_numpy()
    with np.errstate(invalid="ignore"):
        half = stats.t_quantile(confidence, np.maximum(df, 1)) * np.sqrt(table["se2"])
    spread = np.where(df >= 1, np.expm1(half), np.nan)
    values = np.exp(sign * table["mean"].to_numpy())
    return dict(zip(table.index, zip(values, spread, strict=True), strict=True))


def one_process_notes(tables: dict[str, pd.DataFrame]) -> list[str]:
    """A note for each side whose rows with two rounds or more were all measured in one
    process: their intervals cover round-to-round noise only."""
    notes = []
    for side, table in tables.items():
        several = table[table["rounds"] >= 2] if "rounds" in table else table.iloc[:0]
        if len(several) and (several["unit"] == "round").all():
            notes.append(
                f"{side}: measured in one process, so intervals are over rounds and miss what "
                "differs between processes (benchmarks/REPORT-noise.md); run with "
                "--processes 3 or more"
            )
    return notes
