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


def three_class_cnn() -> nn.Module:
    """For dscbench accuracy on 1x8x8 inputs of 3 classes: --twin separable derives its twin."""
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


def predict_net() -> nn.Module:
    """For dscbench predict: dense 3x3 convs the predictor tests' sweep covers, a 1x1 conv
    alone (no layer a sweep measures: unsupported), BN + ReLU, a classifier."""
    return nn.Sequential(
        nn.Conv2d(16, 32, 3, padding=1, bias=False),
        nn.BatchNorm2d(32),
        nn.ReLU(inplace=True),
        nn.Conv2d(32, 64, 3, stride=2, padding=1, bias=False),
        nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 1, bias=False),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
