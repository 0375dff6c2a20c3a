"""Peak memory of one iteration on the CPU, from torch's CPU allocator.

``cpu_peak_bytes`` = the bytes of the tensors alive before the iteration (weights, buffers,
input; in training also the target and optimizer state), each storage counted once, plus the
peak of what torch's CPU allocator hands out during one call, as the torch profiler's memory
events report it (``profile_memory=True``): every allocation and free through c10's CPU
allocator, so temporaries inside kernels (oneDNN weight reorders, im2col buffers, Inductor's
buffers) are seen too. Memory taken outside torch's allocator (a BLAS library's own buffers,
thread stacks, the Python heap) is not. It is deterministic for a given build, shape and thread
count, unlike an RSS delta, which the allocator's caching and the OS's paging blur.

On CUDA the caching allocator's peak serves (backends/cuda.py).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any


def resident_bytes(tensors: Iterable[Any]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (views and shared weights once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if t is None or t.device.type == "meta":
            continue
        storage = t.untyped_storage()
        seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The profiler's C++ side logs its start and stop on file descriptor 2; keep them off the
    user's terminal."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def allocation_peak(run_once: Callable[[], Any]) -> int:
    """Peak of (allocated - freed) bytes through torch's CPU allocator during ``run_once``."""
    from torch.profiler import ProfilerActivity, profile

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_once()
    events = [e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"]
    events.sort(key=lambda e: e.start_ns())
    current = peak = 0
    for event in events:
        current += event.nbytes()
        peak = max(peak, current)
    return peak


def cpu_peak_bytes(run_once: Callable[[], Any], resident: Iterable[Any]) -> float:
    return float(resident_bytes(resident) + allocation_peak(run_once))
