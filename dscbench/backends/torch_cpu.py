"""PyTorch eager on the CPU: the reference backend."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import torch

from dscbench import ops
from dscbench.backends.base import Availability, Prepared
from dscbench.env import cpu_model
from dscbench.measure import Timer

if TYPE_CHECKING:
    from dscbench.spec import ConvSpec


class TorchCPU:
    name = "torch-cpu"
    device = "cpu"
    dtypes = ("float32", "float64", "bfloat16", "float16")

    def availability(self) -> Availability:
        return Availability(True)

    def device_name(self) -> str:
        return cpu_model()

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "mkldnn": str(torch.backends.mkldnn.is_available())}

    def default_threads(self) -> int:
        return torch.get_num_threads()

    def set_threads(self, threads: int) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def timer(self) -> Timer:
        return Timer()

    def prepare(self, spec: ConvSpec, variant: str, seed: int) -> Prepared:
        start = time.perf_counter()
        module = ops.build(spec, variant, seed)
        x = ops.make_input(spec, seed + 1)

        def run() -> None:
            module(x)

        def output() -> torch.Tensor:
            with torch.inference_mode():
                return module(x)

        return Prepared(
            run=run,
            output=output,
            context=torch.inference_mode,
            module=module,
            example_input=x,
            prepare_s=time.perf_counter() - start,
        )


def create() -> TorchCPU:
    return TorchCPU()
