"""The built-in networks, each in two variants: ``separable`` (as published) and ``standard``
(its twin with dense convolutions). Written here because torchvision cannot be imported next to
every torch build, and because the twins need the same code path for both variants.

Conventions shared by all: convolutions followed by batch norm have no bias; activations are
in place where the published implementations make them so (never on a tensor a residual
connection still needs).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from dscbench.models import CATALOG


class Residual(nn.Module):
    """``x + body(x)``: a module of its own so counting sees the addition."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.body = body

    def forward(self, x):  # type: ignore[no-untyped-def]
        return x + self.body(x)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)


def _cbr(
    cin: int, cout: int, k: int, stride: int = 1, groups: int = 1, act: type = nn.ReLU
) -> list[nn.Module]:
    return [_conv(cin, cout, k, stride, groups), nn.BatchNorm2d(cout), act(inplace=True)]


# ---------------------------------------------------------------------------------------------
# MobileNetV1, Howard et al. 2017, Table 1
# ---------------------------------------------------------------------------------------------

# (output channels, stride) of the 13 depthwise-separable layers. Table 1 prints the last
# depthwise layer as "s2" on a 7x7 input with a 7x7 output; that is a known typo: stride 1.
V1_LAYERS = [
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    *[(512, 1)] * 5,
    (1024, 2),
    (1024, 1),
]
V1_MIN_DEPTH = 8  # channels never fall below this under a width multiplier (TF-slim's rule)


def v1_channels(c: int, width_mult: float) -> int:
    return max(int(c * width_mult), V1_MIN_DEPTH)


def mobilenet_v1(variant: str, width_mult: float = 1.0, classes: int = 1000) -> nn.Module:
    """MobileNetV1: a 3x3 stride-2 conv to 32 channels, 13 depthwise-separable layers, average
    pooling and a fully-connected layer, with BN + ReLU after every conv (Table 1). The
    ``standard`` twin is the paper's "Conv MobileNet" (Table 4): each depthwise + pointwise
    pair becomes one 3x3 conv with the same input and output channels and stride."""
    cin = v1_channels(32, width_mult)
    layers = _cbr(3, cin, 3, 2)
    for c, stride in V1_LAYERS:
        cout = v1_channels(c, width_mult)
        if variant == "separable":
            layers += _cbr(cin, cin, 3, stride, groups=cin) + _cbr(cin, cout, 1)
        else:
            layers += _cbr(cin, cout, 3, stride)
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# MobileNetV2, Sandler et al. 2018, Table 2
# ---------------------------------------------------------------------------------------------

