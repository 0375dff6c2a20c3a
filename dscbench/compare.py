"""Compare two runs: per-row verdicts with intervals that account for run-to-run noise.

Data only; nothing here prints. The model (README "Comparing runs" has the prose version):

- **Unit of replication: the round.** Within a run, samples of one row are taken minutes apart
  in the same machine state and are far more alike than two runs are, so a confidence interval
  built from samples is overconfident. Rounds revisit every configuration in a fresh order, so
  the spread of a row's per-round medians shows how much the machine wandered during the run.
  The part of a round's deviation that all rows share (a slow phase of the machine) is removed
  first (``remove_round_effects``). Each row's value is the trimmed geometric mean of its
  round medians (10% from each end: one round of ten; Yuen), so one round spoiled by a slow
  phase neither moves it nor swamps its spread; ``d`` = log(candidate) - log(baseline) in the
  "cost" direction (latency, or 1/speedup), with a Yuen-Welch standard error from both sides'
  winsorized variances.
- **Run-to-run noise between rows.** Two runs also differ in ways no single run shows. That
  spread, after removing the shift all rows share, is estimated across the rows of a backend
  (robustly: MAD of ``d``, minus the within-run part) and added to every row's variance, like
  the between-study variance of a random-effects meta-analysis.
- **Machine speed.** The shift all rows share, the median of ``d`` (with its order-statistic
  interval over rows), is what a faster or slower machine looks like, and also what a
  regression that hits every configuration looks like. When it is at least half the threshold
  and its interval excludes zero, a row is called slower or faster only if it moved beyond the
  common shift (judged at three standard errors: rows respond unevenly to a machine that
  changed speed); rows that merely moved with the run become ``inconclusive``, and the shift
  is reported.
- **Verdicts** at threshold t, on the interval of ``d``: ``slower`` if all of it lies above
  log(1 + t), ``faster`` if below -log(1 + t), ``same`` if inside (-log(1 + t), log(1 + t)),
  else ``inconclusive``. Rows present on one side only are ``added``/``removed``; rows that did
  not finish ``ok`` on either side are ``failed``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dscbench.errors import DscbenchError
from dscbench.results import LABEL_COLUMNS

if TYPE_CHECKING:
    from dscbench.results import ResultSet

METRICS = ("latency", "speedup")
VERDICTS = ("slower", "faster", "same", "inconclusive", "added", "removed", "failed")
DEFAULT_THRESHOLD = 0.05
DEFAULT_CONFIDENCE = 0.95
MIN_ROWS_FOR_SPREAD = 5  # fewer rows in a backend: no run-to-run spread or shift estimate
MAD_TO_SD = 1.4826
SHIFTED_QUANTILE = 3.0  # the interval quantile for "beyond the whole run's shift"
# A run whose rows' round values spread more than this (median over rows, log scale) was
# disturbed: on the development VM steady runs measured 0.7-2.2%, disturbed ones 5-9%.
DISTURBED_ROUND_SPREAD = 0.03
KEY = ["config_id", "backend", "variant"]


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

    @property
    def newly_failing(self) -> bool:
        """Ok in the baseline, failing in the candidate: counted as a regression."""
        return self.failed_in == "candidate"

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.config_id, self.backend, self.variant)


@dataclass(frozen=True)
class Shift:
    """The shift all rows of one backend share: candidate / baseline of the metric."""

    backend: str
    ratio: float
    ci_low: float
    ci_high: float
    rows: int
    detected: bool


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
    round_spread: dict[str, float] = field(default_factory=dict)  # per side, see round_spread()

    def count(self, verdict: str) -> int:
        return sum(c.verdict == verdict for c in self.changes)

    @property
    def regressions(self) -> list[Change]:
        """Rows that got worse: ``slower``, and rows that were ok in the baseline but fail in
        the candidate (a configuration that stops working is the worst regression)."""
        return [c for c in self.changes if c.verdict == "slower" or c.newly_failing]

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


# ---------------------------------------------------------------------------------------------
# Environment
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
    "environment.dscbench",
    "environment.torch.num_threads",
    "environment.torch.mkldnn_enabled",
    "environment.cpu_governor",
)


def environment_differences(
    base: dict[str, Any], cand: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """(what, baseline value, candidate value) for every recorded fact that differs: hardware,
    threads, library versions, backend devices and versions."""
    flat_b: dict[str, str] = {}
    flat_c: dict[str, str] = {}
    for meta, flat in ((base, flat_b), (cand, flat_c)):
        _flatten("", {"environment": meta.get("environment", {})}, flat)
        _flatten("", {"backends": meta.get("backends", {})}, flat)
    keys = [k for k in ENVIRONMENT_KEYS if k in flat_b or k in flat_c]
    keys += sorted(k for k in {*flat_b, *flat_c} if k.startswith("environment.libraries."))
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


# ---------------------------------------------------------------------------------------------
# Per-row values from the raw samples
# ---------------------------------------------------------------------------------------------


def _round_values(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One row per (config_id, backend, variant, round) with ``cost`` = log of the round's
    median latency, or minus the log of the round's median speedup (std/sep per pair)."""
    if metric == "latency":
        per_round = samples.groupby([*KEY, "round"], sort=False).time_s.median()
        return np.log(per_round).rename("cost").reset_index()
    pairs = samples.pivot_table(
        index=["config_id", "backend", "round", "pair"],
        columns="variant",
        values="time_s",
        aggfunc="first",
    ).dropna()
    ratio = (pairs["standard"] / pairs["separable"]).rename("speedup")
    per_round = ratio.groupby(level=["config_id", "backend", "round"], sort=False).median()
    out = (-np.log(per_round)).rename("cost").reset_index()
    out["variant"] = "pair"
    return out


