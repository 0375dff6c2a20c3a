"""The backend protocol: what the sweep needs from a runtime, and nothing more.

A backend turns (spec, variant) into a ``Prepared`` callable that runs one iteration (a forward
pass, or a training step in training mode) on an input it owns, already on its device. Timing,
statistics, parity checks and files stay outside the backend, so a new runtime is one module
here and one entry in the registry.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dscbench.kernels import Found
    from dscbench.measure import Timer
    from dscbench.spec import Spec


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; ``reason`` says why not (package missing, no device...)."""

    available: bool
    reason: str = ""


class CompileFailed(Exception):
    """A compiler (torch.compile, a TensorRT engine build) rejected the model."""

    @classmethod
    def from_error(cls, what: str, exc: BaseException) -> CompileFailed:
        """``what failed: Type: first line of the message``."""
        lines = str(exc).strip().splitlines()
        return cls(f"{what} failed: {type(exc).__name__}: {lines[0] if lines else ''}".rstrip())


@dataclass
class Prepared:
    """One variant ready to time: ``run()`` is one forward pass, output discarded.

    ``context`` wraps every timed block (for example ``torch.inference_mode``), so per-iteration
    calls carry no set-up cost. ``output()`` returns the forward result (a torch tensor or a
    numpy array, on any device) for the parity check. ``module`` and ``example_input`` are the
    torch module and CPU input the weights came from, for counting.
    """

    run: Callable[[], Any]
    output: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    module: Any = None
    example_input: Any = None
    prepare_s: float = 0.0  # seconds building it, compile time excluded
    compile_s: float = math.nan  # seconds compiling (torch.compile, engine builds); NaN if none
    peak_memory_bytes: float = math.nan  # set by the executor from ``memory``
    execution: str = ""  # what actually ran: kernels library, execution providers, options
    # The kernel of each conv one call runs (kernels.py), asked once per first build, untimed;
    # None where the backend cannot say.
    kernels: Callable[[], Found] | None = None
    # Peak bytes of one iteration (memory.py), measured on request: it runs the workload
    # (training: a step, weights restored after); None where the backend cannot see memory.
    memory: Callable[[], float] | None = None
    # --cache cold: how the timed calls were made cold (cold.Rotation.to_json); empty when warm
    cache: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """What every backend class provides (torch_eager.TorchCPU is the reference implementation).

    The class is constructed with the run's BackendOptions; ``availability`` is a classmethod so
    the registry can ask without building one. ``plan`` sees every spec of the sweep once before
    anything runs (onnxruntime sizes its thread pool there) and returns the specs this device
    cannot run, with the reason (bfloat16 on a GPU without it); it raises DscbenchError for a
    sweep it cannot honour at all.
    """

    name: str
    device: str

    @classmethod
    def availability(cls) -> Availability: ...

    def plan(self, specs: list[Spec]) -> dict[Spec, str]: ...

    def device_name(self) -> str: ...

    def versions(self) -> dict[str, str]: ...

    def set_threads(self, threads: int) -> None: ...

    def timer(self) -> Timer: ...

    def prepare(self, spec: Spec, variant: str, seed: int) -> Prepared: ...
