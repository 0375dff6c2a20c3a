"""torch.compile (TorchDynamo + Inductor) on the CPU and on CUDA.

Compilation happens in ``prepare``, on the first call with the row's input, and its time goes
to ``compile_s``, never into latency. Two details keep the numbers honest:

- Each model is compiled through a function with its *own* code object. Dynamo caches compiled
  graphs per code object and, after ``recompile_limit`` (8) entries, silently falls back to
  eager; with every Conv2d sharing ``Conv2d.forward``, a sweep of more than 8 shapes would have
  timed eager code under the torch-compile name, and guard checks over many cache entries
  would add per-call overhead.
- ``fullgraph=True`` and ``dynamic=False``: a graph break or a dynamic-shape graph is an error
  on the row (status ``compile_error``), not a quietly different program.
"""

from __future__ import annotations

import functools
import itertools
import shutil
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch

from dscbench.backends import cuda
from dscbench.backends.base import Availability, CompileFailed, Prepared
from dscbench.backends.torch_eager import TorchCPU, TorchCUDA

if TYPE_CHECKING:
    from dscbench.spec import Spec

_names = itertools.count()


def own_code(module: torch.nn.Module) -> Callable[[torch.Tensor], Any]:
    """``lambda x: module(x)`` with a fresh code object, so its Dynamo cache is its own."""
    name = f"dscbench_forward_{next(_names)}"
    namespace: dict[str, Any] = {}
    exec(f"def {name}(x):\n    return module(x)\n", {"module": module}, namespace)
    return namespace[name]


def dynamo_problem() -> str | None:
    """Why torch.compile cannot run in this interpreter, or None."""
    if not hasattr(torch, "compile"):
        return f"torch {torch.__version__} has no torch.compile (needs torch >= 2.0)"
    try:
        import torch._dynamo as dynamo
    except ImportError as exc:
        return f"torch._dynamo does not import: {exc}"
    if not dynamo.is_dynamo_supported():
        return "torch.compile does not support this Python version or platform"
    return None


def cxx_compiler() -> str | None:
    """The C++ compiler Inductor's CPU backend would use (it generates and builds C++)."""
    import os

    for candidate in (os.environ.get("CXX"), "g++", "clang++", "c++"):
        if candidate and shutil.which(candidate):
            return candidate
    return None


class CompileCPU(TorchCPU):
    name = "torch-compile-cpu"

    @classmethod
    def availability(cls) -> Availability:
        problem = dynamo_problem()
        if problem is None and cxx_compiler() is None:
            problem = "no C++ compiler found (Inductor's CPU backend needs g++ or clang++; set CXX)"
        return Availability(problem is None, problem or "")

    def versions(self) -> dict[str, str]:
        return dict(super().versions(), compile_mode=self.options.compile_mode)

    def engine(self) -> str:
        return f"torch.compile inductor mode={self.options.compile_mode}"

    def kernel_probe(self, module: torch.nn.Module, fn: Any, x: Any) -> Any:
        """Which convs Inductor left to an ATen kernel, and which backend that ran, from one
        profiled call of the compiled forward (kernels.compiled_conv_kernels)."""
        from dscbench.kernels import compiled_conv_kernels

        return functools.partial(compiled_conv_kernels, module, functools.partial(fn, x))

    def forward(self, module: torch.nn.Module, spec: Spec) -> Any:
        mode = None if self.options.compile_mode == "default" else self.options.compile_mode
        return torch.compile(own_code(module), fullgraph=True, dynamic=False, mode=mode)

    def first_call(self, prepared: Prepared) -> float:
        start = time.perf_counter()
        try:
            with prepared.context():
                prepared.run()  # the first call compiles
            self.synchronize()
        except Exception as exc:
            raise CompileFailed.from_error("torch.compile", exc) from exc
        return time.perf_counter() - start


class CompileCUDA(CompileCPU, TorchCUDA):
    """Inductor on CUDA (Triton kernels; cuDNN for the convolutions themselves)."""

    name = "torch-compile-cuda"
    device = "cuda"

    @classmethod
    def availability(cls) -> Availability:
        status = cuda.cuda_availability()
        if not status.available:
            return status
        problem = dynamo_problem()
        if problem is None:
            import importlib.util

            if importlib.util.find_spec("triton") is None:
                problem = "python package 'triton' is not installed (Inductor on CUDA needs it)"
        return Availability(problem is None, problem or "")
