"""Params, MACs, FLOPs and bytes moved: closed forms, cross-checked against fvcore.

Conventions (also in the README), those of the MobileNet and Xception papers:
- ``macs``: multiply-accumulates of the conv and fully-connected layers in one forward pass.
  Bias additions are not MACs.
- ``flops`` = 2 x macs (one multiply + one add per MAC). fvcore calls a MAC a "flop"; its conv
  and linear totals are compared with ``macs``, not with ``flops``.
- ``other_flops``: everything else in the forward pass, per element: batch norm 2 (a scale and a
  shift, as at inference), activations 1, pooling 1 per input element, residual additions 1,
  bias additions 1.
- ``step_flops``: the conv and fully-connected FLOPs of one timed iteration. For inference that
  is ``flops``. For a training step it adds, per layer, the gradient with respect to the
  weights (as many MACs as the forward) and, where the layer's input needs a gradient (every
  layer but one reading the network's input), the gradient with respect to the input (again
  as many). ``training_macs`` has the closed form.
- ``bytes``: compulsory memory traffic, each tensor touched once: read the input and every
  weight (bias included), write the output; the separable variant also writes its intermediate
  tensor (the depthwise output) and reads it back. Caches are not modelled, so this is a lower
  bound for a real kernel and an estimate, not a measurement.
- ``intensity`` = flops / bytes (FLOP per byte), the x-axis of a roofline.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dscbench.spec import DTYPE_BYTES

if TYPE_CHECKING:
    from dscbench.spec import ConvSpec


@dataclass(frozen=True, slots=True)
class Counts:
    params: int
    macs: int
    bytes: int
    other_flops: int = 0
    step_macs: int = 0  # conv and FC MACs of one timed iteration (module docstring)

    @property
    def flops(self) -> int:
        return 2 * self.macs

    @property
    def step_flops(self) -> int:
        return 2 * self.step_macs

    @property
    def intensity(self) -> float:
        return self.flops / self.bytes


def conv_macs(
    batch: int, c_in: int, c_out: int, k: int, out_spatial: Sequence[int], groups: int = 1
) -> int:
    """MACs of one convolution with ``len(out_spatial)`` spatial dimensions (2 for a Conv2d):
    every output element takes (C_in / groups) * K^d multiply-adds."""
    return batch * c_out * math.prod(out_spatial) * (c_in // groups) * k ** len(out_spatial)


def conv_params(
    c_in: int, c_out: int, k: int, groups: int = 1, bias: bool = False, dims: int = 2
) -> int:
    """Weights (and bias) of one convolution over ``dims`` spatial dimensions."""
    return c_out * (c_in // groups) * k**dims + (c_out if bias else 0)


def training_macs(forward_macs: int, input_needs_grad: bool) -> int:
    """MACs of one layer's forward + backward: the weight gradient of a conv or linear layer
    sums, for each of its weights, one product per output position, which is as many MACs as
    the forward (``conv_macs``, grouped and depthwise included: each weight only meets the
    C_in / groups channels of its group); the input gradient (a transposed conv) is as many
    again, and is skipped where the input needs none."""
    return forward_macs * (3 if input_needs_grad else 2)


def closed_form(spec: ConvSpec, variant: str) -> Counts:
    """Counts of one variant from the formulas alone (no torch)."""
    n, cin, cout, k = spec.batch, spec.in_channels, spec.out_channels, spec.kernel
    out, d = spec.out_spatial, len(spec.spatial)
    elem = DTYPE_BYTES[spec.dtype]
    training = spec.mode == "training"
    x_in = n * cin * math.prod(spec.spatial)
    x_out = n * cout * math.prod(out)
    if variant == "standard":
        params = conv_params(cin, cout, k, bias=spec.bias, dims=d)
        macs = conv_macs(n, cin, cout, k, out)
        step = training_macs(macs, False) if training else macs
        traffic = x_in + params + x_out
        bias_adds = x_out if spec.bias else 0
    elif variant == "separable":  # the depthwise conv: C_in -> M x C_in, groups C_in
        mid = spec.intermediate_channels
        params = conv_params(cin, mid, k, groups=cin, bias=spec.bias, dims=d) + conv_params(
            mid, cout, 1, bias=spec.bias, dims=d
        )
        depthwise = conv_macs(n, cin, mid, k, out, groups=cin)
        pointwise = conv_macs(n, mid, cout, 1, out)
        macs = depthwise + pointwise
        step = macs
        if training:  # the pointwise conv's input (the intermediate) needs a gradient
            step = training_macs(depthwise, False) + training_macs(pointwise, True)
        intermediate = n * mid * math.prod(out)
        traffic = x_in + params + 2 * intermediate + x_out
        bias_adds = intermediate + x_out if spec.bias else 0
    else:
        raise ValueError(f"unknown variant {variant!r}")
    return Counts(
        params=params, macs=macs, bytes=traffic * elem, other_flops=bias_adds, step_macs=step
    )


def footprint_bytes(spec: ConvSpec, variant: str) -> int:
    """Bytes of the tensors alive at once in one forward pass: input, weights, output, and the
    separable variant's intermediate (held once, unlike ``bytes``, which counts traffic)."""
    c = closed_form(spec, variant)
    if variant == "standard":
        return c.bytes
    intermediate = spec.batch * spec.intermediate_channels * math.prod(spec.out_spatial)
    return c.bytes - intermediate * DTYPE_BYTES[spec.dtype]


