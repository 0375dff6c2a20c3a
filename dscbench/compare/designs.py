"""The two designs of a comparison, on one skeleton (README "Comparing runs" has the prose
version). ``judge`` matches the two sides' rows, models the comparable ones and decides them
(``decide.py``); a ``Design`` supplies what differs: where the two sides come from, what a row's
log ratio and variance are, the spread and notes it reports, and how a whole-run shift reads.

**Interleaved** (``compare_envs``): one ``dscbench run --env base=... --env head=...`` measured
both environments in the same minutes, block by block in random order. The unit is the
*paired round*: per round, the median over sets of the log-ratio of the two environments'
blocks that were measured side by side. A slow phase of the machine moves both sides of every
set alike and cancels, so a shift shared by every row is real: a 25% slowdown of every row is
25% slower rows, and a disturbed run stays usable. A row's value is the (trimmed, from 10
rounds) mean of its paired round values, with a t interval over rounds.

**Sequential** (``compare_sets``): two runs made one after the other.

- The unit is the round. A row's value is the trimmed mean of its per-round log medians after
  removing the part of each round that all rows of its backend share (a slow phase), with a
  Yuen-Welch interval from both sides.
- Run-to-run spread between rows, which no single run shows (MAD of the rows' log-ratios
  around their median, minus the within-run part), is added to every row's variance, as the
  between-study variance of a random-effects meta-analysis.
- The shift all rows share (their median log-ratio, with an order-statistic interval) is what
  a faster or slower machine looks like, and also what a regression of every row looks like.
  The machine canary (canary.py), timed in every round of both runs, tells them apart: a shift
  the canary does not share is a change of the rows themselves, judged on each row's ratio
  with the canary's own movement taken out; a shift the canary shares is the machine, and rows
  that merely moved with it are ``inconclusive`` (rows beyond it are judged at three standard
  errors: rows respond unevenly to a machine that changed speed). Without a canary on both
  sides (files from before schema 3) the shift is always read as the machine, and the
  comparison says that a uniform regression cannot be told from it.

Rows present on one side only are ``added``/``removed``; rows not ``ok`` on a side are
``failed`` (``match.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pandas as pd

from dscbench import stats
from dscbench.compare.canary_check import canary_check
from dscbench.compare.confirm import apply_confirmation
from dscbench.compare.counts import METRIC as COUNT_METRIC
from dscbench.compare.counts import compare_count_envs, compare_count_sets
from dscbench.compare.decide import Decision, RowModel, between_run_variance, decide_rows
from dscbench.compare.match import (
    Matched,
    incomplete_notes,
    join,
    match_rows,
    why_nothing_comparable,
)
from dscbench.compare.model import (
    CanaryCheck,
    Change,
    CompareError,
    Comparison,
    check_settings,
)
from dscbench.compare.noise import one_process_notes, paired_round_values, typical_values
from dscbench.compare.sides import env_meta, pick_envs, select_env, select_runs
from dscbench.defaults import CONFIDENCE, THRESHOLD
from dscbench.env import environment_differences
from dscbench.results import ResultSet, load_results
from dscbench.stats.runs import DISTURBED_ROUND_SPREAD, KEY, row_stats
from dscbench.status import Status


def compare_sets(
    base: ResultSet,
    cand: ResultSet,
    *,
    metric: str = "latency",
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
    allow_different_hardware: bool = False,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
) -> Comparison:
    """Sequential design: match the rows of two runs and decide a verdict for each (model in
    the module doc). ``baseline_env``/``candidate_env`` pick one environment of a run that
    measured several."""
    check_settings(metric, threshold, confidence)
    if metric == COUNT_METRIC:
        return compare_count_sets(
            base, cand, threshold, allow_different_hardware, baseline_env, candidate_env
        )
    design = Sequential.of(base, cand, allow_different_hardware, baseline_env, candidate_env)
    return judge(design, metric, threshold, confidence)


def compare_envs(
    rs: ResultSet,
    *,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
    metric: str = "latency",
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """Interleaved design: two environments of one run, judged on paired rounds (module doc).
    Without ``baseline_env``/``candidate_env`` the run must have exactly two environments: the
    first given is the baseline."""
    check_settings(metric, threshold, confidence)
    if metric == COUNT_METRIC:
        return compare_count_envs(rs, threshold, baseline_env, candidate_env)
    return judge(Interleaved.of(rs, baseline_env, candidate_env), metric, threshold, confidence)


@dataclass
class Sides:
    """Both sides of a comparison: each row's estimate per side and the matched rows."""

    stats_b: pd.DataFrame
    stats_c: pd.DataFrame
    typical_c: dict[tuple, tuple]
    matched: Matched

    @classmethod
    def of(cls, base: ResultSet, cand: ResultSet, metric: str, confidence: float) -> Sides:
        sign = 1.0 if metric == "latency" else -1.0
        stats_b, stats_c = row_stats(base.samples, metric), row_stats(cand.samples, metric)
        typical_b = typical_values(stats_b, sign, confidence)
        typical_c = typical_values(stats_c, sign, confidence)
        matched = match_rows(base.results, cand.results, metric, typical_b, typical_c)
        return cls(stats_b, stats_c, typical_c, matched)

    def changes(self, model: RowModel, decision: Decision, sign: float) -> list[Change]:
        """Every row's Change, in the order the rows were matched."""
        matched = self.matched
        changes = dict(matched.settled)
        for j, key in enumerate(model.keys):
            d, half = model.d[j], decision.half[j]
            lo, hi = sorted((math.exp(sign * (d - half)), math.exp(sign * (d + half))))
            changes[key] = Change.of(
                key,
                matched.labels[key],
                verdict=decision.verdict[j],
                baseline=math.exp(sign * model.mean_b[j]),
                candidate=math.exp(sign * model.mean_c[j]),
                ratio=math.exp(sign * d),
                ci_low=lo,
                ci_high=hi,
                rounds=model.rounds[j],
                note=join(decision.notes[j], matched.counts.get(key)),
                spread=self.typical_c.get(key, (math.nan, math.nan))[1],
                detectable=float(decision.detectable[j])
                if decision.detectable is not None
                else math.nan,
                units=int(model.units[j]) if model.units is not None else 0,
                unit=model.unit_names[j] if model.unit_names is not None else "",
            )
        return [matched.with_kernels(changes[k]) for k in matched.keys]


