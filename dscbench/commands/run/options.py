"""What `dscbench run` was asked besides the sweep itself (RunOptions), the closed choices
of its options, and the checks of flags that do not go together. Light: the command module
imports it for ``--help``."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from dscbench.defaults import BETWEEN_RUN_SD, PROCESSES
from dscbench.errors import SpecError

DEFAULT_MAX_TIME_S = 600.0  # how long --precision may keep adding rounds, unless --max-time


class Twin(str, Enum):
    """Which way a user model's twin is derived (models/twins.py)."""

    separable = "separable"
    dense = "dense"


class StartMethod(str, Enum):
    """How worker processes start (workers/forkserver.py says why fork is the default)."""

    fork = "fork"  # forked from a fork server per environment that has imported torch
    spawn = "spawn"  # a fresh interpreter each


class Measure(str, Enum):
    """What a run measures of each variant."""

    time = "time"  # timed blocks (the default)
    instructions = "instructions"  # instructions per call, workers under valgrind


class Interleave(str, Enum):
    """How a set orders its blocks when several environments are measured."""

    env = "env"
    block = "block"


@dataclass
class RunOptions:
    """Everything `dscbench run` was asked besides the sweep itself."""

    output: Path
    force: bool = False
    dry_run: bool = False
    verify_counts: bool = True
    skip_unavailable: bool = False
    quiet: bool = False
    envs: list[str] = field(default_factory=list)  # --env texts
    precision: float | None = None
    decide: float | None = None  # --decide: add rounds until every row is settled at this
    max_time: float | None = None
    canary: bool = True
    interleave: str = "env"  # runner.plan_visit's order of a set's blocks
    processes: int = PROCESSES  # worker processes per environment, rounds taken in turn
    processes_given: bool = False  # --processes was given (--measure instructions honours it)
    start_method: str = "fork"  # StartMethod: how worker processes start
    measure: str = "time"  # Measure: timed blocks, or instruction counts under valgrind
    jobs: int | None = None  # --measure instructions: processes counting at once (None: CPUs)
    between_run_sd: float = BETWEEN_RUN_SD  # the rerun interval's between-run component
    breakdown: bool = False  # print each model variant's MACs and params per layer type
    max_configs: int = 2000  # larger sweeps are refused unless raised (--max-configs, --yes)
    shard: Any = None  # shards.Shard: run only the configurations this shard owns
    calibrate: bool = False  # measure the roofline's roofs first (else use cached ones)
    resume: bool = False  # finish the interrupted run in ``output`` (--resume DIR)


def for_instructions(sweep: Any, options: RunOptions) -> None:
    """--measure instructions counts every row once in each of ``processes`` worker processes:
    one (instructions.PROCESSES) unless --processes asks for more (their agreement is then
    checked), with ``jobs`` processes per environment counting at once (at least
    ``processes``; counted_rounds.py), no canary, no parity check and no fvcore check of the
    counts: timing settings do not apply."""
    import dataclasses

    from dscbench import instructions
    from dscbench.instructions import PROCESSES

    if options.measure != Measure.instructions.value:
        return
    if any(case.spec.cache == "cold" for case in sweep.cases(1)):
        raise SpecError(
            "--cache cold with --measure instructions: a call's instructions do not depend on "
            "the caches (and copying past the last-level cache under valgrind takes minutes); "
            "count the warm rows"
        )
    processes = options.processes if options.processes_given else PROCESSES
    # no parity check either: its float64 reference runs for minutes under valgrind (a 64->64
    # conv at 28x28 with a 7x7 kernel), and a timed run checks the same outputs
    sweep.settings = dataclasses.replace(sweep.settings, rounds=processes, parity=False)
    options.processes = processes
    options.jobs = max(processes, options.jobs or instructions.default_jobs())
    options.canary = False
    # fvcore's trace of each layer under valgrind costs more than the counting itself; the
    # closed forms it checks are the same in a timed run
    options.verify_counts = False


def default_output() -> Path:
    """results/<UTC time>-<host>: where a run goes when no -o says otherwise."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / f"{stamp}-{socket.gethostname()}"


def check_interleave(interleave: Interleave, *, several_envs: bool) -> None:
    """Refuse --interleave block where there are not several environments to interleave."""
    if interleave is not Interleave.env and not several_envs:
        raise SpecError(
            f"--interleave {interleave.value} orders the blocks of several environments; give "
            "two or more --env"
        )


def check_run_flags(
    precision: float | None,
    decide: float | None,
    max_time: float | None,
    resume: Path | None,
    output: Path | None,
    dry_run: bool,
) -> None:
    """Refuse a --max-time without --precision or --decide to limit, both of those at once,
    and --resume with -o or --dry-run."""
    if max_time is not None and not max_time > 0:
        raise SpecError(f"--max-time {max_time:g}: must be a positive number of seconds")
    if precision is not None and decide is not None:
        raise SpecError("--precision and --decide each add rounds to their own end; give one")
    if max_time is not None and precision is None and decide is None:
        raise SpecError("--max-time limits --precision or --decide; give one of them too")
    if resume is not None and output is not None and Path(output) != Path(resume):
        raise SpecError(f"--resume {resume} writes into that run; leave out -o {output}")
    if resume is not None and dry_run:
        raise SpecError("--resume measures; it cannot be combined with --dry-run")


def check_measure(
    measure: Measure, precision: float | None, decide: float | None, jobs: int | None
) -> None:
    """--measure instructions counts exactly once per process: nothing to add rounds for; and
    only counting shares rows among processes working at once (--jobs)."""
    if jobs is not None and measure is not Measure.instructions:
        raise SpecError(
            f"--jobs {jobs} counts rows at the same time under --measure instructions; timed "
            "blocks never overlap (add --measure instructions, or leave out --jobs)"
        )
    if measure is Measure.instructions and (precision is not None or decide is not None):
        flag = "--precision" if precision is not None else "--decide"
        raise SpecError(
            f"{flag} adds timed rounds; --measure instructions counts exactly (no rounds to add)"
        )