# fvcore operator names that are conv or fully-connected MACs (the rest, batch norm and
# pooling, follows its own conventions and is not compared).
FVCORE_MAC_OPERATORS = ("conv", "linear", "addmm", "matmul", "mm", "bmm", "einsum")


def fvcore_counts(module: Any, example_input: Any) -> tuple[int, int]:
    """(params, MACs) as fvcore counts them: parameter_count, and FlopCountAnalysis's conv and
    fully-connected operators."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fvcore's import and tracer use deprecated jit APIs
        import torch
        from fvcore.nn import FlopCountAnalysis, parameter_count

        was_training = module.training
        module.eval()  # trace the forward only; batch norm in train mode would update stats
        try:
            with torch.no_grad():
                analysis = FlopCountAnalysis(module, example_input)
                analysis.unsupported_ops_warnings(False)
                analysis.uncalled_modules_warnings(False)
                by_op = analysis.by_operator()
        finally:
            module.train(was_training)
        macs = int(sum(by_op.get(op, 0) for op in FVCORE_MAC_OPERATORS))
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


# ---------------------------------------------------------------------------------------------
# Whole networks: the closed forms above, applied layer by layer
# ---------------------------------------------------------------------------------------------

# Layer types of a breakdown (MobileNetV1's Table 2 and then some).
LAYER_TYPES = ("conv1x1", "depthwise", "dense", "grouped", "fc", "norm", "other")


@dataclass
class LayerCount:
    name: str
    layer_type: str
    macs: int = 0
    params: int = 0
    other_flops: int = 0
    bytes: int = 0
    step_macs: int = 0


def conv_type(conv: Any) -> str:
    if conv.groups == 1:
        return "conv1x1" if all(k == 1 for k in conv.kernel_size) else "dense"
    return "depthwise" if conv.groups == conv.in_channels else "grouped"


def _numel(shape: Any) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


def activation_types() -> tuple[type, ...]:
    """The activation modules a network's breakdown counts (one FLOP per output element)."""
    from torch import nn

    return (
        nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.LeakyReLU, nn.SiLU, nn.GELU, nn.Sigmoid,
        nn.Tanh, nn.Hardswish, nn.Hardsigmoid, nn.ELU, nn.PReLU,
    )  # fmt: skip


