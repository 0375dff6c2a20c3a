"""CUDA pieces shared by the GPU backends: availability, the event timer, peak memory.

Everything takes its torch handles as arguments or imports torch inside functions, so the unit
tests drive these paths with fakes on machines without a GPU.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from dscbench.backends.base import Availability
from dscbench.measure import Timer


def cuda_availability() -> Availability:
    """Whether torch sees a CUDA device, and if not, the most useful reason."""
    import torch

    if torch.version.cuda is None and getattr(torch.version, "hip", None) is None:
        return Availability(False, f"torch {torch.__version__} is a CPU-only build")
    if not torch.cuda.is_available():
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
        return Availability(
            False,
            f"no CUDA device visible to torch {torch.__version__} "
            f"(built for CUDA {torch.version.cuda}){where}",
        )
    return Availability(True)


def cuda_device_name() -> str:
    import torch

    index = torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return f"{props.name} ({props.total_memory / 2**30:.0f} GiB, cuda:{index})"


class CudaEventTimer(Timer):
    """Times a block with CUDA events recorded on the current stream around the ``n`` calls.

    The device is synchronised before the start event, so earlier work does not leak into the
    block, and the end event is waited on before reading: the result is the device time of the
    block, which includes any gaps where the GPU waited for the host to launch kernels (that is
    real latency). ``event`` and ``synchronize`` default to torch.cuda's; tests pass fakes.
    """

    def __init__(
        self,
        event: Callable[[], Any] | None = None,
        synchronize: Callable[[], None] | None = None,
    ):
        super().__init__()
        if event is None or synchronize is None:
            import torch

            event = event or (lambda: torch.cuda.Event(enable_timing=True))
            synchronize = synchronize or torch.cuda.synchronize
        self.event = event
        self.sync = synchronize

    def time_block(self, fn: Callable[[], Any], n: int) -> float:
        start, end = self.event(), self.event()
        self.sync()
        start.record()
        for _ in range(n):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000.0  # elapsed_time is in milliseconds


def peak_memory_bytes(run_once: Callable[[], Any], resident_bytes: int) -> float:
    """Peak bytes of one call of ``run_once``: ``resident_bytes`` (its weights and input) plus
    the most torch's CUDA caching allocator held during the call beyond what was allocated
    before it (the other variant's tensors, a cold variant's other copies: not this call's)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    before = torch.cuda.memory_allocated()
    run_once()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before + resident_bytes
    return float(peak) if peak > 0 else math.nan
