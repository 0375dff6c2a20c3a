"""How to measure: RunSettings (times, rounds, seed) and BackendOptions with their choices."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

# The keys of a spec file's [run] table (RunSettings' fields), and those that are true/false.
RUN_KEYS = ("min_time", "rounds", "warmup", "seed", "parity", "fresh")
BOOL_RUN_KEYS = ("parity", "fresh")


@dataclass
class RunSettings:
    """How long and how to measure. Times in seconds."""

    min_time: float = 1.5  # measured time per variant per case, summed over all rounds
    rounds: int = 5
    warmup: float = 0.05  # warm-up per variant on the first visit of a case
    seed: int = 0
    parity: bool = True  # compare every output with a float64 reference before timing
    # Rebuild each case's variants (fresh tensors) on every visit, so where memory happens to
    # place them is a round-to-round effect the intervals see, not a bias of the whole run
    # (runner.FRESH_BUILD_SHARE says when a build is too costly to repeat).
    fresh: bool = True

    def validate(self) -> list[str]:
        errors = []
        if not (math.isfinite(self.min_time) and self.min_time > 0):
            errors.append(
                f"--min-time {self.min_time}: must be a positive, finite number of seconds"
            )
        if self.rounds < 1:
            errors.append(f"--rounds {self.rounds}: must be at least 1")
        if not (math.isfinite(self.warmup) and self.warmup >= 0):
            errors.append(
                f"--warmup {self.warmup}: must be zero or a positive, finite number of seconds"
            )
        if self.seed < 0:  # numpy's generators take none (a spec file's seed = -1 crashed)
            errors.append(f"--seed {self.seed}: must be zero or positive")
        return errors


class OrtOptLevel(str, Enum):
    """onnxruntime's graph optimisation level (``--ort-opt-level``)."""

    disable = "disable"
    basic = "basic"
    extended = "extended"
    all = "all"


class OrtThreadpool(str, Enum):
    """onnxruntime-cpu's thread pool (``--ort-threadpool``; backends/ort.py)."""

    auto = "auto"
    global_ = "global"
    session = "session"


class CompileMode(str, Enum):
    """torch.compile's mode (``--compile-mode``)."""

    default = "default"
    reduce_overhead = "reduce-overhead"
    max_autotune = "max-autotune"
    max_autotune_no_cudagraphs = "max-autotune-no-cudagraphs"


ORT_OPT_LEVELS = tuple(m.value for m in OrtOptLevel)
ORT_THREADPOOLS = tuple(m.value for m in OrtThreadpool)
COMPILE_MODES = tuple(m.value for m in CompileMode)


@dataclass
class BackendOptions:
    """Settings of particular backends; recorded in run.json with the results."""

    ort_opt_level: str = "all"  # onnxruntime graph optimisation level
    ort_threadpool: str = "auto"  # onnxruntime-cpu thread pool, see backends/ort.py
    compile_mode: str = "default"  # torch.compile mode

    def validate(self) -> list[str]:
        errors = []
        for flag, value, known in (
            ("--ort-opt-level", self.ort_opt_level, ORT_OPT_LEVELS),
            ("--ort-threadpool", self.ort_threadpool, ORT_THREADPOOLS),
            ("--compile-mode", self.compile_mode, COMPILE_MODES),
        ):
            if value not in known:
                errors.append(f"{flag} {value!r}: not one of {', '.join(known)}")
        return errors
