"""Build the two variants of one spec (a conv layer or a model twin) as torch modules, with
seeded weights and input."""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING

import torch
from torch import nn

if TYPE_CHECKING:
    from dscbench.spec import ConvSpec, ModelSpec, Spec

TORCH_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}


def build(spec: Spec, variant: str, seed: int = 0) -> nn.Module:
    """The module of ``variant``, in the spec's dtype, in eval mode for inference and train mode
    for training; ``seed`` fixes its weights, so a rerun builds the same module."""
    if variant not in ("standard", "separable"):
        raise ValueError(f"unknown variant {variant!r}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        is_model = spec.kind == "model"
        module = build_model(spec, variant) if is_model else build_conv(spec, variant)  # type: ignore[arg-type]
    module = module.to(TORCH_DTYPES[spec.dtype])
    return module.train() if spec.mode == "training" else module.eval()


def build_model(spec: ModelSpec, variant: str) -> nn.Module:
    from dscbench.models import is_user_model

    if is_user_model(spec.model):
        from dscbench.models.twins import user_variant

        return user_variant(spec.model, spec.twin, variant)
    from dscbench.models.zoo import BUILDERS

    return BUILDERS[spec.model](variant, spec)


CONVS: dict[int, type[nn.Module]] = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}


def build_conv(spec: ConvSpec, variant: str) -> nn.Module:
    """``standard``: a Conv1d/2d/3d (as many as the spec's spatial dimensions) C_in -> C_out,
    K, stride, dilation. ``separable``: a depthwise K conv (groups = C_in, depth_multiplier x
    C_in outputs, same stride and dilation) then a pointwise 1 conv to C_out. Both use 'same'
    padding (dilation x (K // 2)), so their outputs have the same shape.

    Weights come from torch's default initialisation.
    """
    conv = CONVS[spec.dims]
    pad, dil = spec.padding, spec.dilation
    if variant == "standard":
        return conv(
            spec.in_channels, spec.out_channels, spec.kernel, spec.stride, pad, dil,
            bias=spec.bias,
        )  # fmt: skip
    mid = spec.intermediate_channels
    return nn.Sequential(
        OrderedDict(
            depthwise=conv(
                spec.in_channels,
                mid,
                spec.kernel,
                spec.stride,
                pad,
                dil,
                groups=spec.in_channels,
                bias=spec.bias,
            ),
            pointwise=conv(mid, spec.out_channels, 1, bias=spec.bias),
        )
    )


def make_input(spec: Spec, seed: int = 0) -> torch.Tensor:
    """A seeded standard-normal input of shape (batch, C_in, *spatial) in the spec's dtype."""
    gen = torch.Generator().manual_seed(seed)
    shape = spec.input_dims()
    return torch.randn(shape, generator=gen, dtype=torch.float32).to(TORCH_DTYPES[spec.dtype])


def instance(spec: Spec, variant: str, seed: int = 0) -> tuple[nn.Module, torch.Tensor]:
    """The module and input every backend starts from for (spec, variant, seed), on the CPU and
    in the spec's dtype: backends and the parity reference all derive theirs from these."""
    return build(spec, variant, seed), make_input(spec, seed + 1)


def to_memory_format(
    module: nn.Module, x: torch.Tensor, memory_format: str
) -> tuple[nn.Module, torch.Tensor]:
    """Lay out weights and input as ``contiguous`` (NCHW) or ``channels_last`` (NHWC; NDHWC
    for a 5-D input: torch's channels_last_3d)."""
    fmt = torch.contiguous_format
    if memory_format == "channels_last":
        fmt = torch.channels_last_3d if x.dim() == 5 else torch.channels_last
    return module.to(memory_format=fmt), x.contiguous(memory_format=fmt)
