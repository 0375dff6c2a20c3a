"""PyTorch eager on the CPU (the reference backend) and on CUDA."""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import torch

from dscbench import cold, ops
from dscbench.backends import cuda
from dscbench.backends.base import Availability, Prepared
from dscbench.cold import LastLevelCache, Rotation
from dscbench.env import cpu_model
from dscbench.measure import Timer
from dscbench.spec import BackendOptions
from dscbench.training import Trainer

if TYPE_CHECKING:
    from dscbench.kernels import Found
    from dscbench.spec import Spec


class Placed(NamedTuple):
    module: torch.nn.Module
    x: torch.Tensor
    cpu_module: torch.nn.Module
    cpu_x: torch.Tensor


def mkldnn_enabled() -> bool:
    return bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled)


class TorchCPU:
    """Eager torch on the CPU: aten convolution, dispatched to oneDNN (mkldnn) when enabled."""

    name = "torch-cpu"
    device = "cpu"

    def __init__(self, options: BackendOptions | None = None):
        self.options = options or BackendOptions()

    @classmethod
    def availability(cls) -> Availability:
        return Availability(True)

    def plan(self, specs: list[Spec]) -> dict[Spec, str]:
        return {}

    def device_name(self) -> str:
        return cpu_model()

    def versions(self) -> dict[str, str]:
        return {"torch": torch.__version__, "mkldnn": "on" if mkldnn_enabled() else "off"}

    def set_threads(self, threads: int) -> None:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)

    def timer(self) -> Timer:
        return Timer()

    def execution(self, spec: Spec) -> str:
        mkldnn = "on" if mkldnn_enabled() else "off"
        return f"torch {torch.__version__} {self.engine()}, mkldnn {mkldnn}, {spec.memory_format}"

    def engine(self) -> str:
        return "eager"

    def place(self, spec: Spec, variant: str, seed: int) -> Placed:
        """The module and input on this backend's device, in the spec's memory format, plus the
        CPU originals (for counting)."""
        cpu_module, cpu_x = ops.instance(spec, variant, seed)
        module = cpu_module if self.device == "cpu" else copy.deepcopy(cpu_module).to(self.device)
        module, x = ops.to_memory_format(module, cpu_x.to(self.device), spec.memory_format)
        return Placed(module, x, cpu_module, cpu_x)

    def forward(self, module: torch.nn.Module, spec: Spec) -> Any:
        """The callable to time; subclasses compile it."""
        return module

    def synchronize(self) -> None:
        """Wait for queued device work (nothing to wait for on the CPU)."""
        return None

    def first_call(self, prepared: Prepared) -> float:
        """Seconds of compilation the first call costs; NaN where nothing compiles."""
        return math.nan

    def memory_peak(self, run_once: Callable[[], Any], resident: list[torch.Tensor]) -> float:
        """Peak bytes of one iteration (memory.py): tensors alive before it plus the peak of
        what the CPU allocator hands out during it."""
        from dscbench.memory import cpu_peak_bytes

        return cpu_peak_bytes(run_once, resident)

    def kernel_probe(
        self, module: torch.nn.Module, fn: Callable[[Any], Any], x: Any
    ) -> Callable[[], Found] | None:
        """What names the kernel of each conv one forward call runs (kernels.py)."""
        from dscbench.kernels import torch_conv_kernels

        return functools.partial(torch_conv_kernels, module, functools.partial(fn, x))

    def last_level_cache(self) -> LastLevelCache:
        """The cache a cold call must miss: the CPU's last level."""
        return cold.cpu_last_level_cache()

    def prepare(self, spec: Spec, variant: str, seed: int) -> Prepared:
        start = time.perf_counter()
        placed = self.place(spec, variant, seed)
        fn, x = self.forward(placed.module, spec), placed.x
        trainer = None
        rotation: Rotation | None = None
        if spec.mode == "training":
            trainer = Trainer(placed.module, fn, x, spec.optimizer, seed)
            run, output = trainer.step, trainer.output
            context: Callable[[], Any] = contextlib.nullcontext
        else:

            def run() -> None:
                fn(x)

            def output() -> torch.Tensor:
                with torch.inference_mode():
                    return fn(x)

            context = torch.inference_mode
            if spec.cache == "cold":
                run, rotation = self.cold_run(placed, spec)

        prepared = Prepared(
            run=run,
            output=output,
            context=context,
            module=placed.cpu_module,
            example_input=placed.cpu_x,
            execution=self.execution(spec),
        )
        if trainer is None:
            prepared.kernels = self.kernel_probe(placed.module, fn, x)
        prepared.compile_s = self.first_call(prepared)
        if trainer is not None:
            trainer.restore()  # compiling took a step; parity runs at the initial weights
        prepared.memory = functools.partial(self._measure_memory, prepared, placed, trainer)
        compiling = prepared.compile_s if math.isfinite(prepared.compile_s) else 0.0
        if rotation is not None:
            prepared.cache = rotation.to_json()
        prepared.prepare_s = time.perf_counter() - start - compiling
        return prepared

    def cold_run(self, placed: Placed, spec: Spec) -> tuple[Callable[[], None], Rotation]:
        """``run`` for a cold cache (cold.py): copies of the module's weights and the input,
        past FACTOR x the last-level cache, each timed call on the next; the first copy is the
        module and input the parity check and counts see."""
        tensors = [*placed.module.parameters(), *placed.module.buffers(), placed.x]
        copy_bytes = sum(t.numel() * t.element_size() for t in tensors)
        llc = self.last_level_cache()
        copies = cold.copies_for(copy_bytes, llc)
        calls = [functools.partial(self.forward(placed.module, spec), placed.x)]
        for _ in range(copies - 1):
            module = copy.deepcopy(placed.module)
            x = placed.x.clone(memory_format=torch.preserve_format)
            calls.append(functools.partial(self.forward(module, spec), x))
        rotation = Rotation(copies, copy_bytes, llc, cold.rotation_cost(copies))
        return cold.rotating(calls), rotation

    def _measure_memory(self, prepared: Prepared, placed: Placed, trainer: Trainer | None) -> float:
        def once() -> None:
            with prepared.context():
                prepared.run()
            self.synchronize()

        if trainer is None:
            resident = [*placed.module.parameters(), *placed.module.buffers(), placed.x]
            return self.memory_peak(once, resident)
        once()  # optimizer state exists from the first step on: measure a steady step
        try:
            return self.memory_peak(once, trainer.resident())
        finally:
            trainer.restore()


