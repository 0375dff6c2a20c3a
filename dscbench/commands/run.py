"""`dscbench run`: plan the sweep, start its environments, measure, write result files after
every round, render, and return the exit code."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from dscbench import backends as registry
from dscbench import counting, results, runner
from dscbench import lock as run_lock
from dscbench.env import collect_environment, utc_now
from dscbench.errors import BackendUnavailable, ResultsError, SpecError
from dscbench.export.console import print_breakdown, render_run
from dscbench.export.units import format_count, format_ratio
from dscbench.measure import HarnessOptions
from dscbench.plan import validate_cases
from dscbench.signals import signal_handlers
from dscbench.spec import ALL_BACKENDS, Case, Sweep, spec_to_json
from dscbench.stats import CONFIDENCE
from dscbench.status import Status
from dscbench.workers import Executor, LocalExecutor, user_model_problems

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130
# Interleaved environments: blocks of at least 10 ms, and 0.3 ms of untimed calls when a worker
# takes over from another (workers spin about 0.3 ms, workers.SPIN_DEFAULTS); the canary needs
# only a short settle, as the coordinator runs no OpenMP threads of its own.
# benchmarks/REPORT-gate.md measures what these choices cost.
ENV_BLOCK_TIME_S = 0.010
ENV_SWITCH_SETTLE_S = 0.0003
ENV_CANARY_SETTLE_S = 0.002


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
    max_time: float | None = None
    canary: bool = True
    interleave: str = "env"  # runner.plan_visit's order of a set's blocks
    processes: int = 3  # worker processes per environment, rounds taken in turn
    breakdown: bool = False  # print each model variant's MACs and params per layer type
    max_configs: int = 2000  # larger sweeps are refused unless raised (--max-configs, --yes)
    shard: Any = None  # shards.Shard: run only the configurations this shard owns
    calibrate: bool = False  # measure the roofline's roofs first (else use cached ones)
    resume: bool = False  # finish the interrupted run in ``output`` (--resume DIR)


@dataclass
class Plan:
    """What will run: cases, the (case, environment) pairs that will not and why, executors,
    their facts, and the notes to print before measuring."""

    cases: list[Case]
    envs: list[str]
    executors: dict[str, list[Executor]]  # per environment, its processes
    skips: dict[tuple[Case, str], str] = field(default_factory=dict)
    measured_environment: dict[str, Any] = field(default_factory=dict)  # a worker's facts
    env_meta: dict[str, dict[str, Any]] = field(default_factory=dict)
    backends: dict[str, dict[str, Any]] = field(default_factory=dict)  # first env's facts
    devices: dict[str, tuple[str, str]] = field(default_factory=dict)
    overheads: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    sweep: list[Case] = field(default_factory=list)  # the whole sweep's cases (all shards)

    def close(self) -> None:
        for pool in self.executors.values():
            for executor in pool:
                executor.close()


def execute(sweep: Sweep, options: RunOptions, *, console: Console, command_started: float) -> int:
    """Run the sweep; 0 all measured (or skipped on request), 1 some failed, 130 interrupted."""
    from dscbench import workers as environments

    env_specs = environments.parse_envs(options.envs)
    check_size(sweep, options.max_configs)
    if options.dry_run:
        expansion = expand_cases(sweep, None, shard=options.shard)
        cases = expansion.cases
        notes = dry_run_notes(expansion, options)
        problems = user_model_problems([c.spec for c in cases])  # as a real run checks them
        if problems:
            raise SpecError("\n".join(dict.fromkeys(problems)))
        if len(cases) > DRY_RUN_TABLE_ROWS:
            print_plan_lines(cases, notes, console)
        else:
            console.print(plan_table(sweep, cases, notes))
        if options.breakdown:
            print_breakdown(dry_run_breakdown(cases), console)
        missing = unavailable_backends(cases)
        if missing and not options.skip_unavailable:  # a real run stops here too
            raise BackendUnavailable(
                "\n".join(f"backend {n!r} is not available: {r}" for n, r in missing.items())
            )
        return EXIT_OK
    directory = Path(options.output)
    existed = directory.exists()
    if not options.resume:  # the lock lives in the directory: make it (removed on failure)
        results.check_output_dir(directory, options.force)
        directory.mkdir(parents=True, exist_ok=True)
    elif not directory.is_dir():
        raise ResultsError(
            f"--resume {directory}: no {results.RUN_JSON}: not a dscbench run directory"
        )
    try:
        with run_lock.hold(directory, what="--resume" if options.resume else "--output") as notes:
            return measure_locked(sweep, options, env_specs, console, command_started, notes)
    finally:
        if not existed and directory.is_dir() and not any(directory.iterdir()):
            directory.rmdir()  # nothing was written: leave no empty directory behind


def measure_planned(
    sweep: Sweep,
    options: RunOptions,
    plan: Plan,
    console: Console,
    command_started: float,
    previous: Previous | None,
) -> tuple[Recorder, runner.SweepState] | None:
    """Record run.json's facts, print the notes and estimate, and measure; None when the
    sweep was interrupted (what it measured is written)."""
    meta = run_meta(sweep, options, plan)
    if previous is not None:
        meta = resumed_meta(previous, meta)
    for note in plan.notes:
        console.print(Text(f"note: {note}", style="yellow"), highlight=False)
    if not options.quiet:
        for line in estimate_lines(sweep, plan, previous):
            console.print(line, highlight=False)
    if previous is None:
        meta["calibration"] = calibrations_for(plan, options.calibrate, console)
    recorder = Recorder(Path(options.output), plan, meta, command_started, previous)
    state = measure(sweep, options, plan, recorder, console, previous)
    return None if state is None else (recorder, state)


def measure_locked(
    sweep: Sweep,
    options: RunOptions,
    env_specs: list,
    console: Console,
    command_started: float,
    lock_notes: list[str],
) -> int:
    """execute's work once the run directory is held."""
    previous = resume_point(Path(options.output)) if options.resume else None
    out_dir = Path(options.output)  # execute checked it before making it and taking its lock
    logs = out_dir / "workers"
    had_logs = logs.exists()
    # From here to the end, the first Ctrl-C or SIGTERM stops the run (workers included, what
    # was measured saved) and any further one is ignored; while workers start too.
    with _interrupt_once():
        try:
            plan = start(sweep, options, env_specs, out_dir)  # workers' logs go into out_dir
        except BaseException as exc:
            if not had_logs:
                shutil.rmtree(logs, ignore_errors=True)
            if not isinstance(exc, KeyboardInterrupt):
                raise
            console.print(Text("interrupted while starting: nothing was measured", "yellow"))
            return EXIT_INTERRUPTED
        plan.notes[:0] = lock_notes
        try:
            state = measure_planned(sweep, options, plan, console, command_started, previous)
        except KeyboardInterrupt:  # before the sweep began (the sweep handles its own)
            console.print(Text("interrupted before measuring: nothing was measured", "yellow"))
            return EXIT_INTERRUPTED
        finally:
            with sigint_ignored():  # stopping the workers after a Ctrl-C is not to be cut short
                plan.close()
    if state is None:
        return EXIT_INTERRUPTED
    recorder, state = state
    if state is None:
        return EXIT_INTERRUPTED
    render(recorder, state, options, console)
    failed = [
        e
        for s in state.cases
        for e in s.envs.values()
        if e.status not in (Status.OK, Status.SKIPPED)
    ]
    return EXIT_SOME_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------------------------------
