"""The timing harness: a swappable timer, warm-up, adaptive block sizes, timed turns.

Model (after torch.utils.benchmark's ``blocked_autorange``): a *block* runs the workload ``n``
times back to back and is timed once; ``n`` is calibrated so a block lasts at least
``block_time`` seconds, far above the clock's resolution and call overhead. One *sample* is a
block's duration divided by ``n`` (seconds per iteration).

The coordinator (runner.py) decides the order of blocks; an executor runs them in *turns*: a
turn is a run of consecutive blocks of one environment, timed by the process that runs them,
so no inter-process message is ever inside a sample. A turn starts with untimed calls: one of
each variant on the first turn of a visit (caches and thread pools hot again), and, when
another worker process ran just before, calls for at least ``switch_settle`` seconds, so that
process's still-spinning threads and its cache footprint do not land in a sample.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Clock = Callable[[], float]


class Timer:
    """Times a block of ``n`` calls with ``clock`` (seconds). ``sync`` runs before the start and
    before the stop reading, which is where a GPU timer waits for the device."""

    def __init__(self, clock: Clock = time.perf_counter, sync: Callable[[], None] | None = None):
        self.clock = clock
        self.sync = sync
        self._overhead: float | None = None

    def time_block(self, fn: Callable[[], Any], n: int) -> float:
        """Seconds taken by ``n`` back-to-back calls of ``fn``."""
        clock, sync = self.clock, self.sync
        if sync is not None:
            sync()
        start = clock()
        for _ in range(n):
            fn()
        if sync is not None:
            sync()
        return clock() - start

    def overhead(self) -> float:
        """Seconds an empty timed block costs (median of 25), measured once per timer."""
        if self._overhead is None:
            costs = sorted(self.time_block(_noop, 0) for _ in range(25))
            self._overhead = costs[len(costs) // 2]
        return self._overhead


def _noop() -> None:
    return None


@dataclass
class HarnessOptions:
    """Knobs of the harness, in seconds. ``block_time`` is the minimum duration of one block;
    ``switch_settle`` the untimed work a turn starts with when another worker process ran just
    before it (0 when one process measures everything)."""

    block_time: float = 0.002
    max_block_iterations: int = 1_000_000
    warmup: float = 0.05
    switch_settle: float = 0.0
    order: str = "env"  # runner.plan_visit: "env" or "block"

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))


@dataclass
class Workload:
    """One variant ready to run: its callable and the context every block runs in."""

    fn: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext

    def block(self, timer: Timer, n: int) -> float:
        with self.context():
            return timer.time_block(self.fn, n)


@dataclass
class BlockCalibration:
    iterations: int  # per block
    per_iteration_s: float  # from the last calibration block
    spent_s: float  # warm-up and calibration, never a sample


def warm_up_and_calibrate(
    work: Workload, timer: Timer, options: HarnessOptions
) -> BlockCalibration:
    """Run the workload for ``options.warmup`` seconds (at least two calls), then grow the block
    size until one block lasts ``options.block_time``. Nothing here becomes a sample."""
    spent = 0.0
    calls = 0
    while calls < 2 or spent < options.warmup:
        spent += work.block(timer, 1)
        calls += 1
    n = 1
    while True:
        t = work.block(timer, n)
        spent += t
        if t >= options.block_time or n >= options.max_block_iterations:
            break
        # Aim 20% past the target so one more step usually suffices; grow at most 100x a step.
        growth = min(100.0, 1.2 * options.block_time / max(t, 1e-9))
        n = min(options.max_block_iterations, max(n + 1, math.ceil(n * growth)))
    return BlockCalibration(n, t / n, spent)


@dataclass
class TurnTimes:
    """What a turn measured: each block's duration (seconds, whole block) in order, and the
    untimed work before them. On an interrupt it rides on the exception as ``partial``."""

    block_s: list[float] = field(default_factory=list)
    untimed_s: float = 0.0


def run_turn(
    workloads: Mapping[str, Workload],
    timer: Timer,
    blocks: Sequence[tuple[str, int]],
    rewarm: Sequence[str] = (),
    settle_s: float = 0.0,
) -> TurnTimes:
    """Untimed calls first (one of each variant in ``rewarm``, then calls of the first block's
    variant until ``settle_s`` seconds have passed), then the timed ``blocks`` of (variant,
    iterations). An exception (an interrupt, a failing kernel) carries what was measured so far
    as ``exc.partial``."""
    out = TurnTimes()
    try:
        for variant in rewarm:
            out.untimed_s += workloads[variant].block(timer, 1)
        if settle_s > 0 and blocks:
            first = workloads[blocks[0][0]]
            settled = 0.0
            while settled < settle_s:
                settled += first.block(timer, 1)
            out.untimed_s += settled
        for variant, n in blocks:
            out.block_s.append(workloads[variant].block(timer, n))
    except BaseException as exc:
        exc.partial = out  # type: ignore[attr-defined]
        raise
    return out
