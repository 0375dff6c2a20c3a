"""The machine canary: a fixed workload, independent of torch and onnxruntime, timed after every
visit of a sweep, so a run records how fast the *machine* was in each round.

Why: comparing two runs made one after the other, a shift shared by every row is either the
machine changing speed (a noisy neighbour, another CPU frequency) or a regression of every row
(a library upgrade that slows every conv). The rows alone cannot tell these apart; a workload
that the change under test cannot touch can. If the canary moved with the rows, the machine
moved; if the rows moved and the canary did not, the rows themselves changed.

The workload runs on ``threads`` threads at once (as many as the sweep's convolutions use),
started together and timed as one parallel section, so queueing for a busy core counts as it
does for a multi-threaded conv: SHA-256 of a 256 KiB buffer per thread, 8 times (cache-resident
work; hashlib releases the GIL, so the threads really run in parallel), about 1.2 ms.

Version 1 also timed a memory part (a 4 MiB copy there and back). On the development VM it
followed the machine far too eagerly: between back-to-back runs it moved by up to 33% more than
the conv rows did (sd 13.6%), while the compute part stayed within 3.7% of them (sd 1.8%;
benchmarks/REPORT-gate.md). Memory-bandwidth neighbours hit a streaming copy much harder than
the cache-sized convolutions of a sweep, so version 2 times the compute part alone.

Before each sample the canary sleeps ``settle_s`` (10 ms), so the threads of the workload
measured just before it (OpenMP threads spin for several ms after a parallel region) are not
competing with it. A sample costs about 11 ms of wall time, most of it that sleep.
"""

from __future__ import annotations

import hashlib
import math
import os
import platform
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

CANARY_VERSION = 2
PARTS = ("compute",)
HASH_BYTES = 256 << 10
HASH_REPEATS = 8
SETTLE_S = 0.01


def implementation() -> dict[str, Any]:
    """What the canary's speed depends on besides the machine: its own version, Python and
    OpenSSL (the hash). Two runs' canaries are comparable only when these are equal."""
    return {
        "version": CANARY_VERSION,
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
    }


