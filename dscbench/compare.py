"""Compare runs: per-row verdicts with intervals that account for how the machine behaved.

Data only; nothing here prints. Three layers: matching rows (``match_rows``), the noise model
(round values, row estimates, run-to-run spread, the whole-run shift and the machine canary;
the statistics themselves live in ``dscbench.stats``) and decisions (``decide_rows``). Two
designs (README "Comparing runs" has the prose version):

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

Verdicts at threshold t, on the interval of ``d`` (log cost ratio, cost = latency or
1/speedup): ``slower`` if all of it lies above log(1 + t), ``faster`` if below -log(1 + t),
``same`` if inside, else ``inconclusive``. Rows present on one side only are
``added``/``removed``; rows not ``ok`` on a side are ``failed``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dscbench import canary as canaries
from dscbench import stats
from dscbench.errors import DscbenchError
from dscbench.labels import row_label
from dscbench.results import LABEL_COLUMNS, RunStatus, Status
from dscbench.stats.runs import DISTURBED_ROUND_SPREAD, KEY, MIN_ROWS_FOR_SPREAD, row_stats

if TYPE_CHECKING:
    from dscbench.results import ResultSet

METRICS = ("latency", "speedup")
VERDICTS = ("slower", "faster", "same", "inconclusive", "added", "removed", "failed")
DESIGNS = ("sequential", "interleaved")
DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
SHIFTED_QUANTILE = 3.0  # the interval quantile for "beyond the whole run's shift"
# How far a run's conv rows and its canary can drift apart while the machine alone changes
# speed: the standard deviation, between back-to-back runs, of (rows' whole-run shift - canary
# shift). `nox -s bench -- gate` (benchmarks/REPORT-gate.md) measured 1.5%, 1.8% and 2.8% in
# three sets of 11 quick runs on the development VM; this allows for the largest.
CANARY_TRACKING_SD = 0.03


class CompareError(DscbenchError):
    """Two result sets that cannot be compared (hardware differs, no samples, bad settings)."""


@dataclass(frozen=True)
class Change:
    """One row of a comparison. Values are in the metric's own unit (seconds per iteration, or
    the separable speedup); ``ratio`` = candidate / baseline, with its interval."""

    config_id: str
    backend: str
    variant: str  # "standard"/"separable"; "pair" for the speedup metric
    label: str
    verdict: str
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

    @property
    def newly_failing(self) -> bool:
        """Ok in the baseline, failing in the candidate: counted as a regression."""
        return self.failed_in == "candidate"

    @property
    def key(self) -> tuple[str, str, str, str]:
        return (self.config_id, self.backend, self.env, self.variant)


@dataclass(frozen=True)
class Shift:
    """The shift all rows of one backend share: candidate / baseline of the metric.

    ``cause`` (when ``detected``): ``machine`` (the canary moved with the rows, or there is no
    canary to tell), ``rows`` (the canary did not: every row changed), ``real`` (an interleaved
    comparison, where the machine cancels)."""

    backend: str
    ratio: float
    ci_low: float
    ci_high: float
    rows: int
    detected: bool
    cause: str = ""


@dataclass(frozen=True)
class CanaryCheck:
    """The machine canary of a sequential comparison: candidate / baseline of its time, or why
    it cannot be used."""

    available: bool
    reason: str = ""
    ratio: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan


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

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.changes)

    @property
    def regressions(self) -> list[Change]:
        """Rows that got worse: ``slower``, and rows that were ok in the baseline but fail in
        the candidate (a configuration that stops working is the worst regression)."""
        return [c for c in self.changes if c.verdict == "slower" or c.newly_failing]

    @property
    def comparable(self) -> int:
        """Rows both sides measured (judged slower, faster, same or inconclusive)."""
        return sum(c.verdict in VERDICTS[:4] for c in self.changes)

    def geometric_mean_ratio(self) -> float:
        ratios = [c.ratio for c in self.changes if c.verdict in VERDICTS[:4]]
        if not ratios:
            return math.nan
        return float(np.exp(np.mean(np.log(ratios))))

    def exit_code(self, fail_on_inconclusive: bool = False) -> int:
        """0 no regression, 1 at least one regression, 3 inconclusive rows when asked to fail
        on them (a regression wins over inconclusive)."""
        if self.regressions:
            return 1
        if fail_on_inconclusive and self.count("inconclusive"):
            return 3
        return 0


# Axes whose values, when the two sides share none, explain why no row matched: (column, how to
# say it, the flag that sets it).
MATCH_AXES = (
    ("threads", "thread counts", "--threads"),
    ("dtype", "dtypes", "--dtype"),
    ("batch", "batch sizes", "--batch"),
    ("mode", "modes", "--mode"),
    ("memory_format", "memory formats", "--memory-format"),
    ("backend", "backends", "--backend"),
    ("model", "models", "--model"),
    ("in_channels", "channel counts", "--in-channels"),
)


def why_nothing_comparable(base: pd.DataFrame, cand: pd.DataFrame, sides: tuple[str, str]) -> str:
    """One line on why two sides have no row in common that both measured: the axes on which
    they share no value, or that the shared configurations failed or were not measured."""
    keys_b = set(zip(base.config_id, base.backend, base.variant, strict=True))
    keys_c = set(zip(cand.config_id, cand.backend, cand.variant, strict=True))
    if not keys_b & keys_c:
        differ = []
        for column, what, flag in MATCH_AXES:
            vb = sorted({str(v) for v in base[column].dropna()})
            vc = sorted({str(v) for v in cand[column].dropna()})
            if vb and vc and not set(vb) & set(vc):
                differ.append(
                    f"{what} differ ({sides[0]} {', '.join(vb)}, {sides[1]} {', '.join(vc)}): "
                    f"rerun one side with {flag} {','.join(vb)}"
                )
        reason = "; ".join(differ) or "their configurations differ"
        return f"nothing to compare: the two sides share no configuration; {reason}"
    shared = keys_b & keys_c
    ok_b = {k for k, s in zip(zip(base.config_id, base.backend, base.variant, strict=True),
                              base.status, strict=True) if s == Status.OK}  # fmt: skip
    ok_c = {k for k, s in zip(zip(cand.config_id, cand.backend, cand.variant, strict=True),
                              cand.status, strict=True) if s == Status.OK}  # fmt: skip
    return (
        f"nothing to compare: of the {len(shared)} rows both sides have, {sides[0]} measured "
        f"{len(shared & ok_b)} and {sides[1]} {len(shared & ok_c)}, and none was measured by "
        "both (see their status column)"
    )


def incomplete_notes(sides: dict[str, Any]) -> list[str]:
    """A note for each side whose run did not finish (interrupted, crashed, still running):
    its unreached rows are left out, not counted as failures."""
    notes = []
    for name, rs in sides.items():
        status = rs.meta.get("status", RunStatus.COMPLETE)
        if status != RunStatus.COMPLETE:
            missing = int((rs.results.status == Status.NOT_MEASURED).sum())
            notes.append(
                f"{name} is incomplete (status {status}, {rs.meta.get('rounds_done', '?')} "
                f"round(s) done): {missing} row(s) it never measured are left out, and only "
                "what both sides measured is judged"
            )
    return notes


def _check_settings(metric: str, threshold: float, confidence: float) -> None:
    if metric not in METRICS:
        raise CompareError(f"--metric {metric!r}: not one of {', '.join(METRICS)}")
    if not (0 < threshold < 1):
        raise CompareError(f"--threshold {threshold!r}: must be a fraction between 0 and 1")
    if not (0.5 <= confidence < 1):
        raise CompareError(f"--confidence {confidence!r}: must be between 0.5 and 1")


# ---------------------------------------------------------------------------------------------
# Environment facts
# ---------------------------------------------------------------------------------------------


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = ", ".join(str(v) for v in value)
    elif value is not None:
        out[prefix] = str(value)


# Facts that identify the hardware; everything else in the environment may differ freely.
HARDWARE_KEYS = ("environment.cpu_model", "environment.machine")
ENVIRONMENT_KEYS = (
    "environment.cpu_model",
    "environment.machine",
    "environment.cpu_count",
    "environment.cpu_affinity",
    "environment.hostname",
    "environment.os",
    "environment.python",
    "environment.executable",
    "environment.dscbench",
    "environment.torch.num_threads",
    "environment.torch.mkldnn_enabled",
    "environment.cpu_governor",
)


def environment_differences(
    base: dict[str, Any], cand: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """(what, baseline value, candidate value) for every recorded fact that differs: hardware,
    threads, library versions, variables set for an environment, backend devices and versions."""
    flat_b: dict[str, str] = {}
    flat_c: dict[str, str] = {}
    for meta, flat in ((base, flat_b), (cand, flat_c)):
        _flatten("", {"environment": meta.get("environment", {})}, flat)
        _flatten("", {"backends": meta.get("backends", {})}, flat)
        _flatten("", {"variables": meta.get("variables", {})}, flat)
    keys = [k for k in ENVIRONMENT_KEYS if k in flat_b or k in flat_c]
    for prefix in ("environment.libraries.", "variables."):
        keys += sorted(k for k in {*flat_b, *flat_c} if k.startswith(prefix))
    names_b, names_c = set(base.get("backends", {})), set(cand.get("backends", {}))
    keys += sorted(
        k
        for k in {*flat_b, *flat_c}
        if k.startswith("backends.") and k.split(".")[1] in names_b & names_c
    )
    out = [
        (k, flat_b.get(k, "-"), flat_c.get(k, "-"))
        for k in keys
        if flat_b.get(k, "-") != flat_c.get(k, "-")
    ]
    for name in sorted(names_b ^ names_c):
        out.append((f"backends.{name}", "used" if name in names_b else "-",
                    "used" if name in names_c else "-"))  # fmt: skip
    return out


def hardware_differences(base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """What says the two runs ran on different hardware: CPU model, architecture, GPU names."""
    diffs = []
    env_b, env_c = base.get("environment", {}), cand.get("environment", {})
    for key in HARDWARE_KEYS:
        name = key.split(".", 1)[1]
        if env_b.get(name) != env_c.get(name):
            diffs.append(f"{name} {env_b.get(name)!r} vs {env_c.get(name)!r}")
    backends_b, backends_c = base.get("backends", {}), cand.get("backends", {})
    for name in sorted(set(backends_b) & set(backends_c)):
        b, c = backends_b[name], backends_c[name]
        if b.get("device") == "cuda" and b.get("device_name") != c.get("device_name"):
            diffs.append(f"{name} GPU {b.get('device_name')!r} vs {c.get('device_name')!r}")
    return diffs


def env_meta(meta: dict[str, Any], env: str) -> dict[str, Any]:
    """The facts recorded for one environment of an interleaved run, shaped like a run's meta
    (environment, backends, variables), for ``environment_differences``."""
    info = (meta.get("environments") or {}).get(env) or {}
    return {
        "environment": info.get("environment", {}),
        "backends": info.get("backends", {}),
        "variables": info.get("variables", {}),
    }


# ---------------------------------------------------------------------------------------------
# Matching rows
# ---------------------------------------------------------------------------------------------

ROW_FIELDS = ["status", "error", *LABEL_COLUMNS, "backend", "env"]


def _rows(results: pd.DataFrame, metric: str) -> dict[tuple, dict[str, Any]]:
    """key -> the fields of the result row the metric compares (status, error, label)."""
    columns = ["config_id", "variant", *[f for f in ROW_FIELDS if f != "variant"]]
    # A row an interrupted run never reached is absent, not failing: only what both sides
    # measured is judged (incomplete_notes says a side was cut short).
    results = results[results.status != Status.NOT_MEASURED]
    if metric == "latency":
        rows = results[columns]
    else:
        rows = results.loc[results.variant == "separable", columns].copy()
        rows["variant"] = "pair"
    keys = zip(rows.config_id, rows.backend, rows.env, rows.variant, strict=True)
    return dict(zip(keys, rows[ROW_FIELDS].to_dict("records"), strict=True))


def label(row: dict[str, Any]) -> str:
    """A comparison row's label: ``row_label`` with every axis but backend and environment,
    which renderers show themselves (stable across runs, so tools that track rows by name,
    like github-action-benchmark, see the same name every time)."""
    return row_label(row, omit=("backend", "env"))


@dataclass
class Matched:
    """The outcome of matching two sides' rows: every key in order, the rows that are missing
    or failed on a side as finished Changes, and the keys both sides measured."""

    keys: list[tuple]
    labels: dict[tuple, str]
    settled: dict[tuple, Change]
    comparable: list[tuple]
    counts: dict[tuple, str]


def match_rows(
    base: pd.DataFrame, cand: pd.DataFrame, metric: str, typical_b: dict, typical_c: dict
) -> Matched:
    """Match result rows on config_id (every config column), backend, env and variant."""
    rows_b, rows_c = _rows(base, metric), _rows(cand, metric)
    counts = count_changes(base, cand, metric)
    keys = list(dict.fromkeys([*rows_b, *rows_c]))
    labels: dict[tuple, str] = {}
    settled: dict[tuple, Change] = {}
    comparable = []
    for key in keys:
        b, c = rows_b.get(key), rows_c.get(key)
        labels[key] = label(c if c is not None else b)
        common = dict(
            config_id=key[0], backend=key[1], env=key[2], variant=key[3], label=labels[key]
        )
        if c is None or b is None:
            if c is None:
                value, _ = typical_b.get(key, (math.nan, math.nan))
                settled[key] = Change(**common, verdict="removed", baseline=value)
            else:
                value, spread = typical_c.get(key, (math.nan, math.nan))
                settled[key] = Change(**common, verdict="added", candidate=value, spread=spread)
            continue
        if b["status"] != Status.OK or c["status"] != Status.OK:
            if b["status"] == Status.OK:
                side = "candidate"
                note = f"candidate {c['status']}: {_own_error(c['error'], key[3])}".rstrip(": ")
            elif c["status"] == Status.OK:
                side = "baseline"
                note = f"baseline {b['status']}: {_own_error(b['error'], key[3])}".rstrip(": ")
            else:
                side = "both"
                note = f"both failed: baseline {b['status']}, candidate {c['status']}"
            settled[key] = Change(
                **common, verdict="failed", note=_join(note, counts.get(key)), failed_in=side
            )
            continue
        comparable.append(key)
    return Matched(keys, labels, settled, comparable, counts)


def _own_error(error: str, variant: str) -> str:
    """The part of a case's error about ``variant`` ("standard: ...; separable: ...")."""
    for part in error.split("; "):
        if part.startswith(f"{variant}: "):
            return part[len(variant) + 2 :]
    return error