class Design:
    """What a design supplies to ``judge``: the two sides (``base``, ``cand``, each a plain
    run), and the steps that differ between designs."""

    name: ClassVar[str]
    shift_reading: ClassVar[str]  # how a whole-run shift reads (decide_rows)
    run_to_run: ClassVar[bool]  # two runs made apart: add their run-to-run variance to each row
    base: ResultSet
    cand: ResultSet
    envs: tuple[str, str] = ("", "")
    hardware_differs: bool = False

    def prepare(self, metric: str) -> None:
        """Compute what the later steps need beyond each side's row estimates."""

    def unmeasured(self, sides: Sides) -> list[Callable[[tuple], str]]:
        """Why a row both sides have cannot be compared after all ("" when it can)."""
        raise NotImplementedError

    def spreads(self, sides: Sides) -> dict[str, float]:
        """How much the rounds disagree, per side (stats.spread)."""
        raise NotImplementedError

    def notes(self, spreads: dict[str, float]) -> list[str]:
        """What the comparison says about its sides before any row is judged."""
        raise NotImplementedError

    def canary(
        self, metric: str, confidence: float
    ) -> tuple[CanaryCheck | None, tuple[float, float, float] | None]:
        """The machine canary's check and (log ratio, its variance, the variance of the drift
        between rows and canary); (None, None) without one."""
        return None, None

    def units(self, sides: Sides) -> dict[str, pd.DataFrame]:
        """Per side (or the pairs), the row estimates whose ``unit`` says what an interval is
        over (stats.unit_values)."""
        raise NotImplementedError

    def row_model(self, sides: Sides, keys: list[tuple]) -> RowModel:
        """The comparable rows' log cost ratios and their variances."""
        raise NotImplementedError

    def environment(self) -> list[tuple[str, str, str]]:
        """(what, baseline, candidate) for every recorded fact that differs."""
        return environment_differences(self.base.meta, self.cand.meta)

    def confirmed(self, changes: list[Change]) -> list[Change]:
        """The changes after what the run recorded about re-measuring its slowdowns (an
        interleaved run with --decide); unchanged by default."""
        return changes


def judge(design: Design, metric: str, threshold: float, confidence: float) -> Comparison:
    """The skeleton of both designs: estimate each side's rows, match them, settle the rows
    that cannot be compared, then model and decide the rest."""
    sign = 1.0 if metric == "latency" else -1.0  # cost = log latency, or -log speedup
    sides = Sides.of(design.base, design.cand, metric, confidence)
    design.prepare(metric)
    matched = sides.matched
    matched.fail_unmeasured(*design.unmeasured(sides))
    spreads = design.spreads(sides)
    notes = design.notes(spreads)
    check, canary = design.canary(metric, confidence)
    if check is not None and not check.available:
        notes.append(
            f"{check.reason}: a regression of every row cannot be told from a machine that "
            "changed speed (runs from dscbench 0.3 on time a canary in every round)"
        )
    notes += one_process_notes(design.units(sides))
    if not matched.comparable:
        changes, shifts = [matched.settled[k] for k in matched.keys], []
    else:
        model = design.row_model(sides, matched.comparable)
        extra = None
        if design.run_to_run:
            extra, extra_notes = between_run_variance(model)
            notes.extend(extra_notes)
        decision = decide_rows(
            model,
            math.log1p(threshold),
            confidence,
            sign=sign,
            extra=extra,
            shift_reading=design.shift_reading,
            canary=canary,
        )
        changes, shifts = sides.changes(model, decision, sign), decision.shifts
        changes = design.confirmed(changes)
    return Comparison(
        metric=metric,
        threshold=threshold,
        confidence=confidence,
        changes=changes,
        shifts=shifts,
        environment=design.environment(),
        hardware_differs=design.hardware_differs,
        notes=notes,
        round_spread=spreads,
        design=design.name,
        envs=design.envs,
        canary=check,
    )


