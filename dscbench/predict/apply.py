"""A run's layer rows fitted (``fit_run``), a network predicted from the fit
(``predict_network``), and what a second run measured put next to it (``measured``)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dscbench.predict import features, fit
from dscbench.predict.network import Layer, conv_layers, other_ops
from dscbench.spec import ModelSpec

VARIANTS = ("standard", "separable")


@dataclass(frozen=True)
class Group:
    """What one predictor covers: a backend at a thread count and dtype (in one environment
    of a run that interleaved several)."""

    backend: str
    threads: int
    dtype: str
    env: str = ""

    def describe(self) -> str:
        env = f", env {self.env}" if self.env else ""
        return f"{self.backend}, {self.threads} thread(s), {self.dtype}{env}"


def groups_in(results: pd.DataFrame) -> list[str]:
    """The groups a run has layer rows for, described (for a message)."""
    r = results[(results["status"] == "ok") & (results["model"].fillna("") == "")]
    keys = r[["backend", "threads", "dtype", "env"]].drop_duplicates().itertuples(index=False)
    return [Group(b, int(t), d, e).describe() for b, t, d, e in keys]


def env_of(results: pd.DataFrame, backend: str, asked: str | None) -> str:
    """The environment to fit: ``asked``, or the run's only one for ``backend``."""
    envs = sorted(set(results.loc[results["backend"] == backend, "env"].fillna("")))
    if asked is not None:
        if asked not in envs:
            raise fit.PredictError(
                f"--env {asked}: not in this run (it has {', '.join(map(repr, envs)) or 'none'})"
            )
        return asked
    if len(envs) > 1:
        raise fit.PredictError(
            f"this run interleaved environments {', '.join(envs)}; choose one with --env"
        )
    return envs[0] if envs else ""


@dataclass
class Fitted:
    """One variant's predictor: the method chosen, every method's held-out score."""

    variant: str
    method: str
    scores: dict[str, fit.Score]
    n: int
    digest: str
    predict: Any = field(repr=False, default=None)  # features -> log seconds

    def seconds(self, specs: list[Any]) -> list[float]:
        if not specs:
            return []
        return fit.exp(self.predict(features.matrix(specs, self.variant)))


def layer_rows(results: pd.DataFrame, group: Group) -> pd.DataFrame:
    """The rows a predictor of ``group`` learns from: measured 2-D inference layers (warm,
    contiguous, no dilation, multiplier 1, no bias), one row per configuration and variant."""
    r = results
    keep = (
        (r["status"] == "ok")
        & (r["model"].fillna("") == "")
        & (r["dims"] == 2)
        & (r["mode"] == "inference")
        & (r["cache"] == "warm")
        & (r["memory_format"] == "contiguous")
        & (r["dilation"] == 1)
        & (r["depth_multiplier"] == 1)
        & (~r["bias"].astype(bool))
        & (r["backend"] == group.backend)
        & (r["threads"] == group.threads)
        & (r["dtype"] == group.dtype)
        & (r["env"].fillna("") == group.env)
        & (r["latency_median_s"] > 0)
    )
    return r[keep]


