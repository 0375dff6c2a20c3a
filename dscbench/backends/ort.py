"""ONNX Runtime: the CPU execution provider, and the CUDA and TensorRT EPs of onnxruntime-gpu.

Each variant becomes an ONNX graph built from the torch module's own weights (onnx_graph.py),
then an InferenceSession. Runs go through I/O binding with the input and a preallocated output
already on the EP's device, so no copy and no allocation is timed.

CPU thread pools. ORT gives every session its own intra-op pool whose threads spin after a run.
dscbench alternates the standard and separable sessions block by block, so one session's
spinning threads compete with the other's work: on the 2-core development VM a 32->32 @56 k3
conv measured 127 us alone and 389 us interleaved. Two remedies, chosen by ``ort_threadpool``:

- ``global``: one process-wide pool shared by every session (as torch's OpenMP pool is shared
  by every module): 119 us alone and interleaved. ORT cannot resize or drop it once created and
  then refuses per-session pools, so it needs a single thread count for the whole process.
- ``session``: per-session pools whose threads stop spinning when a run returns
  (``session.force_spinning_stop``): 133 us interleaved, but small layers pay a thread wake-up on
  every run (a 20 us depthwise conv measured 28 us).
- ``auto`` (default): ``global`` when every onnxruntime-cpu configuration of the sweep uses the
  same thread count above 1, else ``session``. One thread needs no pool at all.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import json
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import onnxruntime as ort

from dscbench import ops
from dscbench.backends import onnx_graph
from dscbench.backends.base import Availability, CompileFailed, Prepared
from dscbench.env import cpu_model
from dscbench.errors import DscbenchError
from dscbench.measure import Timer
from dscbench.spec import BackendOptions

if TYPE_CHECKING:
    from dscbench.kernels import Found
    from dscbench.spec import Spec

CPU_EP = "CPUExecutionProvider"
CUDA_EP = "CUDAExecutionProvider"
TENSORRT_EP = "TensorrtExecutionProvider"

OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}

# Size of the process-wide intra-op pool once dscbench created it (ORT cannot change it).
_global_pool_threads: int | None = None


def _set_global_pool(threads: int) -> None:
    global _global_pool_threads
    from onnxruntime.capi import _pybind_state

    _pybind_state.set_global_thread_pool_sizes(threads, 1)
    _global_pool_threads = threads


def choose_threadpool(mode: str, counts: set[int], existing: int | None) -> tuple[str, str]:
    """("global" | "session", note) for the onnxruntime-cpu thread counts of a sweep.

    ``existing`` is the size of a process-wide pool created earlier in this process, if any.
    Raises DscbenchError when the counts cannot be honoured.
    """
    listed = ", ".join(str(c) for c in sorted(counts))
    if existing is not None:
        if counts - {existing}:
            raise DscbenchError(
                f"onnxruntime-cpu: this process already has a {existing}-thread global pool, "
                f"which onnxruntime cannot resize; thread count(s) {listed} need a new process"
            )
        return "global", ""
    if mode == "session":
        return "session", ""
    if mode == "global":
        if len(counts) > 1:
            raise DscbenchError(
                f"--ort-threadpool global: onnxruntime-cpu has one process-wide pool, so the "
                f"sweep needs one thread count for it, not {listed}; run one per process"
            )
        return "global", ""
    if len(counts) == 1 and max(counts) > 1:
        return "global", ""
    note = ""
    if len([c for c in counts if c > 1]) > 1:
        note = (
            f"onnxruntime-cpu runs thread counts {listed} in one process, so it uses "
            "per-session pools that stop spinning after each run; small layers pay a thread "
            "wake-up per run (one thread count per process gets the faster global pool)"
        )
    return "session", note


def _cuda_device_count() -> int:
    """CUDA devices the driver reports, without needing a CUDA build of torch."""
    try:
        import torch

        if torch.cuda.is_available():
            return torch.cuda.device_count()
    except ImportError:
        pass
    for name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll"):
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        count = ctypes.c_int(0)
        if lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0:
            return count.value
        return 0
    return 0


def _ep_availability(provider: str) -> Availability:
    providers = ort.get_available_providers()
    if provider not in providers:
        return Availability(
            False,
            f"onnxruntime {ort.__version__} has no {provider} (it has {', '.join(providers)}); "
            "install onnxruntime-gpu in place of onnxruntime: pip install 'dscbench[gpu]'",
        )
    if _cuda_device_count() == 0:
        return Availability(False, "no CUDA device found (the CUDA driver reports none)")
    return Availability(True)


class OrtCPU:
    name = "onnxruntime-cpu"
    device = "cpu"
    provider = CPU_EP
    ort_device = "cpu"

    def __init__(self, options: BackendOptions | None = None):
        self.options = options or BackendOptions()
        self.threadpool = "global" if _global_pool_threads is not None else "session"
        self.notes: list[str] = []

    @classmethod
    def availability(cls) -> Availability:
        if CPU_EP not in ort.get_available_providers():
            return Availability(False, f"onnxruntime {ort.__version__} has no {CPU_EP}")
        return Availability(True)

    def plan(self, specs: list[Spec]) -> dict[Spec, str]:
        counts = {s.threads for s in specs}
        if not counts:
            return {}
        self.threadpool, note = choose_threadpool(
            self.options.ort_threadpool, counts, _global_pool_threads
        )
        if note:
            self.notes.append(note)
        if self.threadpool == "global" and _global_pool_threads is None:
            _set_global_pool(next(iter(counts)))
        return {}

    def device_name(self) -> str:
        return cpu_model()

    def versions(self) -> dict[str, str]:
        import onnx

        return {
            "onnxruntime": ort.__version__,
            "onnx": onnx.__version__,
            "opset": str(onnx_graph.OPSET),
            "providers": ", ".join(ort.get_available_providers()),
            "graph_optimization": self.options.ort_opt_level,
        }

    def set_threads(self, threads: int) -> None:
        return None  # each session is created with its spec's intra-op thread count

    def timer(self) -> Timer:
        return Timer()  # Run() returns when the EP has finished (it synchronises its stream)

    def session_options(self, spec: Spec) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = OPT_LEVELS[self.options.ort_opt_level]
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3  # errors only: no per-session warnings on the terminal
        if self.threadpool == "global":
            if spec.threads != _global_pool_threads:
                raise RuntimeError(
                    f"the process-wide onnxruntime pool has {_global_pool_threads} threads, "
                    f"this configuration asks for {spec.threads}"
                )
            so.use_per_session_threads = False
        else:
            so.intra_op_num_threads = spec.threads
            so.inter_op_num_threads = 1
            so.add_session_config_entry("session.force_spinning_stop", "1")
        return so

    def providers(self, spec: Spec) -> list[Any]:
        return [CPU_EP]

    def execution(self, session: ort.InferenceSession, spec: Spec) -> str:
        pool = (
            f"global pool {_global_pool_threads}"
            if self.threadpool == "global"
            else f"session pool {spec.threads}"
        )
        return (
            f"onnxruntime {ort.__version__} [{', '.join(session.get_providers())}], "
            f"opt={self.options.ort_opt_level}, {pool}"
        )

    def first_call(self, run: Any) -> float:
        """Compilation the first run does (TensorRT builds its engine there); NaN if none."""
        run()
        return math.nan

    def prepare(self, spec: Spec, variant: str, seed: int) -> Prepared:
        start = time.perf_counter()
        module, x = ops.instance(spec, variant, seed)
        if spec.kind == "model":
            model = onnx_graph.export_network(module, x)
            out_shape = onnx_graph.output_shape(model)
        else:
            model = onnx_graph.build_model(spec, variant, module)
            out_shape = [spec.batch, spec.out_channels, *spec.out_spatial]
        serialized = model.SerializeToString()
        session = ort.InferenceSession(
            serialized,
            self.session_options(spec),
            providers=self.providers(spec),
        )
        in_effect = session.get_providers()
        if not in_effect or in_effect[0] != self.provider:
            raise RuntimeError(
                f"asked onnxruntime for {self.provider} but the session runs on "
                f"{', '.join(in_effect) or 'nothing'}"
            )
        binding = session.io_binding()
        x_value = ort.OrtValue.ortvalue_from_numpy(x.numpy(), self.ort_device, 0)
        y_value = ort.OrtValue.ortvalue_from_shape_and_type(
            out_shape,
            onnx_graph.NUMPY_DTYPES[spec.dtype],
            self.ort_device,
            0,
        )
        binding.bind_ortvalue_input(onnx_graph.INPUT, x_value)
        binding.bind_ortvalue_output(onnx_graph.OUTPUT, y_value)

        def run() -> None:
            session.run_with_iobinding(binding)

        def output() -> np.ndarray:
            run()
            return y_value.numpy()

        compile_s = self.first_call(run)
        compiling = 0.0 if math.isnan(compile_s) else compile_s
        probe = self.kernel_probe(serialized, spec, x.numpy())
        return Prepared(
            run=run,
            output=output,
            module=module,
            example_input=x,
            prepare_s=time.perf_counter() - start - compiling,
            compile_s=compile_s,
            execution=self.execution(session, spec),
            kernels=probe,
        )

    def kernel_probe(self, model: bytes, spec: Spec, x: np.ndarray) -> Callable[[], Found] | None:
        """What names the kernel of each node: a second session, the same options with
        profiling on, run once (kernels.parse_ort_profile)."""
        return functools.partial(self._profiled_kernels, model, spec, x)

    def _profiled_kernels(self, model: bytes, spec: Spec, x: np.ndarray) -> Found:
        from dscbench.kernels import Found, parse_ort_profile

        so = self.session_options(spec)
        so.enable_profiling = True
        with tempfile.TemporaryDirectory() as directory:
            so.profile_file_prefix = str(Path(directory) / "profile")
            session = ort.InferenceSession(model, so, providers=self.providers(spec))
            session.run(None, {onnx_graph.INPUT: x})
            events = json.loads(Path(session.end_profiling()).read_text())
        return Found(parse_ort_profile(events))


class OrtCUDA(OrtCPU):
    """The CUDA EP: cuDNN with exhaustive algorithm search (like cudnn.benchmark), channels_last
    as the EP's ``prefer_nhwc`` layout."""

    name = "onnxruntime-cuda"
    device = "cuda"
    provider = CUDA_EP
    ort_device = "cuda"

    def __init__(self, options: BackendOptions | None = None):
        super().__init__(options)
        self.threadpool = "session"
        if hasattr(ort, "preload_dlls"):  # onnxruntime-gpu >= 1.21: CUDA libraries from wheels
            with contextlib.suppress(Exception):  # best effort; a failing EP shows at prepare
                ort.preload_dlls()

    @classmethod
    def availability(cls) -> Availability:
        return _ep_availability(cls.provider)

    def plan(self, specs: list[Spec]) -> dict[Spec, str]:
        return {}

    def timer(self) -> Timer:
        """Run() synchronises the EP's stream before returning; where torch sees the GPU, the
        timer also waits for the whole device around each block, which costs nothing when
        the stream is already idle and guards against an EP that returns early."""
        import torch

        return Timer(sync=torch.cuda.synchronize if torch.cuda.is_available() else None)

    def device_name(self) -> str:
        try:
            from dscbench.backends.cuda import cuda_device_name

            return cuda_device_name()
        except Exception:
            return "CUDA device 0"

    def session_options(self, spec: Spec) -> ort.SessionOptions:
        so = ort.SessionOptions()
        so.graph_optimization_level = OPT_LEVELS[self.options.ort_opt_level]
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.log_severity_level = 3
        return so

    def providers(self, spec: Spec) -> list[Any]:
        options = {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}
        if spec.memory_format == "channels_last":
            options["prefer_nhwc"] = "1"
        return [(CUDA_EP, options), CPU_EP]

    def execution(self, session: ort.InferenceSession, spec: Spec) -> str:
        layout = ", prefer_nhwc" if spec.memory_format == "channels_last" else ""
        return (
            f"onnxruntime {ort.__version__} [{', '.join(session.get_providers())}], "
            f"opt={self.options.ort_opt_level}, cudnn exhaustive search{layout}"
        )


class OrtTensorRT(OrtCUDA):
    """The TensorRT EP: the engine is built on the first run, which is recorded as compile
    time. float16 rows build an fp16 engine from the float16 graph."""

    name = "onnxruntime-tensorrt"
    provider = TENSORRT_EP

    def providers(self, spec: Spec) -> list[Any]:
        options = {"device_id": "0", "trt_fp16_enable": str(spec.dtype == "float16")}
        return [(TENSORRT_EP, options), *super().providers(spec)]

    def execution(self, session: ort.InferenceSession, spec: Spec) -> str:
        return (
            f"onnxruntime {ort.__version__} [{', '.join(session.get_providers())}], "
            f"opt={self.options.ort_opt_level}, TensorRT engine"
        )

    def kernel_probe(self, model: bytes, spec: Spec, x: np.ndarray) -> Callable[[], Found] | None:
        """None: a profiled second session would build a second engine (minutes)."""
        return None

    def first_call(self, run: Any) -> float:
        start = time.perf_counter()
        try:
            run()
        except Exception as exc:
            raise CompileFailed.from_error("TensorRT engine build", exc) from exc
        return time.perf_counter() - start