# Planning
# ---------------------------------------------------------------------------------------------


def torch_default_threads() -> int:
    """The intra-op thread count torch would use, which is the default of the threads axis."""
    try:
        import torch
    except ImportError:
        return 1  # creating the backend reports the missing package
    return torch.get_num_threads()


@dataclass
class Expansion:
    """A sweep's configurations: all of them, and those this process runs (its shard's)."""

    sweep: list[Case]
    cases: list[Case]

    def validate(self, skip_unsupported: bool) -> dict[Case, str]:
        """validate_cases over the whole sweep (every shard refuses the same bad sweep, and
        an empty shard of a sweep that is not empty is valid); the skips of this shard's."""
        skips = validate_cases(self.sweep, skip_unsupported=skip_unsupported)
        mine = set(self.cases)
        return {case: reason for case, reason in skips.items() if case in mine}


def expand_cases(
    sweep: Sweep,
    default_threads: int | None,
    available: list[str] | None = None,
    shard: Any = None,
) -> Expansion:
    """The sweep's cases (``all`` expanded to ``available``, or to this machine's backends),
    and those ``shard`` owns when there is one."""
    from dscbench import shards

    if ALL_BACKENDS in sweep.requested_backends():
        sweep.expand_all_backends(
            available if available is not None else registry.available_names()
        )
    threads = default_threads
    if threads is None:  # importing torch takes a second: only when a grid needs it
        threads = torch_default_threads() if sweep.needs_default_threads() else 1
    everything = sweep.cases(threads)
    return Expansion(everything, shards.select(everything, case_key, shard))


