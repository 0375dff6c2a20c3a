"""The fixed training recipe of ``dscbench accuracy``, deterministic per seed on the CPU.

Recipe (``RECIPE``): Adam (learning rate 1e-3, torch's other defaults), no weight decay, no
learning-rate schedule, mini-batches of 32 in an order drawn from the seed each epoch (a last
batch of one sample is skipped: batch norm cannot train on it), cross-entropy, no
augmentation, 20 epochs (``--epochs``); the model from the last epoch is tested (no early
stopping, no model selection on the test split). A seed fixes the weights
(both twins are built under it, as a run builds them), the batch order and any dropout, and
``torch.use_deterministic_algorithms`` is on while training (warn-only), so the same seed,
data, thread count and torch build give the same accuracy to the last digit.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from dscbench.accuracy.data import Dataset
from dscbench.errors import DataError

EVAL_BATCH = 256


@dataclass(frozen=True)
class Recipe:
    optimizer: str = "adam"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 20
    schedule: str = "constant"
    loss: str = "cross-entropy"
    augmentation: str = "none"
    selection: str = "the last epoch's model"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


RECIPE = Recipe()


@dataclass
class Trained:
    """One twin trained from one seed."""

    test_accuracy: float
    test_loss: float
    train_loss: float  # the last epoch's mean
    epoch_times_s: list[float] = field(default_factory=list)

    @property
    def train_time_s(self) -> float:
        return float(sum(self.epoch_times_s))

    @property
    def epoch_time_s(self) -> float:
        """The median epoch's wall time."""
        return float(np.median(self.epoch_times_s)) if self.epoch_times_s else math.nan


@contextlib.contextmanager
def deterministic() -> Iterator[None]:
    """Deterministic algorithms on (a warning, not an error, for an op of a user's model that
    has none)."""
    was = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was, warn_only=warn_only)


def check_fits(model: nn.Module, data: Dataset, what: str) -> None:
    """A DataError unless ``model`` maps a batch of the data to (batch, K) logits with K at
    least the data's classes."""
    with torch.inference_mode():
        model.eval()
        try:
            out = model(torch.from_numpy(data.x_train[:2]))
        except Exception as exc:  # the model's forward on the data: its problem, in one line
            raise DataError(
                f"{what}: does not take the data's {data.shape} inputs ({str(exc).splitlines()[0]})"
            ) from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise DataError(
            f"{what}: gives {shape} for a batch of 2; training needs (batch, classes) logits"
        )
    if out.shape[1] < data.classes:
        raise DataError(
            f"{what}: gives {out.shape[1]} outputs, but the data has "
            f"{data.classes} classes (labels up to {data.classes - 1})"
        )


def train(
    model: nn.Module,
    data: Dataset,
    seed: int,
    recipe: Recipe = RECIPE,
    clock: Callable[[], float] = time.perf_counter,
) -> Trained:
    """Train ``model`` (built under ``seed`` by the caller) by ``recipe``; test it."""
    x, y = torch.from_numpy(data.x_train), torch.from_numpy(data.y_train)
    order = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # dropout draws from the seed too, nothing else
        torch.manual_seed(seed)
        return _train(model, data, x, y, order, recipe, clock)


def _train(
    model: nn.Module,
    data: Dataset,
    x: torch.Tensor,
    y: torch.Tensor,
    order: torch.Generator,
    recipe: Recipe,
    clock: Callable[[], float],
) -> Trained:
    optimizer = torch.optim.Adam(
        model.parameters(), lr=recipe.learning_rate, weight_decay=recipe.weight_decay
    )
    times, last_loss = [], math.nan
    with deterministic():
        for _ in range(recipe.epochs):
            model.train()
            start, total, seen = clock(), 0.0, 0
            for batch in torch.randperm(len(x), generator=order).split(recipe.batch_size):
                if len(batch) == 1 and len(x) > 1:
                    continue  # a last batch of one: batch norm cannot train on it
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x[batch]), y[batch])
                loss.backward()
                optimizer.step()
                total, seen = total + float(loss.detach()) * len(batch), seen + len(batch)
            times.append(clock() - start)
            last_loss = total / seen
        accuracy, test_loss = evaluate(model, data)
    return Trained(accuracy, test_loss, last_loss, times)


def evaluate(model: nn.Module, data: Dataset) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on the test split, in eval mode."""
    model.eval()
    x, y = torch.from_numpy(data.x_test), torch.from_numpy(data.y_test)
    right, loss = 0, 0.0
    with torch.inference_mode():
        for start in range(0, len(x), EVAL_BATCH):
            logits = model(x[start : start + EVAL_BATCH])
            labels = y[start : start + EVAL_BATCH]
            right += int((logits.argmax(dim=1) == labels).sum())
            loss += float(F.cross_entropy(logits, labels, reduction="sum"))
    return right / len(x), loss / len(x)
