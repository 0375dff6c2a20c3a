"""A network as the predictor sees it: its conv layers in call order, each a layer a sweep can
measure, and everything else (batch norm, activations, pooling, the classifier, additions).

The separable twin's depthwise conv followed by the 1x1 conv that reads its output is one
``separable`` layer (a sweep's separable variant); a dense KxK conv is one ``standard`` layer.
Anything else (a lone 1x1 conv, a grouped conv, padding other than 'same', dilation) is
``unsupported``: it is named, never silently dropped or guessed. A conv's bias is left out
(a sweep's layers have none; one addition per output). The other ops' cost is their
traffic (input, output and weights, as counting.py counts it) at their size on the fit run's
machine: a batch norm's and an activation's as the calibration timed those modules, anything
else's as a copy of that traffic (``apply.OpCost``): stated apart in every total, never folded
into the layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dscbench.spec import ConvSpec, ModelSpec

CONV_TYPES = ("conv1x1", "depthwise", "dense", "grouped")


@dataclass(frozen=True)
class Layer:
    kind: str  # standard, separable or unsupported
    spec: ConvSpec | None  # None when unsupported
    name: str  # the module(s), for reading
    why: str = ""  # unsupported: what is not

    def label(self) -> str:
        if self.spec is None:
            return f"{self.name} ({self.why})"
        s = self.spec
        side = f"{s.spatial[0]}" if s.spatial[0] == s.spatial[1] else "x".join(map(str, s.spatial))
        return f"{s.in_channels}->{s.out_channels} @{side} k{s.kernel}s{s.stride}"


def _conv_calls(spec: ModelSpec, variant: str) -> list[tuple[str, Any, tuple[int, ...]]]:
    """(name, conv module, input shape) of every conv the variant calls, in order (built and
    run on the meta device: no weights, no arithmetic)."""
    import torch
    from torch import nn

    from dscbench import ops

    with torch.device("meta"):
        module = ops.build(spec, variant)
    names = {id(m): n for n, m in module.named_modules()}
    calls: list[tuple[str, Any, tuple[int, ...]]] = []

    def hook(m: nn.Module, inputs: tuple, output: Any) -> None:
        calls.append((names.get(id(m), type(m).__name__), m, tuple(inputs[0].shape)))

    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, convs)]
    try:
        with torch.inference_mode():
            module(torch.empty(spec.input_dims(), device="meta"))
    finally:
        for h in handles:
            h.remove()
    return calls


def _plain(conv: Any) -> str:
    """Why a conv is not a layer a sweep measures ('' when it is)."""
    k = conv.kernel_size
    if len(k) != 2:
        return f"a {len(k)}-D conv"
    if k[0] != k[1] or conv.stride[0] != conv.stride[1]:
        return "not square"
    if conv.dilation != (1, 1):
        return "dilated"
    same = conv.padding == "same" or conv.padding == (k[0] // 2, k[1] // 2)
    if not same or conv.padding_mode != "zeros":
        return "padding is not 'same'"
    return ""


def conv_layers(spec: ModelSpec, variant: str) -> list[Layer]:
    calls = _conv_calls(spec, variant)
    layers: list[Layer] = []
    i = 0
    while i < len(calls):
        name, conv, shape = calls[i]
        depthwise = conv.groups == conv.in_channels == conv.out_channels and conv.groups > 1
        nxt = calls[i + 1] if i + 1 < len(calls) else None
        pairs = (
            depthwise
            and nxt is not None
            and nxt[1].kernel_size == (1, 1)
            and nxt[1].groups == 1
            and nxt[1].in_channels == conv.out_channels
        )
        why = _plain(conv) or (_plain(nxt[1]) if pairs and nxt else "")
        if why:
            layers.append(Layer("unsupported", None, name, why))
            i += 1
            continue
        n, _, h, w = shape
        if pairs and nxt:
            layers.append(
                Layer(
                    "separable",
                    _spec(spec, n, conv.in_channels, nxt[1].out_channels, h, w, conv),
                    f"{name} + {nxt[0]}",
                )
            )
            i += 2
            continue
        if conv.groups == 1 and conv.kernel_size[0] > 1:
            layers.append(
                Layer(
                    "standard",
                    _spec(spec, n, conv.in_channels, conv.out_channels, h, w, conv),
                    name,
                )
            )
        else:
            kind = "1x1 conv alone" if conv.kernel_size == (1, 1) else f"groups {conv.groups}"
            layers.append(Layer("unsupported", None, name, kind))
        i += 1
    return layers


def _spec(model: ModelSpec, n: int, cin: int, cout: int, h: int, w: int, conv: Any) -> ConvSpec:
    return ConvSpec(
        batch=n,
        in_channels=cin,
        out_channels=cout,
        spatial=(h, w),
        kernel=conv.kernel_size[0],
        stride=conv.stride[0],
        dtype=model.dtype,
        threads=model.threads,
    )


# How an other op is costed: the calibration's module ladder for batch norms and activations
# (every activation as the ReLU it times), its copy ladder for the rest.
OTHER_KINDS = ("batchnorm", "relu", "copy")


@dataclass(frozen=True)
class OtherOps:
    """What the network does besides its convs: each module's traffic in bytes and the kind
    (OTHER_KINDS) it is costed as."""

    traffic: tuple[int, ...]
    kinds: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.traffic)

    @property
    def bytes(self) -> int:
        return sum(self.traffic)

    def counts(self) -> dict[str, int]:
        return {k: self.kinds.count(k) for k in OTHER_KINDS if k in self.kinds}

    def seconds(self, cost: Any) -> dict[str, float]:
        """Seconds per kind, as ``cost`` (an ``apply.OpCost``) prices each op."""
        out = dict.fromkeys(self.counts(), 0.0)
        for kind, traffic in zip(self.kinds, self.traffic, strict=True):
            out[kind] += cost.seconds(traffic, kind)
        return out


def other_ops(spec: ModelSpec, variant: str) -> OtherOps:
    """The traffic of every module that is not a conv and moves data: views and no-ops
    (Flatten, Identity, Dropout at inference) move none and are left out."""
    import torch
    from torch import nn

    from dscbench import ops
    from dscbench.counting import activation_types, network_records

    with torch.device("meta"):
        module = ops.build(spec, variant)
    modules = dict(module.named_modules())
    free = {
        n
        for n, m in modules.items()
        if isinstance(m, (nn.Flatten, nn.Identity, nn.modules.dropout._DropoutNd))
    }

    def kind(name: str) -> str:
        m = modules.get(name)
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return "batchnorm"
        return "relu" if isinstance(m, activation_types()) else "copy"

    records = [
        r
        for r in network_records(spec, variant)
        if r.layer_type not in CONV_TYPES and r.bytes and r.name not in free
    ]
    return OtherOps(tuple(r.bytes for r in records), tuple(kind(r.name) for r in records))