class Canary:
    """``threads`` persistent threads that run one part at a time when ``sample`` asks."""

    def __init__(
        self,
        threads: int,
        *,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.threads = max(1, int(threads))
        self.settle_s = settle_s
        self.clock = clock
        self.sleep = sleep
        rng = np.random.default_rng(0)
        self._hash_buffers = [rng.bytes(HASH_BYTES) for _ in range(self.threads)]
        self._start = threading.Barrier(self.threads + 1)
        self._done = threading.Barrier(self.threads + 1)
        self._stop = False
        self._workers = [
            threading.Thread(target=self._loop, args=(i,), daemon=True, name=f"canary-{i}")
            for i in range(self.threads)
        ]
        for worker in self._workers:
            worker.start()
        for part in PARTS:  # one untimed pass: buffers in place, code paths warm
            self._time(part)

    def describe(self) -> dict[str, Any]:
        return {
            "workload": (
                f"{self.threads} thread(s): sha256 of {HASH_BYTES >> 10} KiB x{HASH_REPEATS}"
            ),
            "threads": self.threads,
            "parts": list(PARTS),
            "settle_s": self.settle_s,
            "implementation": implementation(),
        }

    def sample(self) -> dict[str, float]:
        """Seconds each part took, one parallel section each, after the settle sleep."""
        self.sleep(self.settle_s)
        return {part: self._time(part) for part in PARTS}

    def close(self) -> None:
        self._stop = True
        self._start.abort()
        self._done.abort()

    # -- the threads -------------------------------------------------------------------------

    def _time(self, part: str) -> float:
        t0 = self.clock()
        self._start.wait()
        self._done.wait()
        return self.clock() - t0

    def _loop(self, i: int) -> None:
        while not self._stop:
            try:
                self._start.wait()
                self._compute(i)
                self._done.wait()
            except threading.BrokenBarrierError:
                return

    def _compute(self, i: int) -> None:
        buf = self._hash_buffers[i]
        for _ in range(HASH_REPEATS):
            hashlib.sha256(buf).digest()


def default_threads(thread_counts: Sequence[int]) -> int:
    """The canary's thread count: the most threads any configuration uses, at most the CPUs
    this process may run on."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(max(thread_counts, default=1), cpus))


def index(sample: dict[str, float]) -> float:
    """One number per sample: the geometric mean of the times of the current version's parts,
    seconds (parts a sample has beyond those, from version 1, are ignored)."""
    values = [sample[p] for p in PARTS if p in sample and sample[p] > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else math.nan


def run_estimate(samples: Sequence[dict[str, float]]):
    """How fast the machine was *during this run* (``stats.RoundEstimate``, log seconds): the
    mean over rounds of each round's median sample, with the standard error of that average as
    a measurement of the run's own time.

    The samples are a dense record of the run (one after every visit, at least
    ``runner.CANARY_PER_ROUND`` a round: the extra ones after a visit are back to back, and a
    round cut short by --max-time has fewer), taken between the rows' blocks. What the
    comparison asks is whether the machine the rows ran on was slower in one run than in the
    other, not what a further run would see. So the error is each round median's sampling
    error (its robust within-round spread, 1.4826 x MAD, times sqrt(pi / 2n) for a median,
    where n counts the visits the samples followed: samples taken back to back after one visit
    are one moment), averaged over the rounds, with the within-round degrees of freedom. How
    far the rows and the canary drift apart while only the machine changes is a separate term
    (compare/canary_check.py ``tracking_variance``, at least compare/decide.py
    ``CANARY_TRACKING_SD``). Version 1 of this estimate treated the rounds as a sample of
    machine states (their spread over rounds, n - 1 degrees of freedom), which on a busy
    machine made the interval 60% wide and the canary unable to tell a machine from a
    regression. A round of one visit borrows the other rounds' pooled spread; with no round of
    two visits, the spread over rounds is all there is. None without samples."""
    from dscbench import stats

    by_round = _logs_by_round(samples)
    if not by_round:
        return None
    units = _visits_by_round(samples)
    centers = np.array([np.median(x) for x in by_round.values()])
    within = [(robust_sd(x), units[r]) for r, x in by_round.items() if units[r] >= 2]
    if not within:
        return stats.estimate(centers)
    dof = sum(n - 1 for _, n in within)
    pooled = math.sqrt(sum((n - 1) * sd**2 for sd, n in within) / dof)
    se2 = (
        sum(
            (math.pi / 2) * (robust_sd(x) if units[r] >= 2 else pooled) ** 2 / units[r]
            for r, x in by_round.items()
        )
        / len(by_round) ** 2
    )
    return stats.RoundEstimate(float(centers.mean()), se2, float(dof), len(by_round))


def _visits_by_round(samples: Sequence[dict[str, float]]) -> dict[int, int]:
    """round -> how many independent moments its samples come from: the visits they followed
    (the samples taken back to back after one visit are one), or, for samples that do not
    record their visit (runs before this was recorded), each sample on its own."""
    seen: dict[int, set] = {}
    for i, s in enumerate(samples):
        seen.setdefault(int(s["round"]), set()).add(s.get("visit", ("sample", i)))
    return {r: len(v) for r, v in seen.items()}


def robust_sd(x: np.ndarray) -> float:
    """The normal-consistent median absolute deviation (one slow sample, a preempted thread,
    does not widen it)."""
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def _logs_by_round(
    samples: Sequence[dict[str, float]], part: str | None = None
) -> dict[int, np.ndarray]:
    """round -> logs of its samples (of ``part``, or of the index), rounds in order."""
    by_round: dict[int, list[float]] = {}
    for s in samples:
        value = index(s) if part is None else s.get(part, math.nan)
        if math.isfinite(value) and value > 0:
            by_round.setdefault(int(s["round"]), []).append(math.log(value))
    return {r: np.array(v) for r, v in sorted(by_round.items())}


def per_round(samples: Sequence[dict[str, float]], part: str | None = None) -> dict[int, float]:
    """round -> log of the median of that round's samples (of ``part``, or of the index)."""
    return {r: float(np.median(x)) for r, x in _logs_by_round(samples, part).items()}