def case_key(case: Case) -> str:
    """What a shard is chosen by: the configuration and its backend."""
    return f"{case.spec.config_id}@{case.backend}"


def check_size(sweep: Sweep, limit: int) -> None:
    """Refuse a sweep larger than ``limit`` configurations before expanding it (a typo in a
    spec file can ask for millions); --max-configs N or --yes raises the limit."""
    if sweep.size() <= limit:
        return
    unique = sweep.count_up_to(limit + 1)  # exact, but stops early: memory stays bounded
    if unique > limit:
        raise SpecError(
            f"the sweep has more than {limit:,} configurations (its grids multiply out to "
            f"{sweep.size():,}); give --max-configs N or --yes if that is what you meant"
        )


DRY_RUN_TABLE_ROWS = 200  # beyond, --dry-run prints plain lines (a rich table of 10,000 rows
# takes 15 s to lay out)


def print_plan_lines(cases: list[Case], notes: dict[Case, str], console: Console) -> None:
    """The dry-run listing as plain lines: configuration, backend, MACs and params of both
    variants, MAC reduction, and why a configuration would not run."""
    lines = [
        f"{len(cases)} configurations (config_id backend MACs std/sep params std/sep MAC red.)"
    ]
    for case in cases:
        std = counting.counts_of(case.spec, "standard")
        sep = counting.counts_of(case.spec, "separable")
        note = f"  {notes[case]}" if case in notes else ""
        lines.append(
            f"{case.spec.config_id} {case.backend} "
            f"{format_count(std.macs)}/{format_count(sep.macs)} "
            f"{format_count(std.params)}/{format_count(sep.params)} "
            f"{format_ratio(std.macs / sep.macs)}{note}"
        )
    console.file.write("\n".join(lines) + "\n")


def estimate_lines(sweep: Sweep, plan: Plan, previous: Previous | None = None) -> list[str]:
    """What the run will take: configurations, and seconds of timed blocks (both variants in
    every environment) plus about 10% for warm-up and set-up (REPORT-run.md); a resumed run
    only has its remaining rounds to go."""
    measured = [c for c in plan.cases if all((c, e) not in plan.skips for e in plan.envs)]
    timed = sweep.settings.min_time * 2 * len(plan.envs) * len(measured)
    rounds = sweep.settings.rounds
    done = min(previous.point.rounds_done, rounds) if previous is not None else 0
    timed *= (rounds - done) / rounds

    def seconds(x: float) -> str:
        return f"{x:.1f} s" if x < 10 else f"{x:.0f} s"

    lines = []
    if previous is not None:
        lines.append(
            f"resuming {previous.directory}: {done} of {rounds} round(s) done, measuring "
            f"round {done + 1} on"
        )
    return [
        *lines,
        f"{len(plan.cases)} configuration(s) x {len(plan.envs)} environment(s): about "
        f"{seconds(timed * 1.1)} ({seconds(timed)} of timed blocks at --min-time "
        f"{sweep.settings.min_time:g}), more for compilation and large models",
    ]


def unavailable_backends(cases: list[Case]) -> dict[str, str]:
    """The backends of ``cases`` this machine cannot run, with why (a quick look, no worker)."""
    found = {}
    for name in dict.fromkeys(c.backend for c in cases):
        status = registry.availability(name, quick=True)
        if not status.available:
            found[name] = status.reason
    return found