def digest(rows: pd.DataFrame) -> str:
    """Which measurements a fit saw: a hash of the rows' ids and latencies."""
    text = rows[["config_id", "variant", "latency_median_s"]].to_csv(index=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fit_run(
    results: pd.DataFrame, group: Group, method: str = "auto", holdout: frozenset[str] = frozenset()
) -> dict[str, Fitted]:
    """Per variant: cross-validate every method, keep the best (or ``method``), fit it on
    every row but those of the configurations in ``holdout``."""
    fit.sklearn()
    out = {}
    for variant in VARIANTS:
        rows = layer_rows(results, group)
        rows = rows[(rows["variant"] == variant) & ~rows["config_id"].isin(holdout)]
        if len(rows) < fit.MIN_LAYERS:
            have = "; ".join(groups_in(results)) or "none"
            fit.check_enough(
                len(rows), f"{group.describe()}, {variant} (this run has layer rows for: {have})"
            )
        specs = [features.spec_of(r) for r in rows.to_dict("records")]
        x = features.matrix(specs, variant)
        y = fit.log_seconds(rows["latency_median_s"].to_numpy())
        scores = fit.cross_validate(x, y)
        pick = method if method != "auto" else fit.choose(scores)
        out[variant] = Fitted(
            variant, pick, scores, len(rows), digest(rows), fit.fitted(pick, x, y)
        )
    return out


@dataclass(frozen=True)
class Ladder:
    """Traffic per second by array size (bytes, ascending; median of each size's repeats),
    interpolated in log-log; beyond the largest size the largest's rate, below the smallest the
    smallest's time (a call that small is its fixed cost); one rate alone: it at every size."""

    sizes: tuple[float, ...]
    rates: tuple[float, ...]

    def seconds(self, traffic: float) -> float:
        if len(self.rates) == 1:
            return traffic / self.rates[0]
        size = traffic / 2  # a copy's or a module's traffic is twice its array
        if size < self.sizes[0]:
            return self.seconds(2 * self.sizes[0])
        rate = math.exp(np.interp(math.log(size), np.log(self.sizes), np.log(self.rates)))
        return traffic / rate

    @classmethod
    def of(cls, calibrated: dict[str, Any]) -> Ladder:
        from dscbench.calibrate import Rate

        points = sorted(
            (float(k), Rate(list(v["per_repeat"])).median) for k, v in calibrated.items()
        )
        return cls(tuple(p[0] for p in points), tuple(p[1] for p in points))


@dataclass(frozen=True)
class OpCost:
    """Seconds of a network's other ops on the fit run's machine, by the ladder each op is costed
    by (``network.OTHER_KINDS``): a batch norm or an activation by the calibration's module
    ladder (the module timed at that size), anything else by its copy ladder; a kind the
    calibration has no ladder for falls back to copies; without a copy ladder (an older
    calibration) the DRAM copy bandwidth at every size; without a calibration, unknown (NaN)."""

    ladders: tuple[tuple[str, Ladder], ...] = ()  # kind -> ladder; "copy" always first
    source: str = "no calibration"

    def seconds(self, traffic: float, kind: str = "copy") -> float:
        ladders = dict(self.ladders)
        ladder = ladders.get(kind) or ladders.get("copy")
        return ladder.seconds(traffic) if ladder else math.nan


MODULE_WORDS = {"batchnorm": "batch norm", "relu": "activation"}
EAGER = ("torch-cpu", "torch-cuda")  # backends that call every module as written, fusing none


def op_cost(meta: dict[str, Any], group: Group) -> OpCost:
    """The fit run's calibration of ``group``'s device (at its threads on the CPU), as an
    OpCost: module ladders for an eager backend, copies alone for one that may fuse batch norms
    and activations into the convs (said in the source, as a float32 ladder for another dtype)."""
    from dscbench.backends import REGISTRY
    from dscbench.calibrate import Rate

    info = REGISTRY.get(group.backend)
    device = info.device if info else "cpu"
    threads = 0 if device == "cuda" else group.threads
    eager = group.backend in EAGER
    for c in meta.get("calibration") or []:
        if c.get("device") != device or int(c.get("threads") or 0) != threads:
            continue
        copies = c.get("copy_ladder") or {}
        modules = {k: v for k, v in (c.get("module_ladder") or {}).items() if v and eager}
        if copies:
            ladders = [("copy", Ladder.of(copies))]
            ladders += [(kind, Ladder.of(sizes)) for kind, sizes in sorted(modules.items())]
            timed = " and ".join(MODULE_WORDS[k] for k in sorted(modules) if k in MODULE_WORDS)
            if timed:
                sizes = max(len(ladder.sizes) for _, ladder in ladders[1:])
                source = f"{timed} modules timed at {sizes} sizes, the rest as copies"
                if group.dtype != "float32":
                    source += f" (timed in float32; these layers are {group.dtype})"
            else:
                source = f"copies of {len(ladders[0][1].sizes)} sizes" + (
                    " (the calibration has no module ladder)"
                    if eager
                    else f" ({group.backend} may fuse batch norms and activations into the "
                    "convs: then copies overstate them)"
                )
            return OpCost(tuple(ladders), source + ", calibrated")
        rates = ((c.get("bandwidth") or {}).get("copy") or {}).get("per_repeat") or []
        if rates:
            ladder = Ladder((), (Rate(list(rates)).median,))
            return OpCost((("copy", ladder),), "DRAM copy bandwidth (no ladder)")
    return OpCost()


@dataclass
class Prediction:
    """A network's layers (per variant), their predicted seconds, the other ops' cost."""

    layers: dict[str, list[Layer]]
    seconds: dict[str, list[float]]
    other: dict[str, Any]  # OtherOps per variant
    other_seconds: dict[str, float]
    cost: OpCost

    def convs(self, variant: str) -> float:
        return float(sum(s for s in self.seconds[variant] if math.isfinite(s)))

    def total(self, variant: str) -> float:
        """The convs predicted and the other ops where they could be costed."""
        other = self.other_seconds[variant]
        return self.convs(variant) + (other if math.isfinite(other) else 0.0)

    def left_out(self, variant: str) -> list[str]:
        """What the total does not include, in words (empty: everything)."""
        out = [
            f"{layer.label()}: unsupported"
            for layer in self.layers[variant]
            if layer.kind == "unsupported"
        ]
        if not math.isfinite(self.other_seconds[variant]):
            out.append("other ops: the fit run has no calibration (run it with --calibrate)")
        return out


def layer_ids(spec: ModelSpec) -> frozenset[str]:
    """The configuration ids of a network's conv layers (both twins): what ``--holdout``
    leaves out of a fit."""
    return frozenset(
        layer.spec.config_id for v in VARIANTS for layer in conv_layers(spec, v) if layer.spec
    )


def predict_network(spec: ModelSpec, fits: dict[str, Fitted], cost: OpCost) -> Prediction:
    """Each conv layer by the predictor of its kind (a dense layer by the standard variant's,
    a depthwise + pointwise pair by the separable's), each other op by its ladder (OpCost)."""
    layers, seconds, other, other_s = {}, {}, {}, {}
    for variant in VARIANTS:
        found = conv_layers(spec, variant)
        values = [math.nan] * len(found)
        for kind in VARIANTS:
            at = [i for i, layer in enumerate(found) if layer.kind == kind]
            for i, s in zip(at, fits[kind].seconds([found[i].spec for i in at]), strict=True):
                values[i] = s
        layers[variant], seconds[variant] = found, values
        other[variant] = other_ops(spec, variant)
        other_s[variant] = float(sum(other[variant].seconds(cost).values()))
    return Prediction(layers, seconds, other, other_s, cost)


def measured_layers(results: pd.DataFrame, group: Group, layers: list[Layer]) -> list[float]:
    """What ``results`` measured for each layer, as its own variant (NaN where it did not)."""
    rows = layer_rows(results, group)
    by = {
        (c, v): t
        for c, v, t in rows[["config_id", "variant", "latency_median_s"]].itertuples(index=False)
    }
    return [
        by.get((layer.spec.config_id, layer.kind), math.nan) if layer.spec else math.nan
        for layer in layers
    ]


def measured_network(results: pd.DataFrame, spec: ModelSpec, group: Group, variant: str) -> float:
    r = results
    keep = (
        (r["status"] == "ok")
        & (r["config_id"] == spec.config_id)
        & (r["variant"] == variant)
        & (r["backend"] == group.backend)
    )
    found = r[keep]
    same_env = found[found["env"].fillna("") == group.env]
    found = same_env if len(same_env) else found
    return float(found["latency_median_s"].iloc[0]) if len(found) else math.nan


def hit_rates(predicted: list[float], measured: list[float]) -> dict[str, float]:
    pairs = [
        (p, m)
        for p, m in zip(predicted, measured, strict=True)
        if math.isfinite(p) and math.isfinite(m) and m > 0
    ]
    errors = np.array([abs(p / m - 1) for p, m in pairs])
    n = len(errors)
    return {
        "layers": n,
        "within_10": float(np.mean(errors <= 0.10)) if n else math.nan,
        "within_15": float(np.mean(errors <= 0.15)) if n else math.nan,
    }