def remove_round_effects(values: pd.DataFrame) -> pd.DataFrame:
    """Subtract from every round value the part all rows of its backend share in that round.

    A machine that runs 15% slow for one round slows every row visited in it; in log space
    that is an additive round effect, estimated as the median over rows of (round value - the
    row's mean). Backends with fewer than MIN_ROWS_FOR_SPREAD rows are left as they are. What
    remains is each row's own round-to-round noise, which is what its interval should reflect.
    """
    values = values.copy()
    row_mean = values.groupby(KEY, sort=False).cost.transform("mean")
    values["residual"] = values.cost - row_mean
    rows_per_backend = values.groupby("backend").config_id.transform("size") / values.groupby(
        "backend"
    )["round"].transform("nunique")
    effect = values.groupby(["backend", "round"]).residual.transform("median")
    effect = effect.where(rows_per_backend >= MIN_ROWS_FOR_SPREAD, 0.0)
    values["cost"] = values.cost - effect
    return values.drop(columns="residual")


TRIM = 0.1  # share of rounds trimmed from each end: none below 10 rounds, one of 10, two of 20


def trimmed_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Yuen's trimmed mean (TRIM from each end) of each row of ``x`` (rows x rounds), the
    squared standard error from the winsorized variance, and its degrees of freedom (h - 1,
    h = rounds kept). With fewer than 10 rounds nothing is trimmed: a plain mean and t.

    One round spoiled by a slow phase of the machine moves a plain mean by 1/n of its damage
    and can inflate the standard deviation tenfold; trimming keeps both honest about the rounds
    that agree, and the winsorized variance still counts how far the extremes were pushed in.
    """
    x = np.sort(x, axis=1)
    n = x.shape[1]
    g = int(TRIM * n)
    h = n - 2 * g
    mean = x[:, g : n - g].mean(axis=1)
    if h < 2:
        nan = np.full(len(x), np.nan)
        return mean, nan, np.zeros(len(x))
    w = x.copy()
    w[:, :g] = x[:, [g]]
    w[:, n - g :] = x[:, [n - g - 1]]
    se2 = (n - 1) * w.var(axis=1, ddof=1) / (h * (h - 1))
    return mean, se2, np.full(len(x), h - 1.0)


def row_stats(samples: pd.DataFrame, metric: str) -> pd.DataFrame:
    """Per key: trimmed mean of the round costs (round effects removed), its squared standard
    error and degrees of freedom, and the number of rounds."""
    values = remove_round_effects(_round_values(samples, metric))
    lists = values.groupby(KEY, sort=False).cost.agg(list)
    sizes = lists.map(len).to_numpy()
    out = pd.DataFrame(index=lists.index, columns=["mean", "se2", "df", "n"], dtype=float)
    for n in np.unique(sizes):
        pick = sizes == n
        mean, se2, df = trimmed_stats(np.array(lists[pick].tolist(), dtype=float))
        out.loc[pick, "mean"], out.loc[pick, "se2"], out.loc[pick, "df"] = mean, se2, df
        out.loc[pick, "n"] = n
    return out


def run_round_spread(samples: pd.DataFrame) -> float:
    """round_spread() of a run's latency samples: how much its rounds disagree."""
    return round_spread(row_stats(samples, "latency")) if len(samples) else math.nan


