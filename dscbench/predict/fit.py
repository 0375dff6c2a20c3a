"""The candidate models and the cross-validation that chooses between them (scikit-learn;
``pip install 'dscbench[predict]'``). Every model predicts the log of the latency from
``features.names(variant)``, so its errors are ratios, as latencies are compared.

- ``loglinear``: ordinary least squares on the log features: a power law in MACs and bytes
  (the roofline's two terms, each with its fitted exponent) with corrections by channels,
  positions, kernel and stride. Smooth; extrapolates as a power law.
- ``trees``: gradient-boosted regression trees (``HistGradientBoostingRegressor``): steps where
  a library switches kernels (oneDNN's depthwise or GEMM paths, torch's slow paths), which a
  power law cannot follow; flat outside the measured range.
- ``loglinear+trees``: the power law, then trees fitted to its residuals: the steps around a
  trend that still extrapolates.

The choice: ``FOLDS``-fold cross-validation over the measured layers (shuffled, seeded), the
model with the smallest mean absolute log error on the held-out layers; the shares of held-out
layers within 10% and 15% are reported with it (nn-Meter's measure)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from dscbench.errors import DscbenchError

METHODS = ("loglinear", "trees", "loglinear+trees")
FOLDS = 5
SEED = 0
MIN_LAYERS = 12  # measured layers per variant, at least: fewer cannot be cross-validated
TREE_PARAMS = {
    "max_iter": 300,
    "learning_rate": 0.05,
    "max_leaf_nodes": 15,
    "min_samples_leaf": 3,
    "l2_regularization": 1.0,
    "random_state": SEED,
}


class PredictError(DscbenchError):
    """A predictor that cannot be fitted or applied (too few layers, another machine)."""


def sklearn() -> None:
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise PredictError(
            "dscbench predict needs scikit-learn: pip install 'dscbench[predict]'"
        ) from None


Predictor = Callable[[np.ndarray], np.ndarray]  # features -> log seconds


def fitted(method: str, x: np.ndarray, y: np.ndarray) -> Predictor:
    """``method`` fitted on features ``x`` and log latencies ``y``."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    if method == "loglinear":
        return LinearRegression().fit(x, y).predict
    if method == "trees":
        return HistGradientBoostingRegressor(**TREE_PARAMS).fit(x, y).predict
    if method == "loglinear+trees":
        trend = LinearRegression().fit(x, y)
        steps = HistGradientBoostingRegressor(**TREE_PARAMS).fit(x, y - trend.predict(x))
        return lambda z: trend.predict(z) + steps.predict(z)
    raise ValueError(f"unknown method {method!r}")


@dataclass(frozen=True)
class Score:
    """Held-out errors of one method: mean |log(predicted / measured)|, shares within 10% and
    15%, over ``n`` layers."""

    mean_abs_log_error: float
    within_10: float
    within_15: float
    n: int

    def to_json(self) -> dict[str, float]:
        return asdict(self)


def score(predicted_log: np.ndarray, measured_log: np.ndarray) -> Score:
    ratio = np.exp(predicted_log - measured_log)
    error = np.abs(ratio - 1)
    return Score(
        float(np.mean(np.abs(predicted_log - measured_log))),
        float(np.mean(error <= 0.10)),
        float(np.mean(error <= 0.15)),
        len(ratio),
    )


def cross_validate(x: np.ndarray, y: np.ndarray) -> dict[str, Score]:
    """Each method's held-out score over ``FOLDS`` folds."""
    from sklearn.model_selection import KFold

    folds = list(KFold(FOLDS, shuffle=True, random_state=SEED).split(x))
    scores = {}
    for method in METHODS:
        held_out = np.empty_like(y)
        for train, test in folds:
            held_out[test] = fitted(method, x[train], y[train])(x[test])
        scores[method] = score(held_out, y)
    return scores


def choose(scores: dict[str, Score]) -> str:
    return min(scores, key=lambda m: (scores[m].mean_abs_log_error, METHODS.index(m)))


def check_enough(n: int, what: str) -> None:
    if n < MIN_LAYERS:
        raise PredictError(
            f"{what}: {n} measured layers; a predictor needs at least {MIN_LAYERS} to fit and "
            "cross-validate (sweep more shapes)"
        )


def log_seconds(seconds: np.ndarray) -> np.ndarray:
    values = np.asarray(seconds, dtype=float)
    if not np.all(np.isfinite(values) & (values > 0)):
        raise ValueError("latencies must be positive and finite")
    return np.log(values)


def exp(values: np.ndarray) -> list[float]:
    return [math.exp(float(v)) for v in values]
