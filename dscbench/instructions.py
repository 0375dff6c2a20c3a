"""Instruction counts: ``dscbench run --measure instructions`` runs its workers under valgrind's
callgrind and counts the instructions one call of each variant executes. A count does not move
with the neighbours on a shared machine, which a time does.

How a count is taken (``per_iteration``), in a worker started under
``valgrind --tool=callgrind --collect-atstart=no``:

1. one untimed, uncounted call (first-call work: oneDNN's JIT, weight reorders, caches);
2. collection switched on around 1 call, then around 1 + N calls, each window dumped to its own
   file (torch's ``_valgrind_toggle`` and ``_valgrind_toggle_and_dump_stats``, the client
   requests ``torch.utils.benchmark``'s ``collect_callgrind`` uses);
3. instructions per call = (window 2 - window 1) / N: what the toggles and the loop cost
   cancels. Python's garbage collector is off meanwhile.

What it is and is not:

- Instructions executed ("Ir"), summed over every thread. Two processes agree to about 100
  instructions per call (where buffers land changes loop peeling and the allocator's work):
  0.02% of a 16->16 conv at 14x14, less on larger layers. Idle OpenMP threads are told not to
  spin (``QUIET_THREADS``), but with several threads the split of work still varies a little;
  the row's ``instructions_spread`` says by how much between processes.
- valgrind emulates a CPU without AVX-512: torch and oneDNN pick their AVX2 paths under it
  (the row's ``kernels`` column, taken in the same worker, names them; run.json's environment
  records torch's ``cpu_capability``). The count is of that code, not of what runs natively.
- No memory stalls: a depthwise conv, memory-bound, can get slower with the same instruction
  count. Time sees that, counts do not (README, "Three signals").
"""

from __future__ import annotations

import gc
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dscbench.errors import DscbenchError

TOOL = "callgrind"
ITERATIONS = 10  # calls in the second window beyond the first's one
PROCESSES = 2  # processes that count each row: their agreement is checked
OUT_DIR_VARIABLE = "DSCBENCH_CALLGRIND_DIR"  # where a worker's dumps go
# Idle OpenMP threads sleep at once instead of spinning: under valgrind, which runs one thread
# at a time, a spinning thread's instructions would be counted and vary from run to run.
QUIET_THREADS = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0"}
START_TIMEOUT_S = 1800.0  # importing torch under valgrind: about 100 s on a 2-core VM
INSTALL_HINT = "install it with your package manager (apt-get install valgrind)"
_TOTAL = re.compile(r"^(?:summary|totals):\s+(\d+)", re.MULTILINE)


class ValgrindMissing(DscbenchError):
    """--measure instructions without valgrind on the PATH."""


def valgrind_path() -> str | None:
    return shutil.which("valgrind")


def valgrind_version() -> str:
    """``valgrind-3.19.0``, or "" when there is none (or it does not answer)."""
    path = valgrind_path()
    if path is None:
        return ""
    try:
        done = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def require_valgrind() -> str:
    """valgrind's path, or ValgrindMissing (one line, exit 2)."""
    path = valgrind_path()
    if path is None:
        raise ValgrindMissing(
            f"--measure instructions: valgrind is not on the PATH; {INSTALL_HINT}"
        )
    return path


def command_prefix(out_dir: Path) -> list[str]:
    """What runs a worker's interpreter under callgrind, collection off until toggled, dumps
    into ``out_dir`` (one file per process, one more per dump)."""
    return [
        require_valgrind(),
        f"--tool={TOOL}",
        "--collect-atstart=no",
        f"--callgrind-out-file={out_dir}/callgrind.%p",
        "--trace-children=no",
        "--quiet",
    ]


def under_valgrind() -> bool:
    """Whether this process runs under valgrind (its preloaded libraries say so)."""
    return "vgpreload" in os.environ.get("LD_PRELOAD", "")


def total(text: str) -> int:
    """The instructions a callgrind dump counted (its ``summary:`` or ``totals:`` line; Ir is
    the first event)."""
    match = _TOTAL.search(text)
    if match is None:
        raise ValueError("a callgrind dump without a summary or totals line")
    return int(match.group(1))


def _dumps(out_dir: Path, pid: int) -> set[Path]:
    return set(out_dir.glob(f"callgrind.{pid}.*"))


def _window(fn: Callable[[], Any], calls: int, out_dir: Path) -> int:
    """Instructions of ``calls`` calls of ``fn`` with collection on, from the dump it makes."""
    import torch

    pid = os.getpid()
    before = _dumps(out_dir, pid)
    torch._C._valgrind_toggle()
    for _ in range(calls):
        fn()
    torch._C._valgrind_toggle_and_dump_stats()
    (dump,) = _dumps(out_dir, pid) - before
    try:
        return total(dump.read_text(errors="replace"))
    finally:
        dump.unlink()


def per_iteration(fn: Callable[[], Any], iterations: int = ITERATIONS) -> float:
    """Instructions one call of ``fn`` executes (module doc, steps 1-3). Only under valgrind
    (``under_valgrind``) with ``OUT_DIR_VARIABLE`` set."""
    out_dir = Path(os.environ[OUT_DIR_VARIABLE])
    fn()  # first-call work, not counted
    # Python's collector runs when allocations since the last collection reach a threshold:
    # inside one window in one process and not in another (counted 0.1-0.4% apart on a
    # 16->16 conv). Off while counting, as timeit does.
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        one = _window(fn, 1, out_dir)
        more = _window(fn, 1 + iterations, out_dir)
    finally:
        if enabled:
            gc.enable()
    return (more - one) / iterations