def round_spread(table: pd.DataFrame) -> float:
    """How much a run's round values disagree: the median over rows of the standard deviation
    of a row's round values (log scale, round effects removed). NaN without two rounds."""
    sd = np.sqrt(table["se2"] * table["n"]).to_numpy(dtype=float)
    sd = sd[np.isfinite(sd)]
    return float(np.median(sd)) if sd.size else math.nan


ROW_FIELDS = ["status", "error", *LABEL_COLUMNS]


def _rows(results: pd.DataFrame, metric: str) -> dict[tuple, dict[str, Any]]:
    """key -> the fields of the result row the metric compares (status, error, label)."""
    if metric == "latency":
        rows = results[[*KEY, *ROW_FIELDS]]
    else:
        rows = results.loc[results.variant == "separable", [*KEY, *ROW_FIELDS]].copy()
        rows["variant"] = "pair"
    keys = zip(rows.config_id, rows.backend, rows.variant, strict=True)
    return dict(zip(keys, rows[ROW_FIELDS].to_dict("records"), strict=True))


def _label(row: dict[str, Any]) -> str:
    h, w = row["height"], row["width"]
    size = f"{h}" if h == w else f"{h}x{w}"
    text = (
        f"{row['batch']}x{row['in_channels']}->{row['out_channels']} @{size} "
        f"k{row['kernel']}s{row['stride']} {row['dtype']} t{row['threads']}"
    )
    if row["memory_format"] != "contiguous":
        text += f" {row['memory_format']}"
    return text


# ---------------------------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------------------------


def _classify(low: np.ndarray, high: np.ndarray, bound: float) -> np.ndarray:
    verdict = np.full(low.shape, "inconclusive", dtype=object)
    verdict[low > bound] = "slower"
    verdict[high < -bound] = "faster"
    verdict[(low > -bound) & (high < bound)] = "same"
    return verdict


def _shift(
    backend: str, d: np.ndarray, bound: float, confidence: float, sign: float
) -> tuple[Shift, float, float]:
    """The median of the rows' log-ratios (cost direction) with its distribution-free
    (order-statistic) interval, scipy's ``quantile_test``. Returns the Shift in the metric's
    direction, and the center and interval half-width in cost space."""
    from scipy import stats

    center = float(np.median(d))
    low = high = center
    if len(d) >= MIN_ROWS_FOR_SPREAD and np.ptp(d) > 0:
        ci = stats.quantile_test(d, q=center, p=0.5).confidence_interval(confidence)
        low, high = float(ci.low), float(ci.high)
    detected = len(d) >= MIN_ROWS_FOR_SPREAD and abs(center) >= bound / 2 and (low > 0 or high < 0)
    shown = sorted(math.exp(sign * x) for x in (low, high))
    shift = Shift(backend, math.exp(sign * center), shown[0], shown[1], len(d), detected)
    return shift, center, (high - low) / 2


