"""A user model for `bench_kernels.py counts-model`: a small CNN, with one more 3x3 conv when
the environment sets EXTRA_LAYER=1 (what a change to a model under review looks like)."""

import os

from torch import nn


def build() -> nn.Module:
    layers = [nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1)]
    if os.environ.get("EXTRA_LAYER") == "1":
        layers += [nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10)]
    return nn.Sequential(*layers)
