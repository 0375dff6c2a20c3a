"""Compare runs: per-row verdicts with intervals that account for how the machine behaved.

Data only; nothing here prints (``dscbench/export/comparison.py`` renders a Comparison).

- ``model``: the verdicts (``Verdict``), ``Change``, ``Shift``, ``CanaryCheck``, ``Comparison``.
- ``sides``: one environment of a run as a plain run; the two environments of an interleaved one.
- ``match``: matching the two sides' rows; rows missing or failed on a side.
- ``noise``: the interleaved design's paired round values and a row's typical value (a single
  run's round values, row estimates and round spread are ``dscbench.stats.runs``').
- ``canary_check``: whether the machine itself changed speed between two runs.
- ``decide``: verdicts from the rows' intervals and the shift they share.
- ``designs``: the sequential and the interleaved comparison, on one skeleton (``judge``);
  the model behind them is in its module doc.
"""

import sys
import types
from typing import Any

from dscbench.compare.decide import CANARY_TRACKING_SD
from dscbench.compare.designs import compare_envs, compare_sets, judge_runs
from dscbench.compare.match import why_nothing_comparable
from dscbench.compare.model import (
    METRICS,
    CanaryCheck,
    Change,
    CompareError,
    Comparison,
    FailOn,
    Shift,
    Verdict,
)
from dscbench.stats.runs import (
    DISTURBED_ROUND_SPREAD,
    KEY,
    MIN_ROWS_FOR_SPREAD,
    round_values,
    row_stats,
    run_round_spread,
)

__all__ = [
    "CANARY_TRACKING_SD",
    "DISTURBED_ROUND_SPREAD",
    "KEY",
    "METRICS",
    "MIN_ROWS_FOR_SPREAD",
    "CanaryCheck",
    "Change",
    "CompareError",
    "Comparison",
    "FailOn",
    "Shift",
    "Verdict",
    "compare_envs",
    "compare_sets",
    "judge_runs",
    "round_values",
    "row_stats",
    "run_round_spread",
    "why_nothing_comparable",
]


class _CallableModule(types.ModuleType):
    """``dscbench.compare(a, b)`` is ``judge_runs`` (the API's compare), while
    ``dscbench.compare`` stays this package for everything that imports from it."""

    def __call__(self, *args: Any, **kwargs: Any) -> Comparison:
        return judge_runs(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