def compare_sets(
    base: ResultSet,
    cand: ResultSet,
    *,
    metric: str = "latency",
    threshold: float = DEFAULT_THRESHOLD,
    confidence: float = DEFAULT_CONFIDENCE,
    allow_different_hardware: bool = False,
) -> Comparison:
    """Match the rows of two runs and decide a verdict for each (model in the module doc)."""
    from scipy import stats

    if metric not in METRICS:
        raise CompareError(f"--metric {metric!r}: not one of {', '.join(METRICS)}")
    if not (0 < threshold < 1):
        raise CompareError(f"--threshold {threshold!r}: must be a fraction between 0 and 1")
    if not (0.5 <= confidence < 1):
        raise CompareError(f"--confidence {confidence!r}: must be between 0.5 and 1")
    hardware = hardware_differences(base.meta, cand.meta)
    if hardware and not allow_different_hardware:
        raise CompareError(
            "the runs were measured on different hardware ("
            + "; ".join(hardware)
            + "); pass --allow-different-hardware to compare anyway"
        )
    for name, rs in (("baseline", base), ("candidate", cand)):
        ok = rs.results[rs.results.status == "ok"]
        if len(ok) and rs.samples.empty:
            raise CompareError(f"{name}: no raw samples (samples.parquet) beside the results")

    rows_b, rows_c = _rows(base.results, metric), _rows(cand.results, metric)
    stats_b, stats_c = row_stats(base.samples, metric), row_stats(cand.samples, metric)
    counts = count_changes(base.results, cand.results, metric)
    keys = list(dict.fromkeys([*rows_b, *rows_c]))
    bound = math.log1p(threshold)
    alpha = 1 - confidence
    sign = 1.0 if metric == "latency" else -1.0  # cost = log latency, or -log speedup

    typical_b = _typical(stats_b, sign, confidence)
    typical_c = _typical(stats_c, sign, confidence)
    changes: dict[tuple, Change] = {}
    labels: dict[tuple, str] = {}
    comparable = []
    for key in keys:
        b, c = rows_b.get(key), rows_c.get(key)
        labels[key] = _label(c if c is not None else b)
        common = dict(config_id=key[0], backend=key[1], variant=key[2], label=labels[key])
        if c is None or b is None:
            if c is None:
                value, _ = typical_b.get(key, (math.nan, math.nan))
                changes[key] = Change(**common, verdict="removed", baseline=value)
            else:
                value, spread = typical_c.get(key, (math.nan, math.nan))
                changes[key] = Change(**common, verdict="added", candidate=value, spread=spread)
            continue
        if b["status"] != "ok" or c["status"] != "ok":
            if b["status"] == "ok":
                side = "candidate"
                note = f"candidate {c['status']}: {_own_error(c['error'], key[2])}".rstrip(": ")
            elif c["status"] == "ok":
                side = "baseline"
                note = f"baseline {b['status']}: {_own_error(b['error'], key[2])}".rstrip(": ")
            else:
                side = "both"
                note = f"both failed: baseline {b['status']}, candidate {c['status']}"
            changes[key] = Change(
                **common, verdict="failed", note=_join(note, counts.get(key)), failed_in=side
            )
            continue
        if key not in stats_b.index or key not in stats_c.index:
            side = "baseline" if key not in stats_b.index else "candidate"
            note = _join(f"{side} has no samples", counts.get(key))
            changes[key] = Change(**common, verdict="failed", note=note)
            continue
        comparable.append(key)

    notes: list[str] = []
    spreads = {"baseline": round_spread(stats_b), "candidate": round_spread(stats_c)}
    for side, spread in spreads.items():
        if spread > DISTURBED_ROUND_SPREAD:
            notes.append(
                f"{side}: its rounds disagree by {spread:.1%} (median over rows; steady runs stay "
                f"under {DISTURBED_ROUND_SPREAD:.0%}), so the machine was busy during that run "
                "and its rows will mostly be inconclusive; rerun it"
            )
    shifts: list[Shift] = []
    if comparable:
        sb, sc = stats_b.loc[comparable], stats_c.loc[comparable]
        d = (sc["mean"] - sb["mean"]).to_numpy()
        vb, vc = sb["se2"].to_numpy(), sc["se2"].to_numpy()
        v = vb + vc
        nb, nc = sb["n"].to_numpy().astype(int), sc["n"].to_numpy().astype(int)
        dfb, dfc = sb["df"].to_numpy(), sc["df"].to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            df = v**2 / (vb**2 / dfb + vc**2 / dfc)  # Welch-Satterthwaite (Yuen)
        df = np.where(np.isfinite(df) & (df > 0), df, np.maximum(np.minimum(dfb, dfc), 1))
        extra = np.zeros_like(d)  # run-to-run variance, per backend
        excess_center = np.zeros_like(d)
        shift_var = np.zeros_like(d)
        backends = np.array([k[1] for k in comparable])
        for backend in dict.fromkeys(backends):
            mine = backends == backend
            shift, center, half_width = _shift(str(backend), d[mine], bound, confidence, sign)
            shifts.append(shift)
            if mine.sum() >= MIN_ROWS_FOR_SPREAD:
                resid = d[mine] - np.median(d[mine])
                spread = MAD_TO_SD * np.median(np.abs(resid))
                finite = v[mine][np.isfinite(v[mine])]
                within = float(np.median(finite)) if finite.size else 0.0
                extra[mine] = max(0.0, spread**2 - within)
            else:
                notes.append(
                    f"{backend}: fewer than {MIN_ROWS_FOR_SPREAD} comparable rows, so run-to-run "
                    "noise cannot be estimated; intervals cover round-to-round noise only"
                )
            if shift.detected:
                excess_center[mine] = center
                z = stats.norm.ppf(1 - alpha / 2)
                shift_var[mine] = (half_width / z) ** 2
        few = (nb < 2) | (nc < 2)
        q = stats.t.ppf(1 - alpha / 2, df)
        half = q * np.sqrt(np.where(few, np.nan, v + extra))
        raw = _classify(d - half, d + half, bound)
        # When the machine itself moved, rows respond to it unevenly (memory-bound rows suffer
        # more from a noisy neighbour), so a row is called slower beyond the shift only at
        # three standard errors.
        q_excess = np.maximum(q, SHIFTED_QUANTILE)
        half_excess = q_excess * np.sqrt(np.where(few, np.nan, v + extra + shift_var))
        e = d - excess_center
        beyond = _classify(e - half_excess, e + half_excess, bound)
        detected = excess_center != 0
        mean_b, mean_c = sb["mean"].to_numpy(), sc["mean"].to_numpy()
        for j, key in enumerate(comparable):
            verdict, note = raw[j], ""
            if few[j]:
                verdict, note = (
                    "inconclusive",
                    "fewer than 2 rounds on a side: rerun with --rounds 3 or more",
                )
            elif detected[j] and verdict in ("slower", "faster"):
                if beyond[j] != verdict:
                    verdict = "inconclusive"
                    note = "moved with the whole run (see the machine shift)"
                else:
                    note = "beyond the whole run's shift"
            ratio = math.exp(sign * d[j])
            lo, hi = sorted((math.exp(sign * (d[j] - half[j])), math.exp(sign * (d[j] + half[j]))))
            changes[key] = Change(
                config_id=key[0],
                backend=key[1],
                variant=key[2],
                label=labels[key],
                verdict=verdict,
                baseline=math.exp(sign * mean_b[j]),
                candidate=math.exp(sign * mean_c[j]),
                ratio=ratio,
                ci_low=lo,
                ci_high=hi,
                rounds=(int(nb[j]), int(nc[j])),
                note=_join(note, counts.get(key)),
                spread=typical_c[key][1],
            )
    changes_list = [changes[k] for k in keys]
    return Comparison(
        metric=metric,
        threshold=threshold,
        confidence=confidence,
        changes=changes_list,
        shifts=shifts,
        environment=environment_differences(base.meta, cand.meta),
        hardware_differs=bool(hardware),
        notes=notes,
        round_spread=spreads,
    )


