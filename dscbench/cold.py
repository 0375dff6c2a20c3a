"""Cold-cache timing (``--cache cold``): every timed call reads weights and an input that no
cache level holds.

The method is oneDNN benchdnn's ``--cold-cache``: before timing, the backend builds ``copies``
copies of a variant's weights and input, enough that the other copies together take at least
``FACTOR`` x the device's last-level cache (``last_level_cache``), and each timed call takes
the next copy in turn. Between two uses of one copy the calls read ``FACTOR`` x LLC of other
data, so the copy has left every cache level (1x suffices for a least-recently-used cache;
2x leaves room for the adaptive replacement policies of recent CPUs). Building the copies is
preparation, never a sample. The one step a timed cold call takes that a warm one does not is
taking the next copy from an iterator: ``rotation_cost`` times that step against the same call
without it, and the row records it (``cache_rotation_s``), so its share of the latency is on
record. Each copy's Python objects (its module, its tensors' metadata) are as cold as its data:
that belongs to a cold call, as it does to a layer of a network that ran long ago.

Each variant's ``Prepared.cache`` says how its row was made cold (``Rotation.to_json``): the
method, the copies, the bytes rotated through and the rotation's cost per call.
"""

from __future__ import annotations

import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

FACTOR = 2  # the copies a call does not use take at least FACTOR x the last-level cache
FALLBACK_LLC_BYTES = 1 << 30  # where the machine does not say: as large as any CPU's L3
LLC_ENV = "DSCBENCH_LLC_BYTES"  # a size that overrides what the machine says (bytes)
_SIZE_SUFFIX = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


@dataclass(frozen=True)
class LastLevelCache:
    """The cache a cold call must miss: its size in bytes and where that figure came from."""

    bytes: int
    source: str


@dataclass(frozen=True)
class Rotation:
    """How a variant's timed calls are made cold: ``copies`` copies of ``copy_bytes`` each,
    taken in turn; ``rotation_s`` is what taking the next one adds to a call."""

    copies: int
    copy_bytes: int
    llc: LastLevelCache
    rotation_s: float = math.nan

    @property
    def rotated_bytes(self) -> int:
        return self.copies * self.copy_bytes

    @property
    def method(self) -> str:
        return (
            f"rotate {self.copies} copies of weights and input ({self.rotated_bytes} bytes; "
            f"last-level cache {self.llc.bytes} bytes, {self.llc.source})"
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["llc"] = asdict(self.llc)
        data.update(method=self.method, rotated_bytes=self.rotated_bytes)
        return data


def parse_cache_size(text: str) -> int:
    """sysfs's cache sizes: '307200K' -> 314572800; a plain number is bytes."""
    text = text.strip().upper()
    if text and text[-1] in _SIZE_SUFFIX:
        return int(text[:-1]) * _SIZE_SUFFIX[text[-1]]
    return int(text)


def llc_override() -> LastLevelCache | None:
    """The size ``DSCBENCH_LLC_BYTES`` gives, if set (a VM that reports a wrong cache)."""
    text = os.environ.get(LLC_ENV)
    return LastLevelCache(parse_cache_size(text), LLC_ENV) if text else None


def cpu_last_level_cache(root: Path = Path("/sys/devices/system/cpu")) -> LastLevelCache:
    """The CPU's last-level cache as this process sees it: the highest level's data or unified
    cache of each CPU the process may run on, each distinct instance counted once (two
    sockets: two L3s). ``DSCBENCH_LLC_BYTES`` overrides it; without sysfs, 1 GiB."""
    override = llc_override()
    if override is not None:
        return override
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = [0]
    instances: dict[tuple[int, str], int] = {}  # (level, shared cpus) -> bytes
    for cpu in cpus:
        for index in sorted((root / f"cpu{cpu}" / "cache").glob("index*")):
            try:
                kind = (index / "type").read_text().strip()
                if kind not in ("Unified", "Data"):
                    continue
                level = int((index / "level").read_text())
                shared = (index / "shared_cpu_list").read_text().strip()
                instances[(level, shared)] = parse_cache_size((index / "size").read_text())
            except (OSError, ValueError):
                continue
    if not instances:
        return LastLevelCache(FALLBACK_LLC_BYTES, "not reported by the machine: assumed 1 GiB")
    top = max(level for level, _ in instances)
    sizes = [size for (level, _), size in instances.items() if level == top]
    return LastLevelCache(sum(sizes), f"L{top} x{len(sizes)} from sysfs")


def copies_for(copy_bytes: int, llc: LastLevelCache) -> int:
    """Copies so that all but one take at least FACTOR x the last-level cache (2 at least)."""
    return max(2, math.ceil(FACTOR * llc.bytes / max(1, copy_bytes)) + 1)


def rotating(calls: Sequence[Callable[[], Any]]) -> Callable[[], None]:
    """One callable that runs ``calls`` in turn, one per call, round and round."""
    turn = itertools.cycle(calls)

    def run() -> None:
        next(turn)()

    return run


def rotation_cost(copies: int, calls: int = 10_000, repeats: int = 3) -> float:
    """Seconds a call spends taking the next of ``copies`` copies: the best of ``repeats``
    blocks of ``calls`` rotated empty calls minus the best of the same calls made directly."""
    empty = [_nothing] * copies
    rotated = rotating(empty)

    def direct() -> None:  # a warm variant's run: one call of its one copy
        _nothing()

    def best(fn: Callable[[], None]) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            times.append(time.perf_counter() - start)
        return min(times) / calls

    return max(0.0, best(rotated) - best(direct))


def _nothing() -> None:
    return None
