"""Backend registry: name -> metadata and a lazy factory.

The metadata (device, dtypes, memory formats, factory path) is plain data, so validating a sweep
never imports torch or onnxruntime; a backend's module is imported only to check its
availability or to run it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dscbench.counting import footprint_bytes
from dscbench.errors import BackendUnavailable
from dscbench.spec import MEMORY_FORMATS, MODES, VARIANTS, BackendOptions

if TYPE_CHECKING:
    from dscbench.backends.base import Availability, Backend
    from dscbench.spec import ConvSpec


@dataclass(frozen=True)
class BackendInfo:
    name: str
    device: str  # "cpu" or "cuda"
    dtypes: tuple[str, ...]
    memory_formats: tuple[str, ...]
    factory: str  # "module:callable" returning a Backend, called with BackendOptions
    requires: tuple[str, ...]  # importable packages it needs
    install: str  # what to install when a required package is missing
    modes: tuple[str, ...] = MODES
    # Why it cannot time a cold cache (cold.py), or "" where it can
    no_cold: str = ""
    # Nothing to check beyond an installed package (no device, no compiler): a plan (--dry-run)
    # need not import it, which for torch takes a second.
    installed_is_enough: bool = False


_TORCH = "a torch build for this machine (pip install torch)"
_ORT_CPU = "onnxruntime and onnx: pip install 'dscbench[ort]'"
_ORT_GPU = "onnxruntime-gpu and onnx: pip install 'dscbench[gpu]'"
_TORCH_DTYPES = ("float32", "float64", "bfloat16", "float16")
# onnxruntime's training API (onnxruntime-training) is another package with its own artifacts;
# dscbench times inference sessions only.
INFERENCE_ONLY = ("inference",)
_COMPILED_COLD = "each copy of the weights would be compiled apart"
_ORT_COLD = "an onnxruntime session holds its weights inside it, and dscbench copies torch modules"

REGISTRY: dict[str, BackendInfo] = {
    info.name: info
    for info in (
        BackendInfo(
            "torch-cpu",
            "cpu",
            _TORCH_DTYPES,
            MEMORY_FORMATS,
            "dscbench.backends.torch_eager:TorchCPU",
            ("torch",),
            _TORCH,
            installed_is_enough=True,
        ),
        BackendInfo(
            "torch-cuda",
            "cuda",
            _TORCH_DTYPES,
            MEMORY_FORMATS,
            "dscbench.backends.torch_eager:TorchCUDA",
            ("torch",),
            _TORCH,
        ),
        BackendInfo(
            "torch-compile-cpu",
            "cpu",
            _TORCH_DTYPES,
            MEMORY_FORMATS,
            "dscbench.backends.torch_compile:CompileCPU",
            ("torch",),
            _TORCH,
            no_cold=_COMPILED_COLD,
        ),
        BackendInfo(
            "torch-compile-cuda",
            "cuda",
            _TORCH_DTYPES,
            MEMORY_FORMATS,
            "dscbench.backends.torch_compile:CompileCUDA",
            ("torch",),
            _TORCH,
            no_cold=_COMPILED_COLD,
        ),
        BackendInfo(
            "onnxruntime-cpu",
            "cpu",
            ("float32", "float16"),
            ("contiguous",),  # ORT picks its own internal layout (NCHWc) on the CPU
            "dscbench.backends.ort:OrtCPU",
            ("onnx", "onnxruntime"),
            _ORT_CPU,
            INFERENCE_ONLY,
            no_cold=_ORT_COLD,
        ),
        BackendInfo(
            "onnxruntime-cuda",
            "cuda",
            ("float32", "float16"),
            MEMORY_FORMATS,  # channels_last = the CUDA EP's prefer_nhwc option
            "dscbench.backends.ort:OrtCUDA",
            ("onnx", "onnxruntime"),
            _ORT_GPU,
            INFERENCE_ONLY,
            no_cold=_ORT_COLD,
        ),
        BackendInfo(
            "onnxruntime-tensorrt",
            "cuda",
            ("float32", "float16"),
            ("contiguous",),
            "dscbench.backends.ort:OrtTensorRT",
            ("onnx", "onnxruntime"),
            _ORT_GPU,
            INFERENCE_ONLY,
            no_cold=_ORT_COLD,
        ),
    )
}


def physical_memory_bytes() -> int | None:
    """Installed RAM, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def unsupported(name: str, spec: ConvSpec) -> list[str]:
    """Why backend ``name`` cannot run the (valid) ``spec``, from metadata alone."""
    info = REGISTRY[name]
    problems = []
    if spec.dtype not in info.dtypes:
        problems.append(
            f"dtype {spec.dtype!r} is not supported by {name} (supported: {', '.join(info.dtypes)})"
        )
    if spec.memory_format not in info.memory_formats:
        problems.append(
            f"memory format {spec.memory_format!r} is not supported by {name} "
            f"(supported: {', '.join(info.memory_formats)})"
        )
    if spec.mode not in info.modes:
        trainers = [n for n, i in REGISTRY.items() if spec.mode in i.modes]
        problems.append(
            f"mode {spec.mode!r} is not supported by {name} (it runs "
            f"{', '.join(info.modes)} only; {spec.mode} runs on {', '.join(trainers)})"
        )
    problems += cold_problems(name, spec)
    if info.device == "cpu" and spec.kind == "conv":  # a model's size is known once built
        need = max(footprint_bytes(spec, v) for v in VARIANTS)
        have = physical_memory_bytes()
        if have is not None and need > have:
            problems.append(
                f"needs at least {need / 2**30:.1f} GiB for its tensors; this machine has "
                f"{have / 2**30:.1f} GiB"
            )
    return problems


