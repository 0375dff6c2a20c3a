"""Models of "your own" for the user-model tests: importable as tests.user_models:NAME."""

from torch import nn


def small_cnn() -> nn.Module:
    """A dense network: --twin separable derives its separable twin."""
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Conv2d(8, 16, 5, stride=2, padding=2),
        nn.ReLU(),
        nn.Conv2d(16, 16, 1),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    )


def small_separable() -> nn.Module:
    """A depthwise-separable network: --twin dense derives its dense twin."""
    return nn.Sequential(
        nn.Conv2d(3, 3, 3, padding=1, groups=3),
        nn.Conv2d(3, 8, 1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False),
        nn.Conv2d(8, 8, 1),
    )


def only_pointwise() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 1))


def raises() -> nn.Module:
    raise RuntimeError("weights file not found")


def not_a_module() -> object:
    return {"layers": 3}


NOT_CALLABLE = 42
