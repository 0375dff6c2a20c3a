"""What a conv layer is to the predictor: numbers from its shape alone, the same for a measured
row and a layer of a network (``counting.closed_form`` gives the MACs and bytes both ways).

A 2-D layer (batch N, C_in -> C_out, H x W, K x K, stride S, 'same' padding, dilation 1, depth
multiplier 1) in ``variant`` becomes: log MACs, log bytes (the roofline's two axes: the time
to compute and the time to move), log C_in, log C_out, log output positions (N x H_out x
W_out), log input positions, K and S; the separable variant adds its depthwise and pointwise
conv's log MACs apart, since the two run at very different rates.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from dscbench.counting import closed_form, conv_macs
from dscbench.spec import ConvSpec

COMMON = (
    "log_macs",
    "log_bytes",
    "log_in_channels",
    "log_out_channels",
    "log_out_positions",
    "log_in_positions",
    "kernel",
    "stride",
)
SEPARABLE = ("log_depthwise_macs", "log_pointwise_macs")


def names(variant: str) -> tuple[str, ...]:
    return COMMON + (SEPARABLE if variant == "separable" else ())


def spec_of(row: Mapping[str, Any]) -> ConvSpec:
    """The ConvSpec of a 2-D inference layer row (or of a dict with the same keys)."""
    return ConvSpec(
        batch=int(row["batch"]),
        in_channels=int(row["in_channels"]),
        out_channels=int(row["out_channels"]),
        spatial=(int(row["height"]), int(row["width"])),
        kernel=int(row["kernel"]),
        stride=int(row["stride"]),
        dtype=str(row["dtype"]),
        threads=int(row["threads"]),
    )


def vector(spec: ConvSpec, variant: str) -> list[float]:
    counts = closed_form(spec, variant)
    out = spec.out_spatial
    positions_out = spec.batch * math.prod(out)
    values = [
        math.log(counts.macs),
        math.log(counts.bytes),
        math.log(spec.in_channels),
        math.log(spec.out_channels),
        math.log(positions_out),
        math.log(spec.batch * math.prod(spec.spatial)),
        float(spec.kernel),
        float(spec.stride),
    ]
    if variant == "separable":
        n, cin, cout, k = spec.batch, spec.in_channels, spec.out_channels, spec.kernel
        values += [
            math.log(conv_macs(n, cin, cin, k, out, groups=cin)),
            math.log(conv_macs(n, cin, cout, 1, out)),
        ]
    return values


def matrix(specs: Iterable[ConvSpec], variant: str) -> np.ndarray:
    rows = [vector(s, variant) for s in specs]
    return np.array(rows, dtype=float).reshape(len(rows), len(names(variant)))
