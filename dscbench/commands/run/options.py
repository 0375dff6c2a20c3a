"""What `dscbench run` was asked besides the sweep itself (RunOptions), and the closed choices
of its options. Light: the command module imports it for ``--help``."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from dscbench.defaults import BETWEEN_RUN_SD, PROCESSES

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
    between_run_sd: float = BETWEEN_RUN_SD  # the rerun interval's between-run component
    breakdown: bool = False  # print each model variant's MACs and params per layer type
    max_configs: int = 2000  # larger sweeps are refused unless raised (--max-configs, --yes)
    shard: Any = None  # shards.Shard: run only the configurations this shard owns
    calibrate: bool = False  # measure the roofline's roofs first (else use cached ones)
    resume: bool = False  # finish the interrupted run in ``output`` (--resume DIR)


def for_instructions(sweep: Any, options: RunOptions) -> None:
    """--measure instructions counts every row once in each worker process: one
    (instructions.PROCESSES) unless --processes asks for more (their agreement is then
    checked), with no canary, no parity check and no fvcore check of the counts: timing
    settings do not apply."""
    import dataclasses

    from dscbench.instructions import PROCESSES

    if options.measure != Measure.instructions.value:
        return
    processes = options.processes if options.processes_given else PROCESSES
    # no parity check either: its float64 reference runs for minutes under valgrind (a 64->64
    # conv at 28x28 with a 7x7 kernel), and a timed run checks the same outputs
    sweep.settings = dataclasses.replace(sweep.settings, rounds=processes, parity=False)
    options.processes = processes
    options.canary = False
    # fvcore's trace of each layer under valgrind costs more than the counting itself; the
    # closed forms it checks are the same in a timed run
    options.verify_counts = False


def default_output() -> Path:
    """results/<UTC time>-<host>: where a run goes when no -o says otherwise."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / f"{stamp}-{socket.gethostname()}"
