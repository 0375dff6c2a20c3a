"""What a comparison is: its verdicts, one Change per row, the shared shifts, the canary check
and the Comparison that holds them. Data only: the other modules of ``compare`` fill it, the
renderers in ``export/comparison.py`` read it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np

from dscbench.errors import DscbenchError

METRICS = ("latency", "speedup", "instructions")


class CompareError(DscbenchError):
    """Two result sets that cannot be compared (hardware differs, no samples, bad settings)."""


class Verdict(str, Enum):
    """A row's verdict, and how every renderer treats it.

    Members are listed in the order summaries count them. ``rank``: the order tables list rows
    in (regressions first, so the line that fails a CI job is the first one read); ``style``:
    the rich style of the verdict and its ratio; ``comparable``: both sides measured the row;
    ``regression``: the row got worse (exit 1); ``counted``: summaries count it under its own
    name. Adding a verdict: a member here, the decision that produces it (``decide.py``) and
    its tests."""

    rank: int
    style: str
    comparable: bool
    regression: bool
    counted: bool

    def __new__(
        cls,
        value: str,
        rank: int,
        style: str,
        comparable: bool = False,
        regression: bool = False,
        counted: bool = True,
    ) -> Verdict:
        member = str.__new__(cls, value)
        member._value_ = value
        member.rank, member.style = rank, style
        member.comparable, member.regression, member.counted = comparable, regression, counted
        return member

    SLOWER = ("slower", 0, "bold red", True, True)
    FASTER = ("faster", 3, "green", True)
    SAME = ("same", 4, "", True)
    INCONCLUSIVE = ("inconclusive", 2, "yellow", True)
    ADDED = ("added", 5, "cyan")
    REMOVED = ("removed", 6, "cyan")
    FAILED = ("failed", 7, "magenta")
    # Shown, never decided: a row that was ok in the baseline and fails in the candidate (a
    # configuration that stops working is the worst regression). Summaries count it as failed.
    NEWLY_FAILING = ("newly failing", 1, "bold red", False, True, False)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def in_summaries(cls) -> list[Verdict]:
        """The verdicts a summary counts, in its order."""
        return [v for v in cls if v.counted]


@dataclass(frozen=True)
class Change:
    """One row of a comparison. Values are in the metric's own unit (seconds per iteration, or
    the separable speedup); ``ratio`` = candidate / baseline, with its interval."""

    config_id: str
    backend: str
    variant: str  # "standard"/"separable"; "pair" for the speedup metric
    label: str
    verdict: Verdict
    baseline: float = math.nan
    candidate: float = math.nan
    ratio: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    rounds: tuple[int, int] = (0, 0)
    note: str = ""
    spread: float = math.nan  # relative half-width of the candidate value's own interval
    failed_in: str = ""  # for "failed": "baseline", "candidate" or "both"
    env: str = ""  # the environment both sides were matched in (sequential, several envs)
    # The smallest relative change this row would catch at the comparison's confidence with
    # defaults.POWER (its minimum detectable change), and the units (processes, or process
    # pairs, or rounds) its interval is over.
    detectable: float = math.nan
    units: int = 0
    unit: str = ""  # "process", "process pair" or "round"
    # The kernels each side ran (the ``kernels`` column; for the speedup metric, both variants'
    # as "standard: A | separable: B"); "" where a side did not record them.
    kernels_before: str = ""
    kernels_after: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "verdict", Verdict(self.verdict))  # a plain string is read too

    @classmethod
    def of(cls, key: tuple[str, str, str, str], label: str, **fields: Any) -> Change:
        """The Change of the row ``key`` (config_id, backend, env, variant) labelled ``label``."""
        return cls(
            config_id=key[0], backend=key[1], env=key[2], variant=key[3], label=label, **fields
        )

    @property
    def newly_failing(self) -> bool:
        """Ok in the baseline, failing in the candidate: counted as a regression."""
        return self.failed_in == "candidate"

    @property
    def kernel_changed(self) -> bool:
        """Both sides named their kernels, and they differ (whatever the timing verdict)."""
        return bool(self.kernels_before and self.kernels_after) and (
            self.kernels_before != self.kernels_after
        )

    @property
    def shown(self) -> Verdict:
        """The verdict as shown: a row that fails only in the candidate is newly failing."""
        return Verdict.NEWLY_FAILING if self.newly_failing else self.verdict

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.config_id, self.backend, self.env, self.variant)


@dataclass(frozen=True)
class Shift:
    """The shift all rows of one backend share: candidate / baseline of the metric.

    ``cause`` (when ``detected``): ``machine`` (the canary moved with the rows, or there is no
    canary to tell), ``rows`` (the canary did not: every row changed), ``undetermined`` (the
    canary did not move, but the rows moved no further than rows and canary drift apart on a
    machine alone: it cannot tell), ``real`` (an interleaved comparison, where the machine
    cancels)."""

    backend: str
    ratio: float
    ci_low: float
    ci_high: float
    rows: int
    detected: bool
    cause: str = ""
    drift: float = math.nan  # sd (log) allowed for rows and canary drifting apart; NaN: none
    # cause "rows": the whole run's change net of the canary, "slower" or "faster" when its
    # interval lies beyond the threshold (a regression of every row together fails the gate
    # even where each row's own change stays uncertain), with that interval.
    verdict: str = ""
    beyond_low: float = math.nan
    beyond_high: float = math.nan


@dataclass(frozen=True)
class CanaryCheck:
    """The machine canary of a sequential comparison: candidate / baseline of its time, or why
    it cannot be used."""

    available: bool
    reason: str = ""
    ratio: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan


@dataclass(frozen=True)
class FailOn:
    """What fails a comparison beyond a regression: inconclusive rows (exit 3) and rows that
    ran a different kernel (exit 1)."""

    inconclusive: bool = False
    kernel_change: bool = False


@dataclass
class Comparison:
    metric: str
    threshold: float
    confidence: float
    changes: list[Change]
    shifts: list[Shift] = field(default_factory=list)
    environment: list[tuple[str, str, str]] = field(default_factory=list)  # (what, base, cand)
    hardware_differs: bool = False
    notes: list[str] = field(default_factory=list)
    round_spread: dict[str, float] = field(default_factory=dict)  # per side, see stats.spread
    design: str = "sequential"
    envs: tuple[str, str] = ("", "")  # interleaved: the two environments compared
    canary: CanaryCheck | None = None

    def count(self, verdict: Verdict | str) -> int:
        return sum(c.verdict == verdict for c in self.changes)

    @property
    def regressions(self) -> list[Change]:
        """Rows that got worse: ``slower``, and rows that were ok in the baseline but fail in
        the candidate (a configuration that stops working is the worst regression)."""
        return [c for c in self.changes if c.shown.regression]

    @property
    def comparable(self) -> int:
        """Rows both sides measured (judged slower, faster, same or inconclusive)."""
        return sum(c.verdict.comparable for c in self.changes)

    def geometric_mean_ratio(self) -> float:
        ratios = [c.ratio for c in self.changes if c.verdict.comparable]
        if not ratios:
            return math.nan
        return float(np.exp(np.mean(np.log(ratios))))

    @property
    def run_regressions(self) -> list[Shift]:
        """Whole-run shifts that are regressions: every row slower together, net of the
        machine canary, by more than the threshold."""
        return [s for s in self.shifts if s.verdict == Verdict.SLOWER.value]

    @property
    def kernel_changes(self) -> list[Change]:
        """Rows whose kernels differ between the sides (``Change.kernel_changed``)."""
        return [c for c in self.changes if c.kernel_changed]

    def exit_code(
        self, fail_on_inconclusive: bool = False, fail_on_kernel_change: bool = False
    ) -> int:
        """0 no regression, 1 at least one regression (a row, or every row together) or, when
        asked to fail on them, a row that ran another kernel; 3 inconclusive rows when asked
        to fail on them (a regression wins over inconclusive)."""
        if self.regressions or self.run_regressions:
            return 1
        if fail_on_kernel_change and self.kernel_changes:
            return 1
        if fail_on_inconclusive and self.count(Verdict.INCONCLUSIVE):
            return 3
        return 0

    def code(self, fail_on: FailOn) -> int:
        """``exit_code`` under a ``FailOn`` policy."""
        return self.exit_code(fail_on.inconclusive, fail_on.kernel_change)


def check_settings(metric: str, threshold: float, confidence: float) -> None:
    """Refuse a metric, threshold or confidence that cannot be compared with."""
    if metric not in METRICS:
        raise CompareError(f"--metric {metric!r}: not one of {', '.join(METRICS)}")
    if not (0 < threshold < 1):
        raise CompareError(f"--threshold {threshold!r}: must be a fraction between 0 and 1")
    if not (0.5 <= confidence < 1):
        raise CompareError(f"--confidence {confidence!r}: must be between 0.5 and 1")