def dry_run_notes(expansion: Expansion, options: RunOptions) -> dict[Case, str]:
    """Why a case would not run here: its backend lacks the dtype or format (an error without
    --skip-unavailable, as in a real run), or is missing."""
    cases = expansion.cases
    notes = dict(expansion.validate(options.skip_unavailable))
    for name, reason in unavailable_backends(cases).items():
        for case in cases:
            if case.backend == name:
                notes.setdefault(case, f"backend unavailable: {reason}")
    return notes


def start(sweep: Sweep, options: RunOptions, env_specs: list, out_dir: Path) -> Plan:
    """Validate the sweep, start its executors (worker processes, unless a plain run asked for
    one process), and let every backend in every environment say what it cannot run. Bad
    input raises a DscbenchError (exit 2)."""
    from dscbench import workers as environments

    processes = max(1, min(options.processes, sweep.settings.rounds))
    if not env_specs and processes == 1:  # measured in this process, as before --processes
        expansion = expand_cases(sweep, None, shard=options.shard)
        skips = expansion.validate(options.skip_unavailable)
        cases = expansion.cases
        plan = Plan(cases, [""], {"": [LocalExecutor()]}, {(c, ""): r for c, r in skips.items()})
        plan.env_meta[""] = {}
    else:
        interleaved = len(env_specs) > 1
        plan_notes: list[str] = []
        if interleaved:
            sweep.options.ort_threadpool = _interleaved_threadpool(sweep, plan_notes)
        specs = env_specs or [environments.EnvSpec("", sys.executable)]
        workers = environments.start_workers(
            specs, out_dir / "workers", processes, spin_defaults=interleaved
        )
        names = list(workers)
        everyone = [w for pool in workers.values() for w in pool]
        first = everyone[0].info
        try:
            available = None
            if ALL_BACKENDS in sweep.requested_backends():  # backends every environment has
                each = [set(pool[0].available()) for pool in workers.values()]
                available = [name for name in registry.REGISTRY if all(name in a for a in each)]
            expansion = expand_cases(
                sweep, int(first.get("default_threads") or 1), available, options.shard
            )
            skips = expansion.validate(options.skip_unavailable)
            cases = expansion.cases
        except BaseException:
            for worker in everyone:
                worker.close()
            raise
        plan = Plan(cases, names, dict(workers))
        plan.skips = {(c, env): r for c, r in skips.items() for env in names}
        plan.notes += plan_notes
        plan.measured_environment = first.get("environment", {})
        for spec in specs:
            pool = workers[spec.name]
            info = pool[0].info
            plan.env_meta[spec.name] = {
                **spec.to_json(),
                "dscbench": info.get("dscbench"),
                "python_version": info.get("python"),
                "environment": info.get("environment", {}),
                "processes": len(pool),
                "start_s": max(w.start_s for w in pool),
            }
    plan.sweep = expansion.sweep
    if not cases and options.shard is not None:
        plan.notes.append(
            f"shard {options.shard.index}/{options.shard.count} holds none of the sweep's "
            f"{len(expansion.sweep)} configuration(s): it writes an empty, complete run for "
            "merge"
        )
    try:
        setup_backends(sweep, options, plan)
    except BaseException:
        plan.close()
        raise
    plan.notes += oversubscription_notes(plan.cases)
    return plan


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask; os.cpu_count() where there is none)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def oversubscription_notes(cases: list[Case]) -> list[str]:
    """A warning when CPU configurations ask for more threads than there are cores: threads then
    take turns on a core and latency grows with the ratio, which measures the scheduler."""
    cores = available_cores()
    threads = sorted({c.spec.threads for c in cases if c.backend.endswith("cpu")})
    over = [t for t in threads if t > cores]
    if not over:
        return []
    return [
        f"--threads {','.join(map(str, over))} exceeds the {cores} core(s) this process may "
        f"use: threads will time-share cores and latency grows about {max(over) / cores:.0f}x; "
        f"use --threads {cores} or fewer"
    ]


