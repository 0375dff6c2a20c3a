"""run.json and the result files of a run being measured: the facts known before measuring
(``run_meta``: settings, environments, tuning variables, shard, calibrations), and the
``Recorder`` every checkpoint calls: it appends to the journal while the sweep runs and
consolidates the result tables when it ends."""

from __future__ import annotations

import itertools
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from dscbench import results, runner
from dscbench.about import ENVIRON_AT_START
from dscbench.commands.run.options import RunOptions
from dscbench.commands.run.planning import Plan, harness_for
from dscbench.env import collect_environment, utc_now
from dscbench.signals import signals_deferred
from dscbench.spec import Case, Sweep, spec_to_json
from dscbench.stats import CONFIDENCE
from dscbench.sweep_state import SweepState

if TYPE_CHECKING:
    from dscbench.commands.run.resume import Previous


def run_meta(sweep: Sweep, options: RunOptions, plan: Plan) -> dict[str, Any]:
    """run.json's facts known before measuring (timings and status are added as it goes)."""
    interleaved = plan.envs != [""]
    workers = plan.measured_environment != {}
    harness = harness_for(sweep, plan, options.interleave)
    meta: dict[str, Any] = {
        "tool": "dscbench",
        "command": sys.argv,
        "source": sweep.source,
        "settings": vars(sweep.settings).copy(),
        "backend_options": vars(sweep.options).copy(),
        "n_configurations": len(plan.cases),
        "configurations_sha256": configurations_digest(plan.cases),
        "shard": shard_meta(options.shard, plan.sweep),
        # Interpreters and variables are settings: --resume refuses a change of either.
        "env_specs": {
            name: {"python": m.get("python"), "variables": m.get("variables", {})}
            for name, m in plan.env_meta.items()
            if name or m
        },
        "variables": tuning_variables(ENVIRON_AT_START),
        "started_at": utc_now(),
        # A coordinator with workers never imports torch: the facts of the process that
        # measured (per environment when there are several) are the workers'.
        "environment": collect_environment(with_torch=not workers),
        "backends": plan.backends,
        "skipped": {
            c.spec.config_id + " " + c.backend + (f" {{{env}}}" if env else ""): reason
            for (c, env), reason in plan.skips.items()
        },
        "notes": plan.notes,
        "harness": {
            **harness.to_json(),
            "processes": len(next(iter(plan.executors.values()))),
            "fresh_build_share": runner.FRESH_BUILD_SHARE,
            "interval": "t interval over processes, each the mean of its rounds (over rounds "
            "in a one-process run); trimmed mean from 10 of them",
            "confidence": CONFIDENCE,
            "between_run_sd": options.between_run_sd,  # the rerun interval's (defaults.py)
            "context": CONTEXT,
            # how each environment's worker processes started (workers/forkserver.py)
            "worker_start": {
                name or "run": m["started"] for name, m in plan.env_meta.items() if "started" in m
            },
            "measure": options.measure,
            **instructions_meta(options),
        },
        "precision": None
        if options.precision is None and options.decide is None
        else {
            "target": options.precision if options.decide is None else options.decide,
            "max_time_s": options.max_time,
            "mode": "precision" if options.decide is None else "decide",
        },
    }
    if interleaved:
        meta["environments"] = plan.env_meta
        meta["environment"]["spin_defaults"] = _spin_defaults()
    elif workers:  # one environment in worker processes: its facts are the run's
        load = meta["environment"].get("load_average")
        meta["environment"] = dict(plan.measured_environment, load_average=load)
    return meta


def instructions_meta(options: RunOptions) -> dict[str, Any]:
    """run.json's ``harness.instructions`` for --measure instructions: how the counts were taken
    (instructions.py); nothing for a timed run."""
    from dscbench import instructions

    if options.measure != "instructions":
        return {}
    return {
        "instructions": {
            "tool": instructions.TOOL,
            "valgrind": instructions.valgrind_version(),
            "iterations": instructions.ITERATIONS,
            "processes": options.processes,  # that counted each row
            "jobs": options.jobs,  # worker processes per environment, counting at once
            "method": "(instructions of N calls - of an empty call) / N after an uncounted "
            "first call that names the kernels, N from the layer's MACs, collection toggled "
            "around the calls only, each configuration in a fresh fork of the fork server, the "
            "memory allocators' apart (allocator_instructions); valgrind emulates no AVX-512 "
            "(torch's cpu_capability in each environment says what the workers saw)",
        }
    }


# Variables that change what is measured (thread pools, instruction sets, allocators, devices):
# recorded with the run, and a --resume under other values is refused.
TUNING_PREFIXES = ("OMP_", "KMP_", "GOMP_", "MKL_", "ONEDNN_", "DNNL_", "OPENBLAS_", "TORCH",
                   "PYTORCH_", "CUDA_", "CUBLAS", "CUDNN", "ORT_", "MALLOC_",
                   "LD_PRELOAD")  # fmt: skip


def tuning_variables(environ: Any) -> dict[str, str]:
    """The variables of ``environ`` that can change what is measured (TUNING_PREFIXES)."""
    return {k: environ[k] for k in sorted(environ) if k.startswith(TUNING_PREFIXES)}


def shard_meta(shard: Any, sweep: list[Case]) -> dict[str, Any] | None:
    """run.json's ``shard``: which one, how the partition was made, and the whole sweep it is
    part of (its configuration count and SHA-256, which merge checks)."""
    if shard is None:
        return None
    from dscbench import shards

    return {
        **shard.to_json(),
        "partition": shards.PARTITION,
        "sweep_configurations": len(sweep),
        "sweep_sha256": configurations_digest(sweep),
    }


