"""The backend protocol: what the sweep needs from a runtime, and nothing more.

A backend turns (ConvSpec, variant) into a ``Prepared`` callable that runs one forward pass on
an input it owns. Timing, statistics and files stay outside the backend, so adding ONNX Runtime
or CUDA later means one new module here and a line in the registry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from dscbench.measure import Timer
    from dscbench.spec import ConvSpec


@dataclass(frozen=True)
class Availability:
    """Whether a backend can run here; ``reason`` says why not (package missing, no device...)."""

    available: bool
    reason: str = ""


@dataclass
class Prepared:
    """One variant ready to time: ``run()`` is one forward pass, output discarded.

    ``context`` wraps every timed block (for example ``torch.inference_mode``), so per-iteration
    calls carry no set-up cost. ``output()`` returns the forward result for checks.
    """

    run: Callable[[], Any]
    output: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    module: Any = None
    example_input: Any = None
    prepare_s: float = 0.0


class Backend(Protocol):
    """What every backend module provides (see torch_cpu.py for the reference implementation)."""

    name: str
    device: str
    dtypes: tuple[str, ...]

    def availability(self) -> Availability: ...

    def device_name(self) -> str: ...

    def versions(self) -> dict[str, str]: ...

    def set_threads(self, threads: int) -> None: ...

    def default_threads(self) -> int: ...

    def timer(self) -> Timer: ...

    def prepare(self, spec: ConvSpec, variant: str, seed: int) -> Prepared: ...
