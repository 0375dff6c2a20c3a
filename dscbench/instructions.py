"""Instruction counts: ``dscbench run --measure instructions`` runs its workers under valgrind's
callgrind and counts the instructions one call of each variant executes. A count does not move
with the neighbours on a shared machine, which a time does.

How a count is taken (``per_iteration``), in a worker started under
``valgrind --tool=callgrind --collect-atstart=no``:

1. one untimed, uncounted call (first-call work: oneDNN's JIT, weight reorders, caches): the
   call that names the variant's kernels (kernels.py), in every process alike;
2. collection switched on around an empty call, then around N calls of ``fn``, each window
   dumped to its own file (torch's ``_valgrind_toggle`` and ``_valgrind_toggle_and_dump_stats``,
   the client requests ``torch.utils.benchmark``'s ``collect_callgrind`` uses). N comes from
   the layer's MACs (``calls_for``: 1 for a large layer, as many as make about 20 M
   instructions for a small one, at most 200), never from a measured call: what a call
   executes carries a little of the process's history (which Python code the interpreter has
   specialised, which symbols are bound), so a window sized from it held 71 calls in one
   process and 72 in another, and the two averages of one-off work differed by 0.1%;
3. instructions per call = (window N - empty window) / N: what the toggles and the loop cost
   cancels. Python's garbage collector is off meanwhile. The instructions in the memory
   allocators (``ALLOCATORS``, from each function's self cost in the dump) are counted apart.

What it is and is not:

- Instructions executed ("Ir"), summed over every thread. What the memory allocators do
  depends on the heap's state, that is on the process's history: the same 50 calls counted
  0.1-0.3% apart in three processes with different histories, all of it in glibc's malloc
  family and Python's object allocator; without them, 0.00005-0.0009% apart. So the count
  compare judges (``instructions``) leaves the allocators out, and their share is reported
  beside it (``allocator_instructions``; benchmarks/REPORT-kernels.md shows how large a share
  it is). The fork servers of every run start alike (``VARIABLES``). Idle OpenMP threads are
  told not to spin, but with several threads the split of work still varies a little; the
  row's ``instructions_spread`` says by how much its processes differ.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dscbench.errors import DscbenchError

TOOL = "callgrind"
ITERATIONS = 1  # calls in the counted window, at least
MAX_ITERATIONS = 200
# The counted window holds about this many instructions (``calls_for``): a small layer's
# single calls differ a little, which the mean evens out; a large layer is counted in one call
# (a 128->128 conv at 28x28 executes about 25 M instructions under valgrind,
# benchmarks/REPORT-kernels.md).
WINDOW_INSTRUCTIONS = 20_000_000
# The estimate of a call's instructions that sizes the window: a small layer's call costs
# about CALL_OVERHEAD in torch and Python, and AVX2 kernels do 3.5-5 MACs an instruction
# (REPORT-kernels.md's counts: 16->16 at 14x14, 0.45 M MACs, 0.37 M instructions; 128->128 at
# 28x28, 116 M MACs, 25 M).
CALL_OVERHEAD = 250_000
MACS_PER_INSTRUCTION = 4
PROCESSES = 1  # processes that count each row unless --processes says more (then compared)
OUT_DIR_VARIABLE = "DSCBENCH_CALLGRIND_DIR"  # where a worker's dumps go
# The workers' variables: idle OpenMP threads sleep at once instead of spinning (under valgrind,
# which runs one thread at a time, a spinning thread's instructions would be counted and vary
# from run to run), and one hash seed, so that every run's fork server imports alike.
VARIABLES = {"OMP_WAIT_POLICY": "PASSIVE", "GOMP_SPINCOUNT": "0", "PYTHONHASHSEED": "0"}
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


def default_jobs() -> int:
    """Processes that count at once unless --jobs says: one per CPU this process may use
    (valgrind runs a process's threads one at a time, so one core each)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # no affinity on this platform
        return max(1, os.cpu_count() or 1)


def under_valgrind() -> bool:
    """Whether this process runs under valgrind (its preloaded libraries say so)."""
    return "vgpreload" in os.environ.get("LD_PRELOAD", "")


# The memory allocators' functions: glibc's malloc family and CPython's small-object
# allocator. How many instructions they take depends on the heap's state, that is on everything
# the process did before (callgrind dumps of the same 50 calls in three processes: 0.1-0.3%
# apart in total, 0.00005-0.0009% apart without these), so their instructions are reported
# apart (``Count.allocator``) and left out of the count compare judges.
ALLOCATORS = frozenset({
    "malloc", "free", "realloc", "calloc", "posix_memalign", "memalign", "aligned_alloc",
    "valloc", "pvalloc", "_int_malloc", "_int_free", "_int_realloc", "_int_memalign",
    "_mid_memalign", "malloc_consolidate", "sysmalloc", "systrim", "unlink_chunk",
    "unlink_chunk.constprop.0", "alloc_perturb", "tcache_get", "tcache_put", "tcache_init",
    "munmap_chunk", "mremap_chunk", "malloc_trim", "mtrim", "new_heap", "grow_heap",
    "shrink_heap", "heap_trim", "arena_get2", "__libc_malloc", "__libc_free",
    "__libc_realloc", "__libc_calloc", "__libc_memalign", "__posix_memalign",
    "_int_free_merge_chunk", "_int_free_create_chunk", "_int_free_maybe_consolidate",
    "_PyObject_Malloc", "_PyObject_Free", "_PyObject_Realloc", "_PyObject_Calloc",
    "pymalloc_alloc", "pymalloc_free", "pymalloc_realloc", "_PyMem_RawMalloc",
    "_PyMem_RawFree", "_PyMem_RawRealloc", "_PyMem_RawCalloc", "PyMem_Malloc", "PyMem_Free",
    "PyMem_Realloc", "PyMem_Calloc", "PyMem_RawMalloc", "PyMem_RawFree", "PyObject_Malloc",
    "PyObject_Free", "PyObject_Realloc", "PyObject_Calloc",
})  # fmt: skip


@dataclass(frozen=True)
class Count:
    """Instructions of one callgrind dump: ``total`` (its summary), of which ``allocator`` in
    the memory allocators (``ALLOCATORS``); ``compute`` is the rest."""

    total: int
    allocator: int

    @property
    def compute(self) -> int:
        return self.total - self.allocator


def total(text: str) -> int:
    """The instructions a callgrind dump counted (its ``summary:`` or ``totals:`` line; Ir is
    the first event)."""
    match = _TOTAL.search(text)
    if match is None:
        raise ValueError("a callgrind dump without a summary or totals line")
    return int(match.group(1))


def _name(text: str, names: dict[str, str]) -> str:
    """A function name of callgrind's compressed form: ``(id) name`` defines, ``(id)`` reuses."""
    text = text.strip()
    if not text.startswith("("):
        return text
    key, _, rest = text[1:].partition(")")
    if rest.strip():
        names[key] = rest.strip()
    return names.get(key, key)


def self_costs(text: str) -> dict[str, int]:
    """Each function's self cost (instructions in its own code, callees excluded) in a callgrind
    dump: the cost lines of its ``fn=`` block, less the inclusive cost line after each
    ``calls=``."""
    names: dict[str, str] = {}
    costs: dict[str, int] = {}
    fn = ""
    after_call = False
    for line in text.splitlines():
        if line.startswith("fn="):
            fn = _name(line[3:], names)
        elif line.startswith("cfn="):
            _name(line[4:], names)  # defines a name later fn= lines may reuse
        elif line.startswith("calls="):
            after_call = True
        elif line[:1].isdigit() or line[:1] in ("+", "-", "*"):
            parts = line.split()
            if after_call:
                after_call = False
            elif len(parts) > 1:
                costs[fn] = costs.get(fn, 0) + int(parts[1])
    return costs


def count(text: str) -> Count:
    """The ``Count`` of one callgrind dump."""
    costs = self_costs(text)
    return Count(total(text), sum(n for f, n in costs.items() if f in ALLOCATORS))


def _dumps(out_dir: Path, pid: int) -> set[Path]:
    return set(out_dir.glob(f"callgrind.{pid}.*"))


def _window(fn: Callable[[], Any], calls: int, out_dir: Path) -> Count:
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
        return count(dump.read_text(errors="replace"))
    finally:
        dump.unlink()


def calls_for(macs: float) -> int:
    """The calls in a counted window for a layer of ``macs`` multiply-accumulates: enough for
    about WINDOW_INSTRUCTIONS at CALL_OVERHEAD + macs / MACS_PER_INSTRUCTION a call, 1 to
    MAX_ITERATIONS (module doc, step 2: never from a measured call)."""
    estimate = CALL_OVERHEAD + max(0.0, macs) / MACS_PER_INSTRUCTION
    return int(min(MAX_ITERATIONS, max(1, -(-WINDOW_INSTRUCTIONS // estimate))))


def per_iteration(
    fn: Callable[[], Any], calls: int = ITERATIONS, first: Callable[[], Any] | None = None
) -> tuple[float, float]:
    """Instructions one call of ``fn`` executes outside the memory allocators, and in them,
    from a window of ``calls`` calls (module doc, steps 1-3). ``first`` is the uncounted first
    call, ``fn`` unless given (a kernel probe that calls ``fn`` once). Only under valgrind
    (``under_valgrind``) with ``OUT_DIR_VARIABLE`` set."""
    out_dir = Path(os.environ[OUT_DIR_VARIABLE])
    (first or fn)()  # first-call work, not counted
    # Python's collector runs when allocations since the last collection reach a threshold:
    # inside one window in one process and not in another. Off while counting, as timeit does.
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        empty = _window(_nothing, 1, out_dir)  # what the toggles and the loop cost
        more = _window(fn, calls, out_dir)
    finally:
        if enabled:
            gc.enable()
    return (
        (more.compute - empty.compute) / calls,
        (more.allocator - empty.allocator) / calls,
    )


def _nothing() -> None:
    """The call an empty window makes."""