def _row_model(
    keys: list[tuple],
    d: np.ndarray,
    v: np.ndarray,
    df: np.ndarray,
    sides: Sides,
    units: np.ndarray,
    unit_names: list[str],
) -> RowModel:
    """The RowModel of ``keys``: log cost ratios ``d`` with variance ``v`` and ``df`` degrees of
    freedom from ``units`` units of replication (the fewer side's; ``unit_names`` says what
    they are), each side's value and number of rounds for display."""
    sb, sc = sides.stats_b.loc[keys], sides.stats_c.loc[keys]
    nb, nc = sb["rounds"].to_numpy().astype(int), sc["rounds"].to_numpy().astype(int)
    return RowModel(
        keys=keys,
        d=d,
        v=v,
        df=df,
        few=units < 2,
        units=np.asarray(units, dtype=int),
        unit_names=unit_names,
        mean_b=sb["mean"].to_numpy(dtype=float),
        mean_c=sc["mean"].to_numpy(dtype=float),
        rounds=[(int(a), int(b)) for a, b in zip(nb, nc, strict=True)],
    )


class Sequential(Design):
    """Two runs made one after the other: each side's rows from its own rounds, run-to-run
    spread added, a whole-run shift read against the machine canary."""

    name = "sequential"
    shift_reading = "machine"
    run_to_run = True

    def __init__(self, base: ResultSet, cand: ResultSet, hardware_differs: bool) -> None:
        self.base, self.cand, self.hardware_differs = base, cand, hardware_differs

    @classmethod
    def of(
        cls,
        base: ResultSet,
        cand: ResultSet,
        allow_different_hardware: bool,
        baseline_env: str | None,
        candidate_env: str | None,
    ) -> Sequential:
        """The two runs' chosen environments, refused when their hardware differs (unless
        allowed) or when a side measured rows but kept no samples."""
        base, cand, hardware = select_runs(
            base, cand, allow_different_hardware, baseline_env, candidate_env
        )
        for name, rs in (("baseline", base), ("candidate", cand)):
            ok = rs.results[rs.results.status == Status.OK]
            if len(ok) and rs.samples.empty:
                raise CompareError(f"{name}: no raw samples (samples.parquet) beside the results")
        return cls(base, cand, bool(hardware))

    def unmeasured(self, sides: Sides) -> list[Callable[[tuple], str]]:
        return [
            lambda key: "" if key in sides.stats_b.index else "baseline has no samples",
            lambda key: "" if key in sides.stats_c.index else "candidate has no samples",
        ]

    def spreads(self, sides: Sides) -> dict[str, float]:
        return {"baseline": stats.spread(sides.stats_b), "candidate": stats.spread(sides.stats_c)}

    def units(self, sides: Sides) -> dict[str, pd.DataFrame]:
        return {"baseline": sides.stats_b, "candidate": sides.stats_c}

    def notes(self, spreads: dict[str, float]) -> list[str]:
        notes = incomplete_notes({"baseline": self.base, "candidate": self.cand})
        return notes + [
            f"{side}: its rounds disagree by {spread:.1%} (median over rows; steady runs stay "
            f"under {DISTURBED_ROUND_SPREAD:.0%}), so the machine was busy during that run and "
            "its rows will mostly be inconclusive; rerun it"
            for side, spread in spreads.items()
            if spread > DISTURBED_ROUND_SPREAD
        ]

    def canary(
        self, metric: str, confidence: float
    ) -> tuple[CanaryCheck | None, tuple[float, float, float] | None]:
        if metric != "latency":
            return None, None
        samples = (self.base.samples, self.cand.samples)
        return canary_check(self.base.meta, self.cand.meta, confidence, samples)

    def row_model(self, sides: Sides, keys: list[tuple]) -> RowModel:
        sb, sc = sides.stats_b.loc[keys], sides.stats_c.loc[keys]
        vb, vc = sb["se2"].to_numpy(dtype=float), sc["se2"].to_numpy(dtype=float)
        v, df = stats.welch(vb, sb["df"].to_numpy(dtype=float), vc, sc["df"].to_numpy(dtype=float))
        d = (sc["mean"] - sb["mean"]).to_numpy(dtype=float)
        units = np.minimum(sb["n"].to_numpy(), sc["n"].to_numpy())
        names = [
            "process" if a == b == "process" else "round"
            for a, b in zip(sb["unit"], sc["unit"], strict=True)
        ]
        return _row_model(keys, d, v, df, sides, units, names)


