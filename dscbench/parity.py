"""Output parity: does a backend compute the same convolution as a float64 reference?

The reference runs the *same* weights and input (the backend's dtype values, widened exactly to
float64) through torch on the CPU in float64, so the difference is the backend's arithmetic
error alone. Two numbers describe it:

- ``max_abs_err`` = max |out - ref| over all output elements;
- ``max_rel_err`` = max_abs_err / max |ref|: relative to the output's scale. An element-wise
  relative error is meaningless where the reference is near zero, and sums of products of
  normally distributed values cross zero often.

A row passes when ``max_rel_err <= TOLERANCES[dtype]``. The tolerances sit well above the
rounding error of each format for the reductions dscbench runs (up to K*K*C_in terms) and far
below what any real mistake produces (a wrong weight, padding, stride, layout or group count
gives errors of order 1):

- float64 1e-9; float32 1e-3 (float32 convolutions on NVIDIA GPUs default to TF32, which keeps
  10 mantissa bits, unit roundoff ~4.9e-4); float16 1e-2 (unit roundoff 4.9e-4, the separable
  variant rounds its intermediate tensor); bfloat16 5e-2 (8 mantissa bits, unit roundoff 3.9e-3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from dscbench.spec import ConvSpec

TOLERANCES = {"float64": 1e-9, "float32": 1e-3, "float16": 1e-2, "bfloat16": 5e-2}


@dataclass(frozen=True)
class Parity:
    max_abs_err: float
    max_rel_err: float
    tolerance: float
    problem: str = ""  # why it failed, "" when it passed

    @property
    def passed(self) -> bool:
        return not self.problem


def reference_output(spec: ConvSpec, variant: str, seed: int) -> np.ndarray:
    """The float64 CPU output of (spec, variant, seed): same weights and input as every
    backend gets from ``ops.instance``, widened to float64 before computing."""
    import torch

    from dscbench import ops
    from dscbench.training import no_dropout

    module, x = ops.instance(spec, variant, seed)
    with torch.inference_mode(), no_dropout(module):  # training rows: training.py's parity
        return module.to(torch.float64)(x.to(torch.float64)).numpy()


def as_float64(output: Any) -> np.ndarray:
    """A backend's output (torch tensor on any device, numpy array, OrtValue) as float64 numpy."""
    if hasattr(output, "detach"):  # a torch tensor, possibly on a GPU or in bfloat16
        import torch

        return output.detach().to("cpu", torch.float64).numpy()
    if hasattr(output, "numpy") and not isinstance(output, np.ndarray):  # OrtValue
        output = output.numpy()
    return np.asarray(output, dtype=np.float64)


def check(output: Any, reference: np.ndarray, dtype: str) -> Parity:
    """Compare ``output`` with ``reference`` at the tolerance of ``dtype``."""
    tolerance = TOLERANCES[dtype]
    out = as_float64(output)
    if out.shape != reference.shape:
        return Parity(
            math.inf,
            math.inf,
            tolerance,
            f"output shape {tuple(out.shape)} differs from the reference {tuple(reference.shape)}",
        )
    if not np.all(np.isfinite(out)):
        bad = int(np.size(out) - np.count_nonzero(np.isfinite(out)))
        return Parity(math.inf, math.inf, tolerance, f"{bad} output value(s) are NaN or infinite")
    abs_err = float(np.max(np.abs(out - reference))) if out.size else 0.0
    scale = float(np.max(np.abs(reference))) if reference.size else 0.0
    rel_err = abs_err / scale if scale > 0 else (0.0 if abs_err == 0 else math.inf)
    problem = ""
    if not rel_err <= tolerance:
        problem = (
            f"max relative error {rel_err:.3g} exceeds the {dtype} tolerance {tolerance:g} "
            f"(max abs error {abs_err:.3g})"
        )
    return Parity(abs_err, rel_err, tolerance, problem)
