"""The machine canary of a sequential comparison: did the machine itself change speed between
the two runs? (The canary's workload and its per-run estimate are in ``dscbench/canary.py``.)"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from dscbench import canary as canaries
from dscbench import stats
from dscbench.compare.model import CanaryCheck
from dscbench.stats.runs import KEY

if TYPE_CHECKING:
    import pandas as pd


def canary_check(
    base: dict[str, Any],
    cand: dict[str, Any],
    confidence: float,
    samples: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> tuple[CanaryCheck, tuple[float, float, float] | None]:
    """Candidate / baseline of the two runs' canaries (``base`` and ``cand`` are their run.json
    metadata), with its ``confidence`` interval, and for the decision (log ratio, its variance,
    the variance of how far rows and canary drift apart, from the runs' ``samples``: NaN
    without them); or why the canary cannot be used."""
    cb, cc = base.get("canary") or {}, cand.get("canary") or {}
    missing = [side for side, c in (("baseline", cb), ("candidate", cc)) if not c.get("samples")]
    if missing:
        return CanaryCheck(False, f"no machine canary in the {' and '.join(missing)}"), None
    ib, ic = cb.get("describe", {}), cc.get("describe", {})
    for what in ("implementation", "threads"):
        if ib.get(what) != ic.get(what):
            return (
                CanaryCheck(
                    False,
                    f"the canaries differ ({what} {ib.get(what)} vs {ic.get(what)}), so their "
                    "speeds are not comparable",
                ),
                None,
            )
    eb, ec = canaries.run_estimate(cb["samples"]), canaries.run_estimate(cc["samples"])
    if eb is None or ec is None or not (math.isfinite(eb.se2) and math.isfinite(ec.se2)):
        return CanaryCheck(False, "the canary has fewer than 2 rounds on a side"), None
    m = ec.mean - eb.mean
    var, df = stats.welch(np.array([eb.se2]), np.array([eb.df]), np.array([ec.se2]),
                          np.array([ec.df]))  # fmt: skip
    half = float(stats.t_quantile(confidence, df[0])) * math.sqrt(float(var[0]))
    check = CanaryCheck(True, "", math.exp(m), math.exp(m - half), math.exp(m + half))
    track = math.nan
    if samples is not None:
        track = tracking_variance(samples[0], cb["samples"]) + tracking_variance(
            samples[1], cc["samples"]
        )
    return check, (m, float(var[0]), track)


def tracking_variance(samples: pd.DataFrame, canary_samples: list[dict[str, float]]) -> float:
    """How far this run's rows and canary drift apart, as the variance of their whole-run
    averages: per round, the rows' shared round effect (stats.round_effects) less the canary's
    round value, both centred; their variance over rounds, over the number of rounds. NaN with
    fewer than 3 rounds measured by both. On a steady machine it is small (the constant floor
    CANARY_TRACKING_SD applies); on a busy one, where the canary follows the rows' round effects
    only loosely, it grows with that looseness."""
    if samples.empty:
        return math.nan
    effects = stats.round_effects(stats.round_values(samples, "latency"), KEY)
    canary = canaries.per_round(canary_samples)
    rounds = [r for r in effects.index if int(r) in canary]
    if len(rounds) < 3:
        return math.nan
    e = effects.loc[rounds].to_numpy(dtype=float)
    k = np.array([canary[int(r)] for r in rounds])
    residual = (e - e.mean()) - (k - k.mean())
    return float(residual.var(ddof=1) / len(rounds))
