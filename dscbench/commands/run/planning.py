"""Planning `dscbench run`: expand the sweep (``all`` backends, default threads, this shard's
share), validate it, start its executors and let every backend say what it cannot run
(``start`` -> ``Plan``); the estimate printed before measuring; and the dry run, which lists
the plan with its closed-form counts and measures nothing."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dscbench import backends as registry
from dscbench import counting, results
from dscbench.commands.run.options import RunOptions
from dscbench.errors import BackendUnavailable, SpecError
from dscbench.export.console import print_breakdown
from dscbench.export.units import format_count, format_ratio
from dscbench.measure import HarnessOptions
from dscbench.plan import validate_cases
from dscbench.spec import ALL_BACKENDS, Case, Sweep, spec_to_json
from dscbench.workers import Executor, LocalExecutor, user_model_problems

if TYPE_CHECKING:
    from dscbench.commands.run.resume import Previous

# Interleaved environments: blocks of at least 10 ms, and 0.3 ms of untimed calls when a worker
# takes over from another (workers spin about 0.3 ms, workers.SPIN_DEFAULTS); the canary needs
# only a short settle, as the coordinator runs no OpenMP threads of its own.
# benchmarks/REPORT-gate.md measures what these choices cost.
ENV_BLOCK_TIME_S = 0.010
ENV_SWITCH_SETTLE_S = 0.0003


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


def started_by(pool: list[Any]) -> str:
    """How an environment's worker processes started: 'forked from a fork server' or
    'spawned' (with the reason, when fork was asked for and its server could not serve)."""
    forks = pool[0].forks
    if all(w.forked == w.starts for w in pool):
        return "forked from a fork server that had imported torch"
    if forks is None:
        return "spawned (fresh interpreters)"
    return f"spawned (fresh interpreters): its fork server was not used ({forks.why})"


def harness_for(sweep: Sweep, plan: Plan, order: str = "env") -> HarnessOptions:
    if plan.envs == [""]:
        return HarnessOptions(warmup=sweep.settings.warmup)
    return HarnessOptions(
        warmup=sweep.settings.warmup,
        block_time=ENV_BLOCK_TIME_S,
        switch_settle=ENV_SWITCH_SETTLE_S,
        order=order,
    )


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


def estimate_lines(
    sweep: Sweep, plan: Plan, previous: Previous | None = None, counting: bool = False
) -> list[str]:
    """What the run will take: configurations, and seconds of timed blocks (both variants in
    every environment) plus about 10% for warm-up and set-up (REPORT-run.md); a resumed run
    only has its remaining rounds to go. ``counting``: instructions under valgrind instead."""
    if counting:
        return [
            f"{len(plan.cases)} configuration(s) x {len(plan.envs)} environment(s), counting "
            f"instructions under valgrind in {sweep.settings.rounds} process(es) each, "
            f"{len(next(iter(plan.executors.values())))} counting at once: minutes (torch's "
            "import under valgrind takes about 100 s per environment, and each configuration's "
            "first calls several seconds; benchmarks/REPORT-kernels.md)"
        ]
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


def launch_for(options: RunOptions, out_dir: Path) -> Any:
    """How the workers start: as usual, or under valgrind's callgrind for --measure
    instructions (its dumps in workers/callgrind/; no valgrind is one line, exit 2)."""
    from dscbench import instructions
    from dscbench.workers import Launch

    if options.measure != "instructions":
        return Launch()
    dumps = (out_dir / "workers" / "callgrind").absolute()
    wrapper = instructions.command_prefix(dumps)  # ValgrindMissing before anything starts
    dumps.mkdir(parents=True, exist_ok=True)
    return Launch(
        tuple(wrapper),
        ((instructions.OUT_DIR_VARIABLE, str(dumps)), *instructions.VARIABLES.items()),
        instructions.START_TIMEOUT_S,
    )


def start(sweep: Sweep, options: RunOptions, env_specs: list, out_dir: Path) -> Plan:
    """Validate the sweep, start its executors (worker processes, unless a plain run asked for
    one process), and let every backend in every environment say what it cannot run. Bad
    input raises a DscbenchError (exit 2)."""
    from dscbench import workers as environments

    processes = max(1, min(options.processes, sweep.settings.rounds))
    counting = options.measure == "instructions"  # workers under valgrind, always
    if counting:  # processes that count at once (options.for_instructions)
        processes = max(processes, options.jobs or 1)
    if not env_specs and processes == 1 and not counting:  # in this process, as before
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
            specs,
            out_dir / "workers",
            processes,
            spin_defaults=interleaved,
            fork=options.start_method == "fork",
            launch=launch_for(options, out_dir),
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
                # a fork server's start, then its slowest worker's
                "start_s": (pool[0].forks.start_s if pool[0].forks else 0.0)
                + max(w.start_s for w in pool),
                "started": started_by(pool),
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


def dry_run(sweep: Sweep, options: RunOptions, console: Console) -> None:
    """List what the run would measure, with closed-form counts, and refuse (exit 2) what a
    real run would refuse; nothing is timed and no worker is started."""
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


DRY_RUN_TABLE_ROWS = 200  # beyond, --dry-run prints plain lines (a rich table of 10,000 rows
# takes 15 s to lay out)


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