class TorchCUDA(TorchCPU):
    """Eager torch on the current CUDA device: cuDNN with ``cudnn.benchmark`` on (the fastest
    algorithm per shape is chosen during warm-up), timed with CUDA events. Weights and input
    live on the device before timing, so no host-to-device copy is ever timed."""

    name = "torch-cuda"
    device = "cuda"

    def __init__(self, options: BackendOptions | None = None):
        super().__init__(options)
        torch.backends.cudnn.benchmark = True

    @classmethod
    def availability(cls) -> Availability:
        return cuda.cuda_availability()

    def plan(self, specs: list[Spec]) -> dict[Spec, str]:
        if torch.cuda.is_bf16_supported():
            return {}
        reason = f"bfloat16 is not supported by {self.device_name()}"
        return {s: reason for s in specs if s.dtype == "bfloat16"}

    def last_level_cache(self) -> LastLevelCache:
        """The device's L2, the last cache before its memory (DSCBENCH_LLC_BYTES overrides)."""
        override = cold.llc_override()
        if override is not None:
            return override
        size = torch.cuda.get_device_properties(torch.cuda.current_device()).L2_cache_size
        return LastLevelCache(int(size), "the CUDA device's L2")

    def device_name(self) -> str:
        return cuda.cuda_device_name()

    def versions(self) -> dict[str, str]:
        return {
            "torch": torch.__version__,
            "cuda": str(torch.version.cuda),
            "cudnn": str(torch.backends.cudnn.version()),
            "cudnn_benchmark": str(torch.backends.cudnn.benchmark),
            "tf32_conv": str(torch.backends.cudnn.allow_tf32),
        }

    def timer(self) -> Timer:
        return cuda.CudaEventTimer()

    def execution(self, spec: Spec) -> str:
        tf32 = " tf32" if spec.dtype == "float32" and torch.backends.cudnn.allow_tf32 else ""
        return (
            f"torch {torch.__version__} {self.engine()}, cudnn {torch.backends.cudnn.version()} "
            f"benchmark{tf32}, {spec.memory_format}"
        )

    def synchronize(self) -> None:
        torch.cuda.synchronize()

    def memory_peak(self, run_once: Callable[[], Any], resident: list[torch.Tensor]) -> float:
        """The caching allocator's peak during one iteration, weights and input included."""
        return cuda.peak_memory_bytes(run_once, sum(t.numel() * t.element_size() for t in resident))