def configurations_digest(cases: list[Case]) -> str:
    """SHA-256 of the sweep's configurations (spec and backend of each, in a stable order):
    what --resume checks to know it goes on with the same sweep."""
    import hashlib
    import json

    keys = sorted(
        json.dumps([spec_to_json(c.spec), c.backend], sort_keys=True, default=str) for c in cases
    )
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def calibrations_for(plan: Plan, measure_now: bool, console: Console) -> list[dict[str, Any]]:
    """The roofs for every (device, thread count) the sweep runs on: measured now with
    ``--calibrate`` (and cached), otherwise whatever the cache holds for this machine."""
    from dscbench import calibrate

    wanted = dict.fromkeys(
        (plan.devices[c.backend][0], c.spec.threads)
        for c in plan.cases
        if c.backend in plan.devices
    )
    found = []
    for device, threads in wanted:
        threads = 0 if device == "cuda" else threads
        facts = calibrate.device_facts(device)
        if measure_now:
            console.print(
                f"calibrating {device} at {threads or 'its'} thread(s)...", highlight=False
            )
            result = calibrate.calibrate(device, threads or None)
            calibrate.save(result)
        else:
            result = calibrate.cached(device, threads, facts)
        if result is not None:
            found.append(result.to_json())
    return found


# What a timed block's time depends on besides the conv: what ran just before it. Stated in
# run.json and the README ("How it measures"); benchmarks/REPORT-noise.md measured it.
CONTEXT = (
    "steady state of one process: each visit starts with one untimed call of each variant, "
    "then blocks in sets where a conv runs right after its twin (or another environment's "
    "block), on inputs and weights rebuilt every visit (unless --no-fresh); repeating one conv "
    "alone measured 0.1-1.4% faster (REPORT-noise.md)"
)


def _spin_defaults() -> dict[str, str]:
    from dscbench.workers import SPIN_DEFAULTS

    return dict(SPIN_DEFAULTS)


class Recorder:
    """Checkpoints the run (results.Journal): appends what changed at every checkpoint while
    it runs, and consolidates the result tables when it ends; keeps the final table for
    rendering."""

    def __init__(
        self,
        out_dir: Path,
        plan: Plan,
        meta: dict[str, Any],
        command_started: float,
        previous: Previous | None = None,
    ):
        self.out_dir = out_dir
        self.plan = plan
        self.meta = meta
        self.command_started = command_started
        self.write_s = 0.0
        self.table = None
        self.breakdown = None
        self.canary_describe: dict[str, Any] | None = None
        self.previous = previous
        self.journal: results.Journal | None = None

    def __call__(self, state: SweepState) -> None:
        """Checkpoint; Ctrl-C or SIGTERM arriving meanwhile waits until the files are
        consistent (a second Ctrl-C during the interrupt-time write must not lose them)."""
        with signals_deferred():
            self._write(state)

    def _open(self) -> results.Journal:
        self.meta["host"] = str(self.meta["environment"].get("hostname") or socket.gethostname())
        if self.canary_describe is not None:
            self.meta["canary"] = {"describe": self.canary_describe, "samples": []}
        if self.previous is None:
            return results.Journal.create(self.out_dir, self.meta)
        journal = results.Journal.reopen(self.out_dir)
        journal.unconsolidate(self.meta)
        return journal

    def _write(self, state: SweepState) -> None:
        t0 = time.perf_counter()
        parts: Iterable[dict[str, Any]] = state.take_delta()
        self._update_meta(state)  # before the first manifest: its rounds_done is a count
        if self.journal is None:
            self.journal = self._open()
            if self.previous is not None:  # readers drop the samples of the round redone
                parts = itertools.chain([{"resume_from": state.rounds_done}], parts)
        self.journal.append(parts, self.meta)
        if state.status != "running":
            self._consolidate(state)
        self.write_s += time.perf_counter() - t0

    def _update_meta(self, state: SweepState) -> None:
        p = state.phases
        now = utc_now()
        self.meta.update(
            status=state.status,
            rounds_done=state.rounds_done,
            updated_at=now,
            finished_at=None if state.status == "running" else now,
            timings={
                "wall_s": time.perf_counter() - self.command_started,
                "timed_s": p.timed,
                "warmup_s": p.warmup,
                "prepare_s": p.prepare,
                "compile_s": p.compile,
                "parity_s": p.parity,
                "counting_s": p.counting,
                "kernels_s": p.kernels,
                "instructions_s": p.instructions,
                "canary_s": p.canary,
                "ipc_s": p.ipc,
                "restart_s": p.restart,
                # Workers start in parallel: the slowest one is what the run waited for.
                "worker_start_s": max(
                    (m.get("start_s", 0.0) for m in self.plan.env_meta.values()), default=0.0
                ),
                "write_s": self.write_s,
                "timer_overhead_s": self.plan.overheads,
            },
        )
        if state.precision is not None:
            self.meta["precision"] = asdict(state.precision)
        if state.confirmation is not None:
            self.meta["confirmation"] = state.confirmation
        if state.crashes:
            self.meta["worker_crashes"] = dict(state.crashes)

    def _consolidate(self, state: SweepState) -> None:
        """The final tables and run.json, from the state in memory (the same function reads
        a journal back, so both give the same rows)."""

        table, samples = results.build_tables(state.records(), state.samples_frame(), self.meta)
        self.meta.update(results.derived_meta(state.records(), samples))
        if self.canary_describe is not None:
            self.meta["canary"] = {"describe": self.canary_describe, "samples": state.canary}
        self.breakdown = results.breakdown_table(state.records())
        assert self.journal is not None
        self.journal.consolidate(table, samples, self.meta, self.breakdown)
        self.table, self.samples = table, samples
