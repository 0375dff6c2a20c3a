"""One training step, the workload of ``--mode training``: forward, loss, backward, optimizer
step, gradients cleared (``zero_grad(set_to_none=True)``, as torch's optimizers default to).

- Loss: cross-entropy against fixed random labels where the output is (batch, classes), the
  mean squared error against a fixed random target otherwise (a single conv layer's output).
  Both are computed in float32 whatever the model's dtype.
- Optimizers: ``sgd`` is SGD with momentum 0.9 and learning rate 1e-3; ``adam`` is Adam with
  learning rate 1e-3 (torch's defaults otherwise). Small rates keep thousands of timed steps on
  one batch from diverging, which would time NaN arithmetic instead of training.
- The weights change with every step, as in real training. The parity check runs the eager
  forward in train mode (batch norm on batch statistics) at the initial weights
  (``Trainer.restore``), with dropout off (``no_dropout``) so that it is deterministic, against
  the float64 reference run the same way. A compiled training graph is timed but not checked
  on its own: its forward is the one the inference rows check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

LEARNING_RATE = 1e-3
MOMENTUM = 0.9


@contextlib.contextmanager
def no_dropout(module: nn.Module) -> Iterator[nn.Module]:
    """Dropout layers in eval mode (identity) for the duration; the rest of the module keeps its
    mode."""
    dropouts = [m for m in module.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    was = [m.training for m in dropouts]
    for m in dropouts:
        m.eval()
    try:
        yield module
    finally:
        for m, training in zip(dropouts, was, strict=True):
            m.train(training)


def make_optimizer(name: str, params: Any) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(params, lr=LEARNING_RATE)
    if name == "sgd":
        return torch.optim.SGD(params, lr=LEARNING_RATE, momentum=MOMENTUM)
    raise ValueError(f"unknown optimizer {name!r}")


class Trainer:
    """The training step of ``module`` (through ``forward``, which may be compiled) on ``x``."""

    def __init__(
        self,
        module: nn.Module,
        forward: Callable[[torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        optimizer: str,
        seed: int,
    ):
        self.module, self.forward, self.x = module, forward, x
        self.optimizer = make_optimizer(optimizer, [p for p in module.parameters()])
        self.initial = [p.detach().clone() for p in module.parameters()]
        with torch.no_grad():
            shape = module(x).shape  # eager, once: the loss target's shape
        gen = torch.Generator().manual_seed(seed + 2)
        if len(shape) == 2:
            labels = torch.randint(0, shape[1], (shape[0],), generator=gen)
            self.target: torch.Tensor = labels.to(x.device)
            self.loss: Callable[[torch.Tensor], torch.Tensor] = self._cross_entropy
        else:
            self.target = torch.randn(tuple(shape), generator=gen).to(x.device)
            self.loss = self._mse

    def _cross_entropy(self, out: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out.float(), self.target)

    def _mse(self, out: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out.float(), self.target)

    def step(self) -> None:
        loss = self.loss(self.forward(self.x))
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    def output(self) -> torch.Tensor:
        """The eager forward output in train mode, dropout off (module docstring)."""
        with torch.no_grad(), no_dropout(self.module):
            return self.module(self.x)

    def restore(self) -> None:
        """Put the initial weights back (after compiling or measuring memory took steps)."""
        with torch.no_grad():
            for p, p0 in zip(self.module.parameters(), self.initial, strict=True):
                p.copy_(p0)

    def resident(self) -> list[torch.Tensor]:
        """Tensors alive between steps: weights, buffers, input, target, optimizer state."""
        held = [*self.module.parameters(), *self.module.buffers(), self.x, self.target]
        for state in self.optimizer.state.values():
            held += [v for v in state.values() if isinstance(v, torch.Tensor)]
        return held