def layer_counts(module: Any, input_dims: tuple[int, ...], training: bool) -> list[LayerCount]:
    """Run ``module`` once on the meta device (shapes only, no arithmetic) and apply the closed
    forms to every layer it calls, in call order. Parameters are counted once per module that
    owns them, even when it is called twice; a module that is never called still owns its
    parameters (as ``other``, with no MACs)."""
    import copy

    import torch
    from torch import nn

    from dscbench.models.zoo import Residual
    from dscbench.ops import CONVS

    convs = tuple(CONVS.values())
    meta = copy.deepcopy(module).to("meta")
    meta.train(training)
    x = torch.empty(input_dims, device="meta", dtype=next(_dtypes(meta), torch.float32))
    elem = x.element_size()
    records: list[LayerCount] = []
    seen: set[int] = set()
    names = {id(m): n for n, m in meta.named_modules()}
    activations = activation_types()
    pools = (nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.AdaptiveMaxPool2d)

    def own_params(m: nn.Module) -> int:
        if id(m) in seen:
            return 0
        seen.add(id(m))
        return sum(p.numel() for p in m.parameters(recurse=False))

    def hook(m: nn.Module, inputs: tuple, output: Any) -> None:
        inp = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        if inp is None or not isinstance(output, torch.Tensor):
            return
        n_in, n_out = inp.numel(), output.numel()
        record = LayerCount(names.get(id(m), type(m).__name__), "other")
        if isinstance(m, convs):
            k = _numel(m.kernel_size)
            record.layer_type = conv_type(m)
            record.macs = n_out * (m.in_channels // m.groups) * k
            record.other_flops = n_out if m.bias is not None else 0
        elif isinstance(m, nn.Linear):
            record.layer_type = "fc"
            record.macs = n_out * m.in_features
            record.other_flops = n_out if m.bias is not None else 0
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            record.layer_type = "norm"
            record.other_flops = 2 * n_out
        elif isinstance(m, activations):
            record.other_flops = n_out
        elif isinstance(m, pools):
            record.other_flops = n_in
        elif isinstance(m, Residual):
            record.other_flops = n_out
            n_in *= 2  # reads the block's input and its body's output
        elif any(True for _ in m.children()):
            return  # a container: its layers count themselves
        record.params = own_params(m)
        record.bytes = (n_in + n_out + record.params) * elem
        needs_grad = training and inp.requires_grad
        record.step_macs = training_macs(record.macs, needs_grad) if training else record.macs
        records.append(record)

    handles = [m.register_forward_hook(hook) for m in meta.modules()]
    try:
        with torch.set_grad_enabled(training):
            meta(x)
    finally:
        for h in handles:
            h.remove()
    for m in meta.modules():  # parameters of modules never called, or of containers
        params = own_params(m)
        if params:
            records.append(LayerCount(names.get(id(m), ""), "other", params=params))
    return records


def _dtypes(module: Any) -> Any:
    return (p.dtype for p in module.parameters())


def model_counts(records: list[LayerCount]) -> Counts:
    return Counts(
        params=sum(r.params for r in records),
        macs=sum(r.macs for r in records),
        bytes=sum(r.bytes for r in records),
        other_flops=sum(r.other_flops for r in records),
        step_macs=sum(r.step_macs for r in records),
    )


def breakdown(records: list[LayerCount]) -> list[dict[str, Any]]:
    """Per layer type: layers, MACs and params with their shares of the total (MobileNetV1's
    Table 2 uses the conv1x1, depthwise, dense and fc rows)."""
    total_macs = sum(r.macs for r in records) or 1
    total_params = sum(r.params for r in records) or 1
    rows = []
    for layer_type in LAYER_TYPES:
        mine = [r for r in records if r.layer_type == layer_type]
        if not mine:
            continue
        macs, params = sum(r.macs for r in mine), sum(r.params for r in mine)
        if layer_type == "other" and not macs and not params:
            continue  # activations, pooling, additions: nothing to share out
        rows.append(
            {
                "layer_type": layer_type,
                "layers": sum(1 for r in mine if r.macs or r.other_flops),
                "macs": macs,
                "params": params,
                "macs_share": macs / total_macs,
                "params_share": params / total_params,
            }
        )
    return rows


def network_records(spec: Any, variant: str) -> list[LayerCount]:
    """``layer_counts`` of a model spec's variant, built on the meta device (no weights
    allocated, so even the largest twin costs nothing to count)."""
    import torch

    from dscbench import ops

    with torch.device("meta"):
        module = ops.build(spec, variant)
    return layer_counts(module, spec.input_dims(), spec.mode == "training")


def counts_of(spec: Any, variant: str) -> Counts:
    """Counts of any spec: closed forms for a conv layer, summed over layers for a network."""
    if spec.kind == "conv":
        return closed_form(spec, variant)
    return model_counts(network_records(spec, variant))