def _interleaved_threadpool(sweep: Sweep, notes: list[str]) -> str:
    """onnxruntime's global pool keeps spinning between runs, which would steal cores from the
    other environments' blocks; interleaved runs default to pools that stop spinning."""
    if sweep.options.ort_threadpool == "auto" and "onnxruntime-cpu" in sweep.requested_backends():
        notes.append(
            "interleaved environments: onnxruntime-cpu uses per-session thread pools that stop "
            "spinning after each run (a spinning pool would slow the other environments)"
        )
        return "session"
    return sweep.options.ort_threadpool


def setup_backends(sweep: Sweep, options: RunOptions, plan: Plan) -> None:
    """Ask every environment's executor to create the backends its cases use: an unavailable
    backend is exit 2 (or its cases are skipped there with --skip-unavailable); each backend
    names the configurations it cannot run."""
    problems = []
    for env, pool in plan.executors.items():
        mine = [c for c in plan.cases if (c, env) not in plan.skips]
        specs: dict[str, list[dict[str, Any]]] = {}
        for case in mine:
            specs.setdefault(case.backend, []).append(spec_to_json(case.spec))
        reports = pool[0].setup(vars(sweep.options).copy(), specs)
        for other in pool[1:]:  # every process builds the same backends
            other.setup(vars(sweep.options).copy(), specs)
        where = f"environment {env}: " if env else ""
        facts: dict[str, dict[str, Any]] = {}
        for report in reports.values():
            for line in report.invalid:
                if line not in problems:
                    problems.append(line)
        for name, report in reports.items():
            if not report.available:
                if not options.skip_unavailable:
                    raise BackendUnavailable(
                        f"{where}backend {name!r} is not available: {report.reason}"
                    )
                for case in mine:
                    if case.backend == name:
                        plan.skips.setdefault(
                            (case, env), f"backend {name} is not available: {report.reason}"
                        )
                continue
            facts[name] = {
                "device": report.device,
                "device_name": report.device_name,
                "versions": report.versions,
            }
            plan.devices.setdefault(name, (report.device, report.device_name))
            plan.overheads.setdefault(name, report.timer_overhead_s)
            plan.notes += [f"{where}{note}" for note in report.notes if note not in plan.notes]
            cannot = {json_key(s): reason for s, reason in report.cannot}
            for case in mine:
                if case.backend != name:
                    continue
                reason = cannot.get(json_key(spec_to_json(case.spec)))
                if reason is None:
                    continue
                if options.skip_unavailable:
                    plan.skips[(case, env)] = reason
                else:
                    problems.append(f"{where}config {case.spec.config_id} on {name}: {reason}")
        if env:
            plan.env_meta[env]["backends"] = facts
        if not plan.backends:
            plan.backends = facts
    if problems:
        raise SpecError("\n".join(problems))


def json_key(spec: dict[str, Any]) -> tuple:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in spec.items()))


# ---------------------------------------------------------------------------------------------
# Measuring and recording
# ---------------------------------------------------------------------------------------------


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
        "variables": tuning_variables(os.environ),
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
            "interval": "t interval over rounds (trimmed mean from 10 rounds)",
            "confidence": CONFIDENCE,
        },
        "precision": None
        if options.precision is None
        else {"target": options.precision, "max_time_s": options.max_time},
    }
    if interleaved:
        meta["environments"] = plan.env_meta
        meta["environment"]["spin_defaults"] = _spin_defaults()
    elif workers:  # one environment in worker processes: its facts are the run's
        load = meta["environment"].get("load_average")
        meta["environment"] = dict(plan.measured_environment, load_average=load)
    return meta


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


def _spin_defaults() -> dict[str, str]:
    from dscbench.workers import SPIN_DEFAULTS

    return dict(SPIN_DEFAULTS)


