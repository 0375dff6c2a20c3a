"""The timing harness: a swappable timer, warm-up, adaptive block sizes, paired interleaving.

Model (after torch.utils.benchmark's ``blocked_autorange``): a *block* runs the workload ``n``
times back to back and is timed once; ``n`` is calibrated so a block lasts at least
``block_time`` seconds, far above the clock's resolution and call overhead. One *sample* is a
block's duration divided by ``n`` (seconds per iteration). The standard and separable variants
of a case are measured as *pairs* of blocks, in random order within each pair, so a slow phase
of a shared machine hits both sides of a pair alike.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
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
    """Knobs of the harness, in seconds. ``block_time`` is the minimum duration of one block."""

    block_time: float = 0.002
    max_block_iterations: int = 1_000_000
    warmup: float = 0.05


@dataclass
class Timed:
    """One variant under measurement: its callable, calibrated block size and raw samples."""

    fn: Callable[[], Any]
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext
    iterations: int = 0  # per block, fixed after calibration
    times: list[float] = field(default_factory=list)  # seconds per iteration, one per block
    rounds: list[int] = field(default_factory=list)
    pairs: list[int] = field(default_factory=list)
    measured_s: float = 0.0  # sum of timed block durations
    warmup_s: float = 0.0  # warm-up and calibration, not part of any sample

    def block(self, timer: Timer, n: int) -> float:
        with self.context():
            return timer.time_block(self.fn, n)

    def timed_block(self, timer: Timer, round_index: int, pair: int) -> float:
        """Time one block of ``iterations`` calls and record it as a sample; return seconds."""
        t = self.block(timer, self.iterations)
        self.times.append(t / self.iterations)
        self.rounds.append(round_index)
        self.pairs.append(pair)
        self.measured_s += t
        return t

    def rebind(self, fn: Callable[[], Any], context: Callable[[], Any]) -> None:
        """Point at a freshly prepared callable (same workload), keeping samples and block size."""
        self.fn, self.context = fn, context


def warm_up_and_calibrate(timed: Timed, timer: Timer, options: HarnessOptions) -> None:
    """Run the workload for ``options.warmup`` seconds (at least two calls), then grow the block
    size until one block lasts ``options.block_time``; the result is stored in
    ``timed.iterations``. Nothing here becomes a sample."""
    spent = 0.0
    calls = 0
    while calls < 2 or spent < options.warmup:
        spent += timed.block(timer, 1)
        calls += 1
    n = 1
    while True:
        t = timed.block(timer, n)
        spent += t
        if t >= options.block_time or n >= options.max_block_iterations:
            break
        # Aim 20% past the target so one more step usually suffices; grow at most 100x a step.
        growth = min(100.0, 1.2 * options.block_time / max(t, 1e-9))
        n = min(options.max_block_iterations, max(n + 1, math.ceil(n * growth)))
    timed.iterations = n
    timed.warmup_s += spent


def rewarm(timed: Timed, timer: Timer) -> None:
    """One untimed call before a later visit, so caches and thread pools are hot again."""
    timed.warmup_s += timed.block(timer, 1)


def measure_pairs(
    a: Timed,
    b: Timed,
    timer: Timer,
    budget_s: float,
    round_index: int,
    coin: Callable[[], float],
) -> None:
    """Alternate blocks of ``a`` and ``b`` until the pairs add up to ``2 * budget_s`` seconds of
    timed blocks (at least one pair), so a visit costs the same whatever the two block lengths.
    ``coin()`` in [0, 1) decides which variant runs first in each pair."""
    spent = 0.0
    pair = len(a.times)
    while True:
        for timed in (a, b) if coin() < 0.5 else (b, a):
            spent += timed.timed_block(timer, round_index, pair)
        pair += 1
        if spent >= 2 * budget_s:
            return


def measure_blocks(timed: Timed, timer: Timer, budget_s: float, round_index: int) -> None:
    """Time blocks of one workload alone until they add up to ``budget_s`` (at least one)."""
    spent = 0.0
    while spent < budget_s or spent == 0.0:
        spent += timed.timed_block(timer, round_index, len(timed.times))