# t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
V2_SETTINGS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """The reference implementation's channel rounding: nearest multiple of ``divisor``, never
    more than 10% below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def inverted_residual(cin: int, cout: int, stride: int, t: int, variant: str) -> nn.Module:
    hidden = round(cin * t)
    layers: list[nn.Module] = []
    if t != 1:
        layers += _cbr(cin, hidden, 1, act=nn.ReLU6)
    groups = hidden if variant == "separable" else 1  # the twin's dense 3x3, same shape
    layers += _cbr(hidden, hidden, 3, stride, groups=groups, act=nn.ReLU6)
    layers += [_conv(hidden, cout, 1), nn.BatchNorm2d(cout)]  # linear bottleneck
    body = nn.Sequential(*layers)
    return Residual(body) if stride == 1 and cin == cout else body


def mobilenet_v2(variant: str, width_mult: float = 1.0, classes: int = 1000) -> nn.Module:
    """MobileNetV2 (Table 2): inverted residual bottlenecks with linear projections, channels
    rounded to multiples of 8 under the width multiplier, last conv at 1280 (scaled only above
    1.0), dropout 0.2 before the classifier. The ``standard`` twin replaces each depthwise 3x3
    conv with a dense 3x3 conv of the same shape."""
    cin = make_divisible(32 * width_mult)
    last = make_divisible(1280 * max(1.0, width_mult))
    layers: list[nn.Module] = _cbr(3, cin, 3, 2, act=nn.ReLU6)
    for t, c, n, s in V2_SETTINGS:
        cout = make_divisible(c * width_mult)
        for i in range(n):
            layers.append(inverted_residual(cin, cout, s if i == 0 else 1, t, variant))
            cin = cout
    layers += _cbr(cin, last, 1, act=nn.ReLU6)
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(last, classes)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# Xception middle flow, Chollet 2017, Figure 5
# ---------------------------------------------------------------------------------------------

XCEPTION_CHANNELS = 728


def _separable_conv(c: int, variant: str) -> nn.Module:
    """Keras SeparableConv2D(c, 3, padding="same", use_bias=False): depthwise then pointwise,
    nothing between them; the twin is one dense 3x3 conv."""
    if variant == "separable":
        return nn.Sequential(_conv(c, c, 3, groups=c), _conv(c, c, 1))
    return _conv(c, c, 3)


def xception_middle(variant: str, depth: int = 8) -> nn.Module:
    """``depth`` middle-flow blocks at 19x19x728: three times (ReLU, SeparableConv 3x3, BN),
    plus the block's input (the first ReLU must not overwrite it, so it is not in place)."""
    c = XCEPTION_CHANNELS
    blocks = []
    for _ in range(depth):
        body: list[nn.Module] = []
        for i in range(3):
            body += [nn.ReLU(inplace=i > 0), _separable_conv(c, variant), nn.BatchNorm2d(c)]
        blocks.append(Residual(nn.Sequential(*body)))
    return nn.Sequential(*blocks)


# ---------------------------------------------------------------------------------------------
# A small CNN for scikit-learn's 8x8 digits (dscbench accuracy)
# ---------------------------------------------------------------------------------------------


def digits_cnn(variant: str, classes: int = 10) -> nn.Module:
    """Three 3x3 convs (1 -> 32, 32 -> 64, 2x2 max pool, 64 -> 64) with BN + ReLU, global
    average pooling and a linear layer. The first conv stays dense in both variants (a
    depthwise conv of one input channel is the dense conv), as MobileNet's first conv does;
    in ``separable`` the other two are depthwise + pointwise, each conv with its BN + ReLU."""

    def block(cin: int, cout: int) -> list[nn.Module]:
        if variant == "separable":
            return _cbr(cin, cin, 3, groups=cin) + _cbr(cin, cout, 1)
        return _cbr(cin, cout, 3)

    layers = [*_cbr(1, 32, 3), *block(32, 64), nn.MaxPool2d(2), *block(64, 64)]
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------------------------
# The seed article's Keras example
# ---------------------------------------------------------------------------------------------


def article(variant: str, filters: int = 16, classes: int = 10) -> nn.Module:
    """Input 28x28x3; DepthwiseConv2D(3, padding="same") then Conv2D(16, 1), both with Keras's
    default bias and no activation; the article elides the rest ("other layers") and compiles
    with categorical cross-entropy, so a Flatten + Dense(10) head closes it. The twin is one
    Conv2D(16, 3, padding="same")."""
    if variant == "separable":
        convs: list[nn.Module] = [
            nn.Conv2d(3, 3, 3, padding=1, groups=3),
            nn.Conv2d(3, filters, 1),
        ]
    else:
        convs = [nn.Conv2d(3, filters, 3, padding=1)]
    return nn.Sequential(*convs, nn.Flatten(), nn.Linear(filters * 28 * 28, classes))


BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "mobilenet-v1": lambda variant, spec: mobilenet_v1(variant, spec.width_mult),
    "mobilenet-v2": lambda variant, spec: mobilenet_v2(variant, spec.width_mult),
    "xception-middle": lambda variant, spec: xception_middle(variant, spec.depth),
    "digits-cnn": lambda variant, spec: digits_cnn(variant),
    "article": lambda variant, spec: article(variant),
}
assert set(BUILDERS) == set(CATALOG), "every catalog entry needs a builder"