def harness_for(sweep: Sweep, plan: Plan, order: str = "env") -> HarnessOptions:
    if plan.envs == [""]:
        return HarnessOptions(warmup=sweep.settings.warmup)
    return HarnessOptions(
        warmup=sweep.settings.warmup,
        block_time=ENV_BLOCK_TIME_S,
        switch_settle=ENV_SWITCH_SETTLE_S,
        order=order,
    )


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

    def __call__(self, state: runner.SweepState) -> None:
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

    def _write(self, state: runner.SweepState) -> None:
        t0 = time.perf_counter()
        parts: Iterable[dict[str, Any]] = state.take_delta()
        if self.journal is None:
            self.journal = self._open()
            if self.previous is not None:  # readers drop the samples of the round redone
                parts = itertools.chain([{"resume_from": state.rounds_done}], parts)
        self._update_meta(state)
        self.journal.append(parts, self.meta)
        if state.status != "running":
            self._consolidate(state)
        self.write_s += time.perf_counter() - t0

    def _update_meta(self, state: runner.SweepState) -> None:
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
                "canary_s": p.canary,
                "ipc_s": p.ipc,
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
        if state.crashes:
            self.meta["worker_crashes"] = dict(state.crashes)

    def _consolidate(self, state: runner.SweepState) -> None:
        """The final tables and run.json, from the state in memory (the same function reads
        a journal back, so both give the same rows)."""

        table, samples = results.build_tables(state.records(), state.samples_frame(), self.meta)
        self.meta.update(results.derived_meta(state.records(), samples))
        if self.canary_describe is not None:
            self.meta["canary"] = {"describe": self.canary_describe, "samples": state.canary}
        self.breakdown = results.breakdown_table(state.records())
        assert self.journal is not None
        self.journal.consolidate(table, samples, self.meta, self.breakdown)
        self.table = table


# ---------------------------------------------------------------------------------------------
# Resuming
# ---------------------------------------------------------------------------------------------


@dataclass
class Previous:
    """An interrupted run to finish (--resume): its directory, run.json, and journal."""

    directory: Path
    meta: dict[str, Any]
    point: runner.ResumePoint


def resume_point(directory: Path) -> Previous:
    """Read the run ``--resume`` names; refuse (exit 2) one that is complete, or was not
    written by a dscbench that keeps a journal."""
    directory = Path(directory)
    where = f"--resume {directory}"
    if not (directory / results.RUN_JSON).is_file():
        raise ResultsError(f"{where}: no {results.RUN_JSON}: not a dscbench run directory")
    try:
        manifest = results.read_manifest(directory)
    except ResultsError as exc:
        raise ResultsError(f"{where}: {exc}") from None
    if manifest is None or not (directory / results.JOURNAL).is_file():
        raise ResultsError(
            f"{where}: no {results.MANIFEST} and {results.JOURNAL} (a merged run, or one "
            "written by a dscbench before 0.6): it cannot be resumed"
        )
    if manifest.get("status") == "complete":
        raise ResultsError(f"{where}: the run is complete; there is nothing to resume")
    try:  # the journal, read once and checked as every reader checks a run
        loaded, contents = results.load_journal(directory)
    except ResultsError as exc:
        raise ResultsError(f"{where}: {exc}") from None
    point = runner.ResumePoint(
        contents.records,
        {c: contents.samples[c].tolist() for c in results.SAMPLE_COLUMNS},
        contents.canary,
        int(loaded.meta.get("rounds_done") or 0),
    )
    meta = loaded.meta
    return Previous(directory, meta, point)


# What must be equal for a run to go on where it stopped: (run.json path, what it is called)
RESUME_KEYS = (
    (("configurations_sha256",), "the configurations"),
    (("settings",), "the settings"),
    (("backend_options",), "the backend options"),
    (("shard",), "the shard"),
    (("env_specs",), "the environments (--env interpreters and variables)"),
    (("variables",), "the environment variables (OMP_*, ONEDNN_*, ...)"),
    (("environment", "dscbench"), "the dscbench version"),
    (("environment", "machine"), "the hardware (machine)"),
    (("environment", "cpu_model"), "the hardware (CPU model)"),
    (("environment", "cpu_count"), "the hardware (CPU count)"),
)


