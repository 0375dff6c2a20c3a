"""The machine canary of a sequential comparison: did the machine itself change speed between
the two runs? (The canary's workload and its per-run estimate are in ``dscbench/canary.py``.)"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from dscbench import canary as canaries
from dscbench import stats
from dscbench.compare.model import CanaryCheck


def canary_check(
    base: dict[str, Any], cand: dict[str, Any], confidence: float
) -> tuple[CanaryCheck, tuple[float, float] | None]:
    """Candidate / baseline of the two runs' canaries, with its ``confidence`` interval and
    (log ratio, variance) for the decision; or why the canary cannot be used."""
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
    return check, (m, float(var[0]))
