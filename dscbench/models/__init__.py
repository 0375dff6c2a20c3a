"""Model twins: whole networks built twice, with depthwise-separable blocks (``separable``) and
with standard convolutions (``standard``).

This module is the catalog, plain data with no torch import, so sweep validation and ``--help``
stay fast; ``zoo.py`` builds the networks and ``twins.py`` loads user models and derives their
twins by module replacement.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Published:
    """A paper's figures for one network: mult-adds and parameters, as printed."""

    source: str
    macs: float  # multiply-accumulates per image
    params: float


@dataclass(frozen=True)
class ModelInfo:
    name: str
    description: str
    channels: int  # input channels
    knobs: tuple[str, ...]  # which of width_mult, resolution, depth apply
    default_resolution: int = 0  # square input side, for models with the resolution knob
    fixed_size: tuple[int, int] = (0, 0)  # (H, W) for models without it
    default_depth: int = 0
    # Published figures, per (variant, width_mult, resolution); depth-free models only.
    published: dict[tuple[str, float, int], Published] = field(default_factory=dict)

    def input_shape(self, resolution: int | None) -> tuple[int, int, int]:
        if "resolution" in self.knobs:
            side = resolution or self.default_resolution
            return (self.channels, side, side)
        return (self.channels, *self.fixed_size)


_V1 = "Howard et al. 2017, MobileNets"
_V2 = "Sandler et al. 2018, MobileNetV2"

CATALOG: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "mobilenet-v1",
            "MobileNetV1 (Table 1); standard twin: the paper's Conv MobileNet (Table 4)",
            3,
            ("width_mult", "resolution"),
            default_resolution=224,
            published={
                ("separable", 1.0, 224): Published(f"{_V1}, Table 4", 569e6, 4.2e6),
                ("standard", 1.0, 224): Published(f"{_V1}, Table 4", 4866e6, 29.3e6),
                ("separable", 0.75, 224): Published(f"{_V1}, Table 6", 325e6, 2.6e6),
                ("separable", 0.5, 224): Published(f"{_V1}, Table 6", 149e6, 1.3e6),
                ("separable", 0.25, 224): Published(f"{_V1}, Table 6", 41e6, 0.5e6),
                ("separable", 1.0, 192): Published(f"{_V1}, Table 7", 418e6, 4.2e6),
                ("separable", 1.0, 160): Published(f"{_V1}, Table 7", 290e6, 4.2e6),
                ("separable", 1.0, 128): Published(f"{_V1}, Table 7", 186e6, 4.2e6),
            },
        ),
        ModelInfo(
            "mobilenet-v2",
            "MobileNetV2 inverted residuals (Table 2); standard twin: dense 3x3 instead of "
            "each depthwise 3x3",
            3,
            ("width_mult", "resolution"),
            default_resolution=224,
            published={("separable", 1.0, 224): Published(f"{_V2}, Table 4", 300e6, 3.4e6)},
        ),
        ModelInfo(
            "xception-middle",
            "Xception middle flow (Chollet 2017) at 19x19x728, --depth blocks; standard twin: "
            "dense 3x3 instead of each SeparableConv",
            728,
            ("depth",),
            fixed_size=(19, 19),
            default_depth=8,
        ),
        ModelInfo(
            "digits-cnn",
            "a small CNN for 8x8 grayscale digits (dscbench accuracy's default): 3x3 conv 1->32, "
            "3x3 32->64, 2x2 max pool, 3x3 64->64, BN + ReLU after each, global average pool, "
            "linear to 10; separable: the last two convs depthwise + pointwise",
            1,
            (),
            fixed_size=(8, 8),
        ),
        ModelInfo(
            "article",
            "the seed article's Keras example: DepthwiseConv2D 3x3 + Conv2D 16 1x1 on "
            "28x28x3, then Flatten + Dense(10); standard twin: Conv2D 16 3x3",
            3,
            (),
            fixed_size=(28, 28),
        ),
    )
}
KNOB_FLAGS = {"width_mult": "--width-mult", "resolution": "--resolution", "depth": "--depth"}


def is_user_model(name: str) -> bool:
    """``package.module:callable`` names a user model; anything else must be in CATALOG."""
    return ":" in name


# Set in a worker's environment (workers.client.worker_environment): the directory dscbench
# was run in, since a worker itself runs elsewhere (its log directory).
CALLER_CWD_VARIABLE = "DSCBENCH_CALLER_CWD"


def caller_directory_on_path() -> None:
    """Let models of the user's own import from the directory dscbench was run in (README "Your
    own model"), wherever they are loaded: in this process (``--processes 1``, ``--dry-run``)
    or in a worker. The ``dscbench`` script does not put that directory on ``sys.path`` itself.
    Appended, not prepended: dscbench is imported by now, so a directory holding another
    dscbench cannot shadow it."""
    caller = os.environ.get(CALLER_CWD_VARIABLE)
    if not caller:
        try:
            caller = os.getcwd()
        except OSError:  # the directory was removed under us: nothing to import from
            return
    if caller not in sys.path:
        sys.path.append(caller)