def cold_problems(name: str, spec: ConvSpec) -> list[str]:
    """Why ``name`` cannot time ``spec`` with a cold cache (cold.py), if it is cold."""
    if spec.cache != "cold":
        return []
    info = REGISTRY[name]
    colds = ", ".join(n for n, i in REGISTRY.items() if not i.no_cold)
    if info.no_cold:
        return [f"--cache cold is not supported by {name}: {info.no_cold} (cold caches run on "
                f"{colds})"]  # fmt: skip
    if spec.mode == "training":
        return ["--cache cold with --mode training: cold caches are timed for inference only "
                "(a training step updates one set of weights)"]  # fmt: skip
    if info.device == "cpu":
        from dscbench import cold

        llc, have = cold.cpu_last_level_cache(), physical_memory_bytes()
        need = len(VARIANTS) * (cold.FACTOR + 1) * llc.bytes
        if have is not None and need > have / 2:
            return [f"--cache cold needs about {need / 2**30:.1f} GiB per worker process for its "
                    f"copies ({cold.FACTOR}x the {llc.bytes / 2**20:.0f} MiB last-level cache, "
                    f"{llc.source}, per variant); this machine has {have / 2**30:.1f} GiB "
                    f"(set {cold.LLC_ENV} if the cache is smaller)"]  # fmt: skip
    return []


def _factory(info: BackendInfo) -> type[Backend]:
    module, _, attr = info.factory.partition(":")
    return getattr(importlib.import_module(module), attr)


def availability(name: str, *, quick: bool = False) -> Availability:
    """Whether backend ``name`` can run here, and if not, why (one line). ``quick`` (a plan,
    not a measurement) skips importing the runtime of a backend that needs nothing else."""
    from dscbench.backends.base import Availability

    info = REGISTRY[name]
    for package in info.requires:
        if importlib.util.find_spec(package) is None:
            return Availability(
                False, f"python package {package!r} is not installed; install {info.install}"
            )
    if quick and info.installed_is_enough:
        return Availability(True)
    try:
        return _factory(info).availability()
    except ImportError as exc:  # a broken install (missing shared library, ABI mismatch)
        return Availability(False, f"cannot import its runtime: {exc}")


def listing() -> list[dict[str, object]]:
    """Every registered backend with its availability (and reason), device name and versions."""
    from dscbench.spec import BackendOptions

    rows: list[dict[str, object]] = []
    for name, info in REGISTRY.items():
        status = availability(name)
        row: dict[str, object] = {
            "name": name,
            "device": info.device,
            "available": status.available,
            "reason": status.reason,
            "device_name": "",
            "versions": {},
            "dtypes": list(info.dtypes),
            "memory_formats": list(info.memory_formats),
        }
        if status.available:
            backend = _factory(info)(BackendOptions())
            row.update(device_name=backend.device_name(), versions=backend.versions())
        rows.append(row)
    return rows


def available_names() -> list[str]:
    """Every backend that can run on this machine, in registry order (what ``all`` means)."""
    return [name for name in REGISTRY if availability(name).available]


def create(name: str, options: BackendOptions | None = None) -> Backend:
    """Instantiate an available backend, or raise BackendUnavailable with the reason."""
    if name not in REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r} (known: {', '.join(REGISTRY)})")
    status = availability(name)
    if not status.available:
        raise BackendUnavailable(f"backend {name!r} is not available: {status.reason}")
    return _factory(REGISTRY[name])(options or BackendOptions())