class Interleaved(Design):
    """Two environments of one run, measured side by side: rows judged on paired rounds, in
    which the machine cancels, so a whole-run shift is real."""

    name = "interleaved"
    shift_reading = "real"
    run_to_run = False

    def __init__(self, run: ResultSet, envs: tuple[str, str]) -> None:
        self.run, self.envs = run, envs
        self.base = select_env(run, envs[0], "--baseline-env")
        self.cand = select_env(run, envs[1], "--candidate-env")
        self.paired = pd.DataFrame()

    @classmethod
    def of(cls, rs: ResultSet, baseline_env: str | None, candidate_env: str | None) -> Interleaved:
        return cls(rs, pick_envs(rs, baseline_env, candidate_env))

    def prepare(self, metric: str) -> None:
        values = paired_round_values(self.run.samples, *self.envs, metric)
        self.paired = stats.row_estimates(values, KEY)

    def unmeasured(self, sides: Sides) -> list[Callable[[tuple], str]]:
        paired = self.paired
        return [lambda key: "" if key in paired.index else "no sets measured both environments"]

    def units(self, sides: Sides) -> dict[str, pd.DataFrame]:
        return {"each environment": self.paired}

    def spreads(self, sides: Sides) -> dict[str, float]:
        return {
            self.envs[0]: stats.spread(sides.stats_b),
            self.envs[1]: stats.spread(sides.stats_c),
            "paired": stats.spread(self.paired),
        }

    def notes(self, spreads: dict[str, float]) -> list[str]:
        paired = spreads["paired"]
        return (
            [
                f"the two environments' paired rounds disagree by {paired:.1%} (median over rows); "
                "intervals are wide: raise --rounds or --min-time, or use --precision"
            ]
            if paired > DISTURBED_ROUND_SPREAD
            else []
        )

    def row_model(self, sides: Sides, keys: list[tuple]) -> RowModel:
        p = self.paired.loc[keys]
        d, v, df = (p[c].to_numpy(dtype=float) for c in ("mean", "se2", "df"))
        names = ["process pair" if u == "process" else "round" for u in p["unit"]]
        return _row_model(keys, d, v, df, sides, p["n"].to_numpy(), names)

    def confirmed(self, changes: list[Change]) -> list[Change]:
        return apply_confirmation(changes, self.run.meta.get("confirmation"), self.envs[1])

    def environment(self) -> list[tuple[str, str, str]]:
        meta = self.run.meta
        return environment_differences(env_meta(meta, self.envs[0]), env_meta(meta, self.envs[1]))


def judge_runs(
    baseline: ResultSet | str | Path,
    candidate: ResultSet | str | Path | None = None,
    *,
    metric: str = "latency",
    threshold: float = THRESHOLD,
    confidence: float = CONFIDENCE,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
    allow_different_hardware: bool = False,
) -> Comparison:
    """Two runs (sequential design; runs or paths), or one run's two environments (interleaved
    design); CompareError when a side merges mixed hardware without the flag, or when nothing
    was comparable (a gate that cannot judge must not pass). dscbench.compare(...) and
    `dscbench compare` are this."""
    base = load_results(Path(baseline)) if isinstance(baseline, (str, Path)) else baseline
    settings = dict(
        metric=metric,
        threshold=threshold,
        confidence=confidence,
        baseline_env=baseline_env,
        candidate_env=candidate_env,
    )
    if candidate is None:
        comparison = compare_envs(base, **settings)
        a, b = comparison.envs
        sides = (base.results[base.results.env == a], base.results[base.results.env == b])
        names = (f"environment {a}", f"environment {b}")
    else:
        cand = load_results(Path(candidate)) if isinstance(candidate, (str, Path)) else candidate
        for given, rs in ((baseline, base), (candidate, cand)):
            if rs.meta.get("mixed_hardware") and not allow_different_hardware:
                shown = given if isinstance(given, (str, Path)) else "a run"
                raise CompareError(
                    f"{shown} merges shards measured on different hardware; compare it with "
                    "--allow-different-hardware"
                )
        comparison = compare_sets(
            base, cand, allow_different_hardware=allow_different_hardware, **settings
        )
        sides, names = (base.results, cand.results), ("baseline", "candidate")
    if not comparison.comparable and not comparison.regressions:
        raise CompareError(why_nothing_comparable(*sides, names))
    return comparison