def _at(meta: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        meta = meta.get(key) if isinstance(meta, dict) else None
    return meta


def resume_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between the run to resume and the one asked for now, one phrase each."""
    found = []
    for path, what in RESUME_KEYS:
        a, b = _at(old, path), _at(new, path)
        if path in (("env_specs",), ("variables",)):
            if path[0] not in old:  # a run written before these were recorded cannot tell
                continue
            a, b = a or {}, b or {}
        a = results.json_safe(a)
        b = results.json_safe(b)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
            detail = ", ".join(f"{k} {a.get(k)!r} -> {b.get(k)!r}" for k in keys)
            found.append(f"{what} differ ({detail})")
        elif path == ("configurations_sha256",):
            found.append(
                f"{what} differ ({old.get('n_configurations')} in the run, "
                f"{new.get('n_configurations')} now)"
            )
        else:
            found.append(f"{what} differs ({a!r} -> {b!r})")
    devices = {
        (name, info.get("device_name"))
        for name, info in (old.get("backends") or {}).items()
        if isinstance(info, dict)
    }
    for name, info in (new.get("backends") or {}).items():
        was = dict(devices).get(name)
        if was is not None and was != info.get("device_name"):
            found.append(f"the hardware ({name}: {was!r} -> {info.get('device_name')!r})")
    return found


def resume_arguments(argv: list[str]) -> list[str]:
    """The arguments after ``run`` of a recorded command (``argv``, as sys.argv), less where
    it wrote (-o, --output, --resume, --force): what a resume repeats."""
    args, skip = [], False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg in ("-o", "--output", "--resume"):
            skip = True
        elif not (arg == "--force" or arg.startswith(("--output=", "--resume=", "-o"))):
            args.append(arg)
    return args


def resume_command(argv: list[str], directory: Path) -> str:
    """The command a run was started with, as ``dscbench run ... --resume DIR``."""
    import shlex

    return shlex.join(["dscbench", "run", *resume_arguments(argv), "--resume", str(directory)])


def resumed_meta(previous: Previous, now: dict[str, Any]) -> dict[str, Any]:
    """run.json of a resumed run: the original, plus when and how it was resumed; refuses
    (exit 2) when the sweep, the settings, the dscbench version or the hardware differ."""
    differences = resume_differences(previous.meta, now)
    if differences:
        command = resume_command(previous.meta.get("command") or [], previous.directory)
        raise SpecError(
            f"--resume {previous.directory}: {'; '.join(differences)}; resume it with the "
            f"command it was started with: {command}"
        )
    meta = dict(previous.meta)
    meta["resumed"] = [
        *(meta.get("resumed") or []),
        {"at": utc_now(), "command": sys.argv, "rounds_done": previous.point.rounds_done},
    ]
    for key in ("environment", "backends", "notes"):  # this session's facts
        meta[key] = now.get(key, meta.get(key))
    return meta


def configurations_digest(cases: list[Case]) -> str:
    """SHA-256 of the sweep's configurations (spec and backend of each, in a stable order):
    what --resume checks to know it goes on with the same sweep."""
    import hashlib
    import json

    keys = sorted(
        json.dumps([spec_to_json(c.spec), c.backend], sort_keys=True, default=str) for c in cases
    )
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def measure(
    sweep: Sweep,
    options: RunOptions,
    plan: Plan,
    recorder: Recorder,
    console: Console,
    previous: Previous | None = None,
) -> runner.SweepState | None:
    """The sweep with a progress bar; None when interrupted (what was measured is written)."""
    from dscbench import canary as canaries

    canary = None
    if options.canary:
        canary = canaries.Canary(
            canaries.default_threads([c.spec.threads for c in plan.cases]),
            settle_s=canaries.SETTLE_S if plan.envs == [""] else ENV_CANARY_SETTLE_S,
        )
        recorder.canary_describe = canary.describe()
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=options.quiet,
    )
    rounds = sweep.settings.rounds
    try:
        with progress:
            task = progress.add_task("measuring", total=len(plan.cases) * rounds)

            def on_progress(done: int, total: int, label: str) -> None:
                current = done // max(len(plan.cases), 1) + 1
                what = f"round {current}/{rounds}" if current <= rounds else "extra rounds"
                progress.update(task, completed=done, total=total, description=f"{what} {label}")

            try:  # measure_locked's handlers turn the first signal into KeyboardInterrupt
                return runner.run_sweep(
                    plan.cases,
                    sweep.settings,
                    plan.executors,
                    checkpoint=recorder,
                    progress=on_progress,
                    harness=harness_for(sweep, plan, options.interleave),
                    verify_counts=options.verify_counts,
                    skipped=plan.skips,
                    canary=canary,
                    precision=options.precision,
                    max_time=options.max_time if options.max_time is not None else math.inf,
                    resume=previous.point if previous is not None else None,
                )
            except KeyboardInterrupt:
                # What was measured is written; a further Ctrl-C must not turn a clean exit
                # 130 into a death by signal while the message is printed.
                with sigint_ignored():
                    progress.stop()
                    console.print(
                        Text(
                            f"interrupted: what was measured so far is in {recorder.out_dir}",
                            style="yellow",
                        )
                    )
                return None
    finally:
        if canary is not None:
            canary.close()


# ---------------------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------------------


def render(
    recorder: Recorder, state: runner.SweepState, options: RunOptions, console: Console
) -> None:
    breakdown = recorder.breakdown if options.breakdown else None
    render_run(recorder.table, recorder.meta, recorder.out_dir, console, options.quiet, breakdown)


def dry_run_breakdown(cases: list[Case]) -> Any:
    """The breakdown table of every model configuration, counted on the meta device."""
    import pandas as pd

    rows = []
    for case in dict.fromkeys(c for c in cases if c.spec.kind == "model"):
        for v in ("standard", "separable"):
            for row in counting.breakdown(counting.network_records(case.spec, v)):
                rows.append({"config_id": case.spec.config_id, "variant": v, **row})
    return pd.DataFrame(rows, columns=results.BREAKDOWN_COLUMNS).drop_duplicates(
        ["config_id", "variant", "layer_type"]
    )


def sigint_ignored() -> contextlib.AbstractContextManager[None]:
    """Ignore Ctrl-C for the duration."""
    return signal_handlers({signal.SIGINT: signal.SIG_IGN})


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration; raise KeyboardInterrupt afterwards if one came
    (so writing result files is never cut in half)."""
    pending: list[int] = []

    def hold(signum: int, frame: object) -> None:
        pending.append(signum)

    with signal_handlers({signal.SIGINT: hold, signal.SIGTERM: hold}):
        yield
    if pending:
        _stop_listening()  # the sweep stops now; a further signal must not cut that short
        raise KeyboardInterrupt


def _stop_listening() -> None:
    """Ignore Ctrl-C and SIGTERM: the sweep is stopping and what it measured is being saved
    (the handlers in force before the sweep come back when its context ends)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


@contextlib.contextmanager
def _interrupt_once() -> Iterator[None]:
    """Ctrl-C or SIGTERM (a batch scheduler's pre-emption, `kill`) stops the run, so the
    results measured so far are saved and the workers stopped before the process ends; any
    further one is ignored until the process exits (a second Ctrl-C must not cut the
    interrupt-time checkpoint short), also where an inner context puts this handler back."""
    fired = []

    def interrupt(signum: int, frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        _stop_listening()
        raise KeyboardInterrupt

    try:
        with signal_handlers({signal.SIGINT: interrupt, signal.SIGTERM: interrupt}):
            yield
    finally:
        if fired:  # the process is on its way out: nothing may cut that short
            with contextlib.suppress(ValueError):
                _stop_listening()


def plan_table(sweep: Sweep, cases: list[Case], notes: dict[Case, str]) -> Table:
    """What a run would measure, with closed-form counts and why a case would not run (an
    unavailable backend, an unsupported dtype); nothing is timed."""
    table = Table(title=f"{len(cases)} configurations from {sweep.source}", header_style="bold")
    for col in ("config_id", "backend", "MACs std/sep", "params std/sep", "MAC red.", "note"):
        table.add_column(col)
    for case in cases:
        std = counting.counts_of(case.spec, "standard")
        sep = counting.counts_of(case.spec, "separable")
        table.add_row(
            case.spec.config_id,
            case.backend,
            f"{format_count(std.macs)}/{format_count(sep.macs)}",
            f"{format_count(std.params)}/{format_count(sep.params)}",
            format_ratio(std.macs / sep.macs),
            Text(notes[case], style="yellow") if case in notes else "",
        )
    return table
