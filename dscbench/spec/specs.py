"""What one measurement is: ConvSpec, ModelSpec, Case, their JSON form, and the vocabularies
their fields take (variants, dtypes, modes, optimizers, twins, memory formats, caches)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

VARIANTS = ("standard", "separable")

# Canonical dtype name -> accepted spellings (axes.parse_dtype reads them).
DTYPE_ALIASES: dict[str, tuple[str, ...]] = {
    "float32": ("float32", "fp32", "f32", "float"),
    "float16": ("float16", "fp16", "f16", "half"),
    "bfloat16": ("bfloat16", "bf16"),
    "float64": ("float64", "fp64", "f64", "double"),
}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}

MODES = ("inference", "training")
# Training steps: forward, loss, backward, optimizer step (training.py says which settings).
OPTIMIZERS = ("sgd", "adam")
TWINS = ("separable", "dense")  # how a user model's twin is derived (models/twins.py)
MEMORY_FORMATS = ("contiguous", "channels_last")
# warm: every timed call finds its weights and input where the last call left them (in cache
# when they fit); cold: each call reads a copy no cache level holds (cold.py).
CACHES = ("warm", "cold")


@dataclass(frozen=True, order=True)
class ConvSpec:
    """One convolution workload: the standard conv and its separable twin share it.

    ``spatial`` has one size per spatial dimension: (L,) for a Conv1d (sequences, audio), (H, W)
    for a Conv2d, (D, H, W) for a Conv3d (video: frames, height, width). Padding is "same"
    (dilation x (kernel // 2)), kernels are odd. ``dilation`` spreads the kernel's taps
    (atrous convs: DeepLabv3+, Xception-style models); ``depth_multiplier`` M gives the
    separable twin's depthwise conv M x C_in outputs, which its pointwise conv reads (Keras'
    SeparableConv2D ``depth_multiplier``; the standard conv does not change). ``threads`` is
    the intra-op thread count the workload runs with; it is part of the configuration because
    the verdict can flip with it. ``cache`` is warm or cold (CACHES).
    """

    batch: int
    in_channels: int
    out_channels: int
    # The input's size in each spatial dimension (the class docstring); counts, output sizes
    # and labels are written over it.
    spatial: tuple[int, ...]
    kernel: int
    stride: int = 1
    dtype: str = "float32"
    mode: str = "inference"
    threads: int = 1
    memory_format: str = "contiguous"
    bias: bool = False
    optimizer: str = ""  # training only: sgd or adam
    dilation: int = 1
    depth_multiplier: int = 1
    cache: str = "warm"

    kind = "conv"

    def __post_init__(self) -> None:
        object.__setattr__(self, "spatial", tuple(self.spatial))
        _settle_optimizer(self)

    @property
    def dims(self) -> int:
        """Spatial dimensions: 1, 2 or 3 (Conv1d, Conv2d, Conv3d)."""
        return len(self.spatial)

    @property
    def padding(self) -> int:
        return self.dilation * (self.kernel // 2)

    @property
    def span(self) -> int:
        """The kernel's extent over the input in one dimension: dilation x (kernel - 1) + 1."""
        return self.dilation * (self.kernel - 1) + 1

    @property
    def intermediate_channels(self) -> int:
        """The separable twin's depthwise outputs: depth_multiplier x C_in."""
        return self.depth_multiplier * self.in_channels

    @property
    def out_spatial(self) -> tuple[int, ...]:
        """The output's size in each spatial dimension ('same' padding, ``stride``)."""
        pad, span = self.padding, self.span
        return tuple((s + 2 * pad - span) // self.stride + 1 for s in self.spatial)

    # The names the result columns use: a Conv2d's spatial dimensions are H, W; a Conv3d's
    # D (frames), H, W; a Conv1d's one dimension is its width (its length), and it has no
    # height or frames (None).
    @property
    def frames(self) -> int | None:
        return self.spatial[0] if self.dims == 3 else None

    @property
    def height(self) -> int | None:
        return self.spatial[-2] if self.dims >= 2 else None

    @property
    def width(self) -> int:
        return self.spatial[-1]

    @property
    def out_frames(self) -> int | None:
        return self.out_spatial[0] if self.dims == 3 else None

    @property
    def out_height(self) -> int | None:
        return self.out_spatial[-2] if self.dims >= 2 else None

    @property
    def out_width(self) -> int:
        return self.out_spatial[-1]

    @property
    def config_id(self) -> str:
        """A readable key, unique over every field (backend and variant are separate columns)."""
        parts = [
            f"n{self.batch}",
            f"c{self.in_channels}-{self.out_channels}",
            "x".join(map(str, self.spatial)),
            f"k{self.kernel}s{self.stride}" + (f"d{self.dilation}" if self.dilation != 1 else ""),
            self.dtype,
            _mode_part(self.mode, self.optimizer),
            f"t{self.threads}",
        ]
        if self.memory_format != "contiguous":
            parts.append(self.memory_format)
        if self.bias:
            parts.append("bias")
        if self.depth_multiplier != 1:
            parts.append(f"dm{self.depth_multiplier}")
        if self.cache != "warm":
            parts.append(self.cache)
        return "_".join(parts)

    def label(self) -> str:
        """A short human label (labels.row_label): 'n1 32->64 @56 k3s1 float32 t2'."""
        from dscbench.labels import row_label

        return row_label(spec_to_json(self))

    def input_dims(self) -> tuple[int, ...]:
        return (self.batch, self.in_channels, *self.spatial)


def _settle_optimizer(spec: Any) -> None:
    """The optimizer belongs to training only: sgd unless told, and empty for inference."""
    if spec.mode == "training" and not spec.optimizer:
        object.__setattr__(spec, "optimizer", "sgd")
    elif spec.mode != "training" and spec.optimizer:
        object.__setattr__(spec, "optimizer", "")


def _mode_part(mode: str, optimizer: str) -> str:
    return f"{mode}-{optimizer}" if mode == "training" and optimizer else mode


@dataclass(frozen=True, order=True)
class ModelSpec:
    """A whole network and its twin (models/): ``model`` is a built-in name (models.CATALOG) or
    ``package.module:callable`` for a user model, whose twin is derived as ``twin`` says.
    ``input_shape`` is (C, H, W); ``width_mult`` and ``depth`` are 1.0 and 0 where the model
    has no such knob."""

    batch: int
    model: str
    input_shape: tuple[int, int, int]
    width_mult: float = 1.0
    depth: int = 0
    twin: str = ""  # user models: separable (given model is standard) or dense
    dtype: str = "float32"
    mode: str = "inference"
    threads: int = 1
    memory_format: str = "contiguous"
    optimizer: str = ""
    cache: str = "warm"

    kind = "model"

    def __post_init__(self) -> None:
        _settle_optimizer(self)

    @property
    def in_channels(self) -> int:
        return self.input_shape[0]

    @property
    def height(self) -> int:
        return self.input_shape[1]

    @property
    def width(self) -> int:
        return self.input_shape[2]

    @property
    def resolution(self) -> int | None:
        """The input's side for a square input (the MobileNet papers' "resolution")."""
        return self.height if self.height == self.width else None

    @property
    def config_id(self) -> str:
        c, h, w = self.input_shape
        parts = [f"n{self.batch}", self.model.replace(":", "."), f"{c}x{h}x{w}"]
        if self.width_mult != 1.0:
            parts.append(f"w{self.width_mult:g}")
        if self.depth:
            parts.append(f"d{self.depth}")
        if self.twin:
            parts.append(f"twin-{self.twin}")
        parts += [self.dtype, _mode_part(self.mode, self.optimizer), f"t{self.threads}"]
        if self.memory_format != "contiguous":
            parts.append(self.memory_format)
        if self.cache != "warm":
            parts.append(self.cache)
        return "_".join(parts)

    def label(self) -> str:
        from dscbench.labels import row_label

        return row_label(spec_to_json(self))

    def input_dims(self) -> tuple[int, int, int, int]:
        return (self.batch, *self.input_shape)


Spec = ConvSpec | ModelSpec


def spec_to_json(spec: Spec) -> dict[str, Any]:
    """A spec as plain data (the worker protocol, labels): its fields plus ``kind``."""
    from dataclasses import asdict

    data = asdict(spec)
    data["kind"] = spec.kind
    if isinstance(spec, ModelSpec):
        data["input_shape"] = list(spec.input_shape)
        added = MODEL_DEFAULTS
    else:  # as files and digests have it: a 2-D conv's sizes are height and width
        spatial = data.pop("spatial")
        data.update(zip(SPATIAL_NAMES[len(spatial)], spatial, strict=True))
        added = CONV_DEFAULTS
    for name in added:  # fields added later stay out at their defaults, so a configuration
        if data[name] == added[name]:  # keeps its digest
            del data[name]
    return data


# What spec_to_json calls each spatial dimension (the result columns' names).
SPATIAL_NAMES = {1: ("width",), 2: ("height", "width"), 3: ("frames", "height", "width")}
CONV_DEFAULTS = {"dilation": 1, "depth_multiplier": 1, "cache": "warm"}
MODEL_DEFAULTS = {"cache": "warm"}


def spec_from_json(data: Mapping[str, Any]) -> Spec:
    fields_ = {k: v for k, v in data.items() if k != "kind"}
    if data.get("kind") == "model":
        fields_["input_shape"] = tuple(fields_["input_shape"])
        return ModelSpec(**fields_)
    for dims in sorted(SPATIAL_NAMES, reverse=True):  # the most names first: 3-D has 2-D's
        names = SPATIAL_NAMES[dims]
        if all(fields_.get(n) is not None for n in names):
            fields_["spatial"] = tuple(fields_.pop(n) for n in names)
            break
    return ConvSpec(**{k: v for k, v in fields_.items() if k not in ("frames", "height")})


@dataclass(frozen=True)
class Case:
    """A ConvSpec on one backend: the unit the sweep schedules (both variants are measured)."""

    spec: Spec
    backend: str