def _typical(table: pd.DataFrame, sign: float, confidence: float) -> dict[tuple, tuple]:
    """key -> (geometric mean of the round values, relative half-width of its interval)."""
    from scipy import stats

    df = table["df"].to_numpy()
    with np.errstate(invalid="ignore"):
        half = stats.t.ppf(0.5 + confidence / 2, np.maximum(df, 1)) * np.sqrt(table["se2"])
    spread = np.where(df >= 1, np.expm1(half), np.nan)
    values = np.exp(sign * table["mean"].to_numpy())
    return dict(zip(table.index, zip(values, spread, strict=True), strict=True))


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
    columns = ["config_id", "backend", "variant", "params", "macs"]
    both = base[columns].merge(
        cand[columns], on=["config_id", "backend", "variant"], suffixes=("_b", "_c")
    )
    changed = both[(both.params_b != both.params_c) | (both.macs_b != both.macs_c)]
    out: dict[tuple, list[str]] = {}
    for row in changed.itertuples(index=False):
        parts = [
            f"{row.variant} {name} {getattr(row, name + '_b')} -> {getattr(row, name + '_c')}"
            for name in ("params", "macs")
            if getattr(row, name + "_b") != getattr(row, name + "_c")
        ]
        variant = "pair" if metric == "speedup" else row.variant
        out.setdefault((row.config_id, row.backend, variant), []).extend(parts)
    return {key: "counts changed: " + ", ".join(parts) for key, parts in out.items()}