def _join(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


def count_changes(base: pd.DataFrame, cand: pd.DataFrame, metric: str) -> dict[tuple, str]:
    """key -> 'counts changed: standard params 9216 -> 9472' for configurations whose params or
    MACs differ between the runs (the model or the counter changed)."""
    on = ["config_id", "backend", "env", "variant"]
    columns = [*on, "params", "macs"]
    both = base[columns].merge(cand[columns], on=on, suffixes=("_b", "_c"))
    changed = both[(both.params_b != both.params_c) | (both.macs_b != both.macs_c)]
    out: dict[tuple, list[str]] = {}
    for row in changed.itertuples(index=False):
        parts = [
            f"{row.variant} {name} {getattr(row, name + '_b')} -> {getattr(row, name + '_c')}"
            for name in ("params", "macs")
            if getattr(row, name + "_b") != getattr(row, name + "_c")
        ]
        variant = "pair" if metric == "speedup" else row.variant
        out.setdefault((row.config_id, row.backend, row.env, variant), []).extend(parts)
    return {key: "counts changed: " + ", ".join(parts) for key, parts in out.items()}


def select_env(rs: ResultSet, env: str | None, flag: str) -> ResultSet:
    """The rows of one environment of ``rs`` (``env``), relabelled as a plain run's; a run with
    one environment needs no choice."""
    from dscbench.results import ResultSet

    present = sorted(set(rs.results.env))
    if env is None:
        if len(present) > 1:
            listed = ", ".join(present)
            raise CompareError(
                f"{flag.replace('-env', '')} run measured environments {listed}; pick one "
                f"with {flag}"
            )
        env = present[0] if present else ""
    elif env not in present:
        shown = ", ".join(e or '""' for e in present) or "none"
        raise CompareError(f"{flag} {env!r}: that run has environments {shown}")
    results = rs.results[rs.results.env == env].assign(env="")
    samples = rs.samples[rs.samples.env == env].assign(env="")
    meta = dict(rs.meta)
    if env:
        facts = env_meta(rs.meta, env)
        meta.update(environment=facts["environment"] or meta.get("environment", {}))
        meta.update(backends=facts["backends"] or meta.get("backends", {}))
        meta["variables"] = facts["variables"]
    return ResultSet(meta, results, samples)


# ---------------------------------------------------------------------------------------------
# Round values and row estimates
# ---------------------------------------------------------------------------------------------


def paired_round_values(
    samples: pd.DataFrame, base_env: str, cand_env: str, metric: str
) -> pd.DataFrame:
    """Interleaved design: one row per (KEY, round) with ``cost`` = the median, over the sets of
    that round, of log(candidate block) - log(baseline block) measured side by side (for the
    speedup metric, minus the log of the ratio of the two environments' speedups)."""
    both = samples[samples.env.isin([base_env, cand_env])]
    if metric == "latency":
        wide = both.pivot_table(
            index=["config_id", "backend", "variant", "round", "pair"],
            columns="env",
            values="time_s",
            aggfunc="first",
        ).dropna()
        log_ratio = np.log(wide[cand_env]) - np.log(wide[base_env])
        levels = ["config_id", "backend", "variant", "round"]
    else:
        wide = both.pivot_table(
            index=["config_id", "backend", "round", "pair"],
            columns=["env", "variant"],
            values="time_s",
            aggfunc="first",
        ).dropna()
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


# ---------------------------------------------------------------------------------------------
# Decisions
# ---------------------------------------------------------------------------------------------


def classify(low: np.ndarray, high: np.ndarray, bound: float) -> np.ndarray:
    """Verdicts of intervals [low, high] of the log cost ratio at ``bound`` = log(1 + t)."""
    verdict = np.full(low.shape, "inconclusive", dtype=object)
    verdict[low > bound] = "slower"
    verdict[high < -bound] = "faster"
    verdict[(low > -bound) & (high < bound)] = "same"
    return verdict


@dataclass
class RowModel:
    """The comparable rows as arrays: the log cost ratio ``d`` (candidate - baseline), its
    variance ``v`` and degrees of freedom, and both sides' values (log cost) for display."""

    keys: list[tuple]
    d: np.ndarray
    v: np.ndarray
    df: np.ndarray
    few: np.ndarray  # fewer than 2 rounds on a side: no interval
    mean_b: np.ndarray
    mean_c: np.ndarray
    rounds: list[tuple[int, int]]
    backends: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.backends = np.array([k[1] for k in self.keys])


@dataclass
class Decision:
    """Per comparable row: verdict, the interval shown (log scale, around ``d``) and a note."""

    verdict: np.ndarray
    half: np.ndarray
    notes: list[str]
    shifts: list[Shift]


def decide_rows(
    model: RowModel,
    bound: float,
    confidence: float,
    *,
    sign: float = 1.0,
    extra: np.ndarray | None = None,
    shift_reading: str = "machine",
    canary: tuple[float, float] | None = None,
) -> Decision:
    """Verdicts for the comparable rows.

    ``sign``: +1 when the metric is a cost (latency), -1 when it is a benefit (speedup), so
    shifts are reported in the metric's direction. ``extra``: run-to-run variance added to each
    row (sequential). ``shift_reading``:
    ``machine`` (sequential: a detected whole-run shift may be the machine; with ``canary`` =
    (log ratio, variance) it is the machine only if the canary shares it) or ``real``
    (interleaved: the machine cancels, every row is judged on its own ratio).
    """
    from scipy import stats as sps

    d, v, df, few = model.d, model.v, model.df, model.few
    extra = np.zeros_like(d) if extra is None else extra
    z = float(sps.norm.ppf(0.5 + confidence / 2))
    q = stats.t_quantile(confidence, df)
    half = q * np.sqrt(np.where(few, np.nan, v + extra))
    verdict = classify(d - half, d + half, bound)
    notes = np.full(len(d), "", dtype=object)
    notes[few] = (
        f"fewer than 2 rounds on a side, so no interval: only a change beyond x{HUGE_CHANGE:g} "
        "is judged; rerun with --rounds 3 or more"
    )
    verdict[few] = "inconclusive"
    shifts: list[Shift] = []
    for backend in dict.fromkeys(model.backends):
        mine = model.backends == backend
        s = stats.common_shift(d[mine], confidence, MIN_ROWS_FOR_SPREAD)
        enough = s.rows >= MIN_ROWS_FOR_SPREAD
        detected = enough and abs(s.center) >= bound / 2 and (s.low > 0 or s.high < 0)
        cause = ""
        if detected and shift_reading == "real":
            cause = "real"
        elif detected and canary is None:
            cause = "machine"
        elif detected and canary is not None:
            # The rows moved together; did the machine (the canary) move with them?
            m, var_m = canary
            excess = s.center - m
            var_excess = (s.half_width / z) ** 2 + var_m + CANARY_TRACKING_SD**2
            shared = not (
                abs(excess) >= bound / 2
                and abs(excess) > z * math.sqrt(var_excess)
                and np.sign(excess) == np.sign(s.center)
            )
            cause = "machine" if shared else "rows"
            if cause == "rows":
                # Every row changed: judge each on its own ratio, net of what the machine did.
                var_rows = v + extra + var_m + CANARY_TRACKING_SD**2
                adj_half = q * np.sqrt(np.where(few, np.nan, var_rows))
                e = d - m
                judged = classify(e - adj_half, e + adj_half, bound)
                pick = mine & ~few
                verdict[pick], half[pick] = judged[pick], adj_half[pick]
                notes[pick] = "every row changed (the machine canary did not); judged net of it"
        if cause == "machine":
            # Rows respond unevenly to a machine that changed speed (memory-bound rows suffer
            # more from a noisy neighbour), so a row is called slower beyond the shift only at
            # three standard errors.
            shift_var = (s.half_width / z) ** 2
            q_excess = np.maximum(q, SHIFTED_QUANTILE)
            half_excess = q_excess * np.sqrt(np.where(few, np.nan, v + extra + shift_var))
            e = d - s.center
            beyond = classify(e - half_excess, e + half_excess, bound)
            for j in np.flatnonzero(mine & ~few):
                if verdict[j] in ("slower", "faster"):
                    if beyond[j] != verdict[j]:
                        verdict[j] = "inconclusive"
                        notes[j] = "moved with the whole run (see the machine shift)"
                    else:
                        notes[j] = "beyond the whole run's shift"
        low, high = sorted(math.exp(sign * x) for x in (s.low, s.high))
        shifts.append(
            Shift(str(backend), math.exp(sign * s.center), low, high, s.rows, detected, cause)
        )
    judge_huge_changes(model, verdict, notes)
    return Decision(verdict, half, list(notes), shifts)


# A change this large is beyond any drift a machine showed between runs (the busiest development
# VM moved 5-65%), so rows too short for an interval are still judged when every estimate says
# it; a CI gate must not wave through a configuration that became 170x slower.
HUGE_CHANGE = 2.0
SHORT_ROUNDS = 3  # fewer rounds on a side: the interval is missing or hardly informative


def judge_huge_changes(model: RowModel, verdict: np.ndarray, notes: np.ndarray) -> None:
    """Rows with fewer than SHORT_ROUNDS rounds on a side whose change is beyond HUGE_CHANGE
    become slower/faster (instead of inconclusive), with a note that says on what basis."""
    short = np.array([min(r) < SHORT_ROUNDS for r in model.rounds], dtype=bool)
    huge = short & (np.abs(model.d) >= math.log(HUGE_CHANGE)) & (verdict == "inconclusive")
    for j in np.flatnonzero(huge):
        verdict[j] = "slower" if model.d[j] > 0 else "faster"
        notes[j] = (
            f"{min(model.rounds[j])} round(s) on a side: no usable interval, but a change of "
            f"x{math.exp(abs(model.d[j])):.1f} is beyond x{HUGE_CHANGE:g}, more than machine "
            "drift; rerun with --rounds 3 or more for an interval"
        )


def between_run_variance(model: RowModel) -> tuple[np.ndarray, list[str]]:
    """Run-to-run variance per row (sequential comparisons): per backend, the robust spread of
    the rows' log-ratios around their median, minus the typical within-run variance. Backends
    with too few rows get none, and a note."""
    extra = np.zeros_like(model.d)
    notes = []
    for backend in dict.fromkeys(model.backends):
        mine = model.backends == backend
        if mine.sum() >= MIN_ROWS_FOR_SPREAD:
            spread = stats.robust_sd(model.d[mine])
            finite = model.v[mine][np.isfinite(model.v[mine])]
            within = float(np.median(finite)) if finite.size else 0.0
            extra[mine] = max(0.0, spread**2 - within)
        else:
            notes.append(
                f"{backend}: fewer than {MIN_ROWS_FOR_SPREAD} comparable rows, so run-to-run "
                "noise cannot be estimated; intervals cover round-to-round noise only"
            )
    return extra, notes


def _changes(
    matched: Matched,
    model: RowModel,
    decision: Decision,
    sign: float,
    typical_c: dict[tuple, tuple],
) -> list[Change]:
    """Every row's Change, in the order the rows were matched."""
    changes = dict(matched.settled)
    for j, key in enumerate(model.keys):
        d, half = model.d[j], decision.half[j]
        lo, hi = sorted((math.exp(sign * (d - half)), math.exp(sign * (d + half))))
        changes[key] = Change(
            config_id=key[0],
            backend=key[1],
            env=key[2],
            variant=key[3],
            label=matched.labels[key],
            verdict=str(decision.verdict[j]),
            baseline=math.exp(sign * model.mean_b[j]),
            candidate=math.exp(sign * model.mean_c[j]),
            ratio=math.exp(sign * d),
            ci_low=lo,
            ci_high=hi,
            rounds=model.rounds[j],
            note=_join(decision.notes[j], matched.counts.get(key)),
            spread=typical_c.get(key, (math.nan, math.nan))[1],
        )
    return [changes[k] for k in matched.keys]


# ---------------------------------------------------------------------------------------------
# The machine canary
# ---------------------------------------------------------------------------------------------


def canary_check(base: dict[str, Any], cand: dict[str, Any]) -> tuple[CanaryCheck, tuple | None]:
    """Candidate / baseline of the two runs' canaries, with (log ratio, variance) for the
    decision; or why the canary cannot be used."""
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
    half = float(stats.t_quantile(0.95, df[0])) * math.sqrt(float(var[0]))
    check = CanaryCheck(True, "", math.exp(m), math.exp(m - half), math.exp(m + half))
    return check, (m, float(var[0]))


# ---------------------------------------------------------------------------------------------
# The two designs
# ---------------------------------------------------------------------------------------------


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

    def fail_unmeasured(self, *why: Callable[[tuple], str]) -> None:
        """Comparable rows that some ``why(key)`` says cannot be compared become ``failed``."""
        matched = self.matched
        for key in list(matched.comparable):
            reason = next((text for text in (w(key) for w in why) if text), "")
            if reason:
                matched.settled[key] = Change(
                    config_id=key[0],
                    backend=key[1],
                    env=key[2],
                    variant=key[3],
                    label=matched.labels[key],
                    verdict="failed",
                    note=_join(reason, matched.counts.get(key)),
                )
                matched.comparable.remove(key)

    def judge(
        self,
        model: Callable[[list[tuple]], RowModel],
        decide: Callable[[RowModel], Decision],
        sign: float,
    ) -> tuple[list[Change], list[Shift]]:
        """Every row's Change in matching order, and the shifts, once ``decide`` has judged
        the comparable rows' ``model``."""
        matched = self.matched
        if not matched.comparable:
            return [matched.settled[k] for k in matched.keys], []
        m = model(matched.comparable)
        decision = decide(m)
        return _changes(matched, m, decision, sign, self.typical_c), decision.shifts


def _disturbed_notes(spreads: dict[str, float], what: str) -> list[str]:
    return [
        f"{side}: its rounds disagree by {spread:.1%} (median over rows; steady runs stay under "
        f"{DISTURBED_ROUND_SPREAD:.0%}), so the machine was busy during {what} and its rows will "
        "mostly be inconclusive; rerun it"
        for side, spread in spreads.items()
        if spread > DISTURBED_ROUND_SPREAD
    ]


def _model(
    keys: list[tuple], d: np.ndarray, v: np.ndarray, df: np.ndarray, sb: pd.DataFrame, sc, nb, nc
) -> RowModel:
    return RowModel(
        keys=keys,
        d=d,
        v=v,
        df=df,
        few=(nb < 2) | (nc < 2),
        mean_b=sb["mean"].to_numpy(dtype=float),
        mean_c=sc["mean"].to_numpy(dtype=float),
        rounds=[(int(a), int(b)) for a, b in zip(nb, nc, strict=True)],
    )


def compare_sets(
    base: ResultSet,
    cand: ResultSet,
    *,
    metric: str = "latency",
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    allow_different_hardware: bool = False,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
) -> Comparison:
    """Sequential design: match the rows of two runs and decide a verdict for each (model in
    the module doc). ``baseline_env``/``candidate_env`` pick one environment of a run that
    measured several."""
    _check_settings(metric, threshold, confidence)
    base = select_env(base, baseline_env, "--baseline-env")
    cand = select_env(cand, candidate_env, "--candidate-env")
    hardware = hardware_differences(base.meta, cand.meta)
    if hardware and not allow_different_hardware:
        raise CompareError(
            "the runs were measured on different hardware ("
            + "; ".join(hardware)
            + "); pass --allow-different-hardware to compare anyway"
        )
    for name, rs in (("baseline", base), ("candidate", cand)):
        ok = rs.results[rs.results.status == Status.OK]
        if len(ok) and rs.samples.empty:
            raise CompareError(f"{name}: no raw samples (samples.parquet) beside the results")
    sign = 1.0 if metric == "latency" else -1.0  # cost = log latency, or -log speedup
    sides = Sides.of(base, cand, metric, confidence)
    sides.fail_unmeasured(
        lambda key: "" if key in sides.stats_b.index else "baseline has no samples",
        lambda key: "" if key in sides.stats_c.index else "candidate has no samples",
    )
    spreads = {"baseline": stats.spread(sides.stats_b), "candidate": stats.spread(sides.stats_c)}
    notes = incomplete_notes({"baseline": base, "candidate": cand})
    notes += _disturbed_notes(spreads, "that run")
    check, canary = canary_check(base.meta, cand.meta) if metric == "latency" else (None, None)
    if check is not None and not check.available:
        notes.append(
            f"{check.reason}: a regression of every row cannot be told from a machine that "
            "changed speed (runs from dscbench 0.3 on time a canary in every round)"
        )

    def model(keys: list[tuple]) -> RowModel:
        sb, sc = sides.stats_b.loc[keys], sides.stats_c.loc[keys]
        vb, vc = sb["se2"].to_numpy(dtype=float), sc["se2"].to_numpy(dtype=float)
        v, df = stats.welch(vb, sb["df"].to_numpy(dtype=float), vc, sc["df"].to_numpy(dtype=float))
        d = (sc["mean"] - sb["mean"]).to_numpy(dtype=float)
        nb, nc = sb["n"].to_numpy().astype(int), sc["n"].to_numpy().astype(int)
        return _model(keys, d, v, df, sb, sc, nb, nc)

    def decide(m: RowModel) -> Decision:
        extra, extra_notes = between_run_variance(m)
        notes.extend(extra_notes)
        return decide_rows(
            m, math.log1p(threshold), confidence, sign=sign, extra=extra, canary=canary
        )

    changes, shifts = sides.judge(model, decide, sign)
    return Comparison(
        metric=metric,
        threshold=threshold,
        confidence=confidence,
        changes=changes,
        shifts=shifts,
        environment=environment_differences(base.meta, cand.meta),
        hardware_differs=bool(hardware),
        notes=notes,
        round_spread=spreads,
        design="sequential",
        canary=check,
    )


def run_envs(rs: ResultSet) -> list[str]:
    """The environments a run measured, in the order they were given (run.json), else sorted."""
    listed = list((rs.meta.get("environments") or {}).keys())
    present = set(rs.results.env)
    return [e for e in listed if e in present] or sorted(present)


def compare_envs(
    rs: ResultSet,
    *,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
    metric: str = "latency",
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
) -> Comparison:
    """Interleaved design: two environments of one run, judged on paired rounds (module doc).
    Without ``baseline_env``/``candidate_env`` the run must have exactly two environments: the
    first given is the baseline."""
    _check_settings(metric, threshold, confidence)
    envs = run_envs(rs)
    if baseline_env is None and candidate_env is None:
        if len(envs) != 2:
            if len(envs) < 2:
                raise CompareError(
                    "this run measured one environment; give a second run to compare it with, "
                    "or measure two with `dscbench run --env NAME=PYTHON --env NAME=PYTHON`"
                )
            raise CompareError(
                f"this run measured environments {', '.join(envs)}; pick two with "
                "--baseline-env and --candidate-env"
            )
        baseline_env, candidate_env = envs
    for flag, env in (("--baseline-env", baseline_env), ("--candidate-env", candidate_env)):
        if env is None:
            raise CompareError(f"{flag} is needed too (the run has {', '.join(envs)})")
        if env not in envs:
            raise CompareError(f"{flag} {env!r}: the run has environments {', '.join(envs)}")
    if baseline_env == candidate_env:
        raise CompareError(f"--baseline-env and --candidate-env are both {baseline_env!r}")
    assert baseline_env is not None and candidate_env is not None
    side_b = select_env(rs, baseline_env, "--baseline-env")
    side_c = select_env(rs, candidate_env, "--candidate-env")
    sign = 1.0 if metric == "latency" else -1.0
    sides = Sides.of(side_b, side_c, metric, confidence)
    paired = stats.row_estimates(
        paired_round_values(rs.samples, baseline_env, candidate_env, metric), KEY
    )
    sides.fail_unmeasured(
        lambda key: "" if key in paired.index else "no sets measured both environments"
    )
    spreads = {
        baseline_env: stats.spread(sides.stats_b),
        candidate_env: stats.spread(sides.stats_c),
        "paired": stats.spread(paired),
    }
    notes = []
    if spreads["paired"] > DISTURBED_ROUND_SPREAD:
        notes.append(
            f"the two environments' paired rounds disagree by {spreads['paired']:.1%} (median "
            f"over rows); intervals are wide: raise --rounds or --min-time, or use --precision"
        )

    def model(keys: list[tuple]) -> RowModel:
        p = paired.loc[keys]
        n = p["n"].to_numpy().astype(int)
        d, v, df = (p[c].to_numpy(dtype=float) for c in ("mean", "se2", "df"))
        return _model(keys, d, v, df, sides.stats_b.loc[keys], sides.stats_c.loc[keys], n, n)

    def decide(m: RowModel) -> Decision:
        return decide_rows(m, math.log1p(threshold), confidence, sign=sign, shift_reading="real")

    changes, shifts = sides.judge(model, decide, sign)
    return Comparison(
        metric=metric,
        threshold=threshold,
        confidence=confidence,
        changes=changes,
        shifts=shifts,
        environment=environment_differences(
            env_meta(rs.meta, baseline_env), env_meta(rs.meta, candidate_env)
        ),
        notes=notes,
        round_spread=spreads,
        design="interleaved",
        envs=(baseline_env, candidate_env),
    )
