"""Backend registry: name -> metadata and a lazy factory.

The metadata (device, dtypes, module path) is plain data, so validating a sweep or listing
backends never imports torch; the backend module is imported only when the sweep runs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dscbench.counting import footprint_bytes
from dscbench.errors import BackendUnavailable
from dscbench.spec import SUPPORTED_MODES, VARIANTS, spec_problems

if TYPE_CHECKING:
    from dscbench.backends.base import Availability, Backend
    from dscbench.spec import ConvSpec


@dataclass(frozen=True)
class BackendInfo:
    name: str
    device: str
    dtypes: tuple[str, ...]
    modes: tuple[str, ...]
    module: str  # dotted path of the module defining ``create() -> Backend``
    requires: tuple[str, ...]  # importable packages it needs


REGISTRY: dict[str, BackendInfo] = {
    "torch-cpu": BackendInfo(
        name="torch-cpu",
        device="cpu",
        dtypes=("float32", "float64", "bfloat16", "float16"),
        modes=SUPPORTED_MODES,
        module="dscbench.backends.torch_cpu",
        requires=("torch",),
    ),
}


def physical_memory_bytes() -> int | None:
    """Installed RAM, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def backend_problems(name: str, spec: ConvSpec) -> list[str]:
    """What stops ``spec`` from running on backend ``name``, without importing the backend."""
    info = REGISTRY.get(name)
    if info is None:
        return [f"unknown backend {name!r} (known: {', '.join(REGISTRY)})"]
    problems = []
    if info.device == "cpu" and not spec_problems(spec):  # sizes are only meaningful if valid
        need = max(footprint_bytes(spec, v) for v in VARIANTS)
        have = physical_memory_bytes()
        if have is not None and need > have:
            problems.append(
                f"needs at least {need / 2**30:.1f} GiB for its tensors; this machine has "
                f"{have / 2**30:.1f} GiB"
            )
    if spec.dtype not in info.dtypes:
        problems.append(
            f"dtype {spec.dtype!r} is not supported by {name} (supported: {', '.join(info.dtypes)})"
        )
    return problems


def availability(name: str) -> Availability:
    from dscbench.backends.base import Availability

    info = REGISTRY[name]
    for package in info.requires:
        if importlib.util.find_spec(package) is None:
            return Availability(False, f"python package {package!r} is not installed")
    return _instantiate(info).availability()


def _instantiate(info: BackendInfo) -> Backend:
    return importlib.import_module(info.module).create()


def create(name: str) -> Backend:
    """Instantiate an available backend, or raise BackendUnavailable with the reason."""
    if name not in REGISTRY:
        raise BackendUnavailable(f"unknown backend {name!r} (known: {', '.join(REGISTRY)})")
    status = availability(name)
    if not status.available:
        raise BackendUnavailable(f"backend {name!r} is not available: {status.reason}")
    return _instantiate(REGISTRY[name])
