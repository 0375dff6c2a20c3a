"""User models whose forward does not return one tensor, or fails only when it really runs:
importable as tests.output_models:NAME (issue 17, item 8)."""

from __future__ import annotations

import torch
from torch import nn


class _Net(nn.Module):
    """A 3x3 conv (so ``--twin separable`` has something to replace) and then ``finish``."""

    def __init__(self, finish):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.finish = finish

    def forward(self, x):
        return self.finish(self, self.conv(x))


def two_outputs() -> nn.Module:
    return _Net(lambda net, y: (y, y.mean()))


def a_dict() -> nn.Module:
    return _Net(lambda net, y: {"out": y, "aux": y})


def nothing() -> nn.Module:
    return _Net(lambda net, y: None)


def aux_in_training() -> nn.Module:
    """One tensor in eval mode, (logits, aux) in train mode (as Inception's aux classifier)."""
    return _Net(lambda net, y: (y, y) if net.training else y)


def tuple_off_meta() -> nn.Module:
    """One tensor on the meta device (validation), a tuple on real tensors."""
    return _Net(lambda net, y: y if y.is_meta else (y, y))


class _Float32Only(nn.Module):
    """Keeps a float32 weight as a plain attribute, which ``.to(float64)`` leaves alone: the
    float64 parity reference then fails (the meta device does not look)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.mix = torch.ones(8, 8, 1, 1)

    def forward(self, x):
        y = self.conv(x)
        return y if y.is_meta else nn.functional.conv2d(y, self.mix)


def float32_only() -> nn.Module:
    return _Float32Only()
