"""Params, MACs, FLOPs and bytes moved: closed forms, cross-checked against fvcore.

Conventions (also in the README):
- ``macs``: multiply-accumulates of the conv (and linear) layers; bias additions are not counted.
- ``flops`` = 2 x macs (one multiply + one add per MAC). fvcore calls a MAC a "flop"; its total
  is compared with ``macs``, not with ``flops``.
- ``bytes``: compulsory memory traffic, each tensor touched once: read the input and every
  weight (bias included), write the output; the separable variant also writes its intermediate
  tensor (the depthwise output) and reads it back. Caches are not modelled, so this is a lower
  bound for a real kernel and an estimate, not a measurement.
- ``intensity`` = flops / bytes (FLOP per byte), the x-axis of a roofline.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dscbench.spec import DTYPE_BYTES

if TYPE_CHECKING:
    from dscbench.spec import ConvSpec


@dataclass(frozen=True)
class Counts:
    params: int
    macs: int
    bytes: int

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes


def conv_macs(
    batch: int, c_in: int, c_out: int, k: int, out_h: int, out_w: int, groups: int = 1
) -> int:
    """MACs of one Conv2d: every output element takes (C_in / groups) * K * K multiply-adds."""
    return batch * c_out * out_h * out_w * (c_in // groups) * k * k


def conv_params(c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = False) -> int:
    return c_out * (c_in // groups) * k * k + (c_out if bias else 0)


def closed_form(spec: ConvSpec, variant: str) -> Counts:
    """Counts of one variant from the formulas alone (no torch)."""
    n, cin, cout, k = spec.batch, spec.in_channels, spec.out_channels, spec.kernel
    ho, wo = spec.out_height, spec.out_width
    elem = DTYPE_BYTES[spec.dtype]
    x_in = n * cin * spec.height * spec.width
    x_out = n * cout * ho * wo
    if variant == "standard":
        params = conv_params(cin, cout, k, bias=spec.bias)
        macs = conv_macs(n, cin, cout, k, ho, wo)
        traffic = x_in + params + x_out
    elif variant == "separable":
        params = conv_params(cin, cin, k, groups=cin, bias=spec.bias) + conv_params(
            cin, cout, 1, bias=spec.bias
        )
        macs = conv_macs(n, cin, cin, k, ho, wo, groups=cin) + conv_macs(n, cin, cout, 1, ho, wo)
        intermediate = n * cin * ho * wo
        traffic = x_in + params + 2 * intermediate + x_out
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return Counts(params=params, macs=macs, bytes=traffic * elem)


def footprint_bytes(spec: ConvSpec, variant: str) -> int:
    """Bytes of the tensors alive at once in one forward pass: input, weights, output, and the
    separable variant's intermediate (held once, unlike ``bytes``, which counts traffic)."""
    c = closed_form(spec, variant)
    if variant == "standard":
        return c.bytes
    intermediate = spec.batch * spec.in_channels * spec.out_height * spec.out_width
    return c.bytes - intermediate * DTYPE_BYTES[spec.dtype]


def fvcore_counts(module: Any, example_input: Any) -> tuple[int, int]:
    """(params, MACs) as fvcore counts them: parameter_count and FlopCountAnalysis.total()."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracer use deprecated jit APIs
        from fvcore.nn import FlopCountAnalysis, parameter_count

        analysis = FlopCountAnalysis(module, example_input)
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        macs = int(analysis.total())
    return int(parameter_count(module)[""]), macs


def cross_check(counts: Counts, module: Any, example_input: Any) -> str:
    """Compare closed-form counts with fvcore's; return a description of any mismatch, or ''."""
    params, macs = fvcore_counts(module, example_input)
    problems = []
    if params != counts.params:
        problems.append(f"params: closed form {counts.params}, fvcore {params}")
    if macs != counts.macs:
        problems.append(f"macs: closed form {counts.macs}, fvcore {macs}")
    return "; ".join(problems)
