"""`dscbench run`'s work: plan the sweep, start its environments, measure with a progress bar,
write result files after every round (recorder.py), render, and return the exit code. The
first Ctrl-C or SIGTERM stops the run with what was measured saved (exit 130)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from dscbench import lock as run_lock
from dscbench import results, runner
from dscbench.commands.run.options import RunOptions, for_instructions
from dscbench.commands.run.planning import (
    Plan,
    check_size,
    dry_run,
    estimate_lines,
    harness_for,
    start,
)
from dscbench.commands.run.recorder import Recorder, calibrations_for, run_meta
from dscbench.commands.run.resume import Previous, resume_point, resumed_meta
from dscbench.errors import ResultsError
from dscbench.export.console import render_run
from dscbench.signals import interrupt_once, sigint_ignored
from dscbench.spec import Sweep
from dscbench.status import Status
from dscbench.sweep_state import SweepState

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130
# The canary needs only a short settle between interleaved environments' blocks, as the
# coordinator runs no OpenMP threads of its own (planning.ENV_BLOCK_TIME_S says the rest).
ENV_CANARY_SETTLE_S = 0.002


def execute(sweep: Sweep, options: RunOptions, *, console: Console, command_started: float) -> int:
    """Run the sweep; 0 all measured (or skipped on request), 1 some failed, 130 interrupted."""
    from dscbench import workers as environments

    env_specs = environments.parse_envs(options.envs)
    check_size(sweep, options.max_configs)
    for_instructions(sweep, options)
    if options.dry_run:
        dry_run(sweep, options, console)
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
    with interrupt_once():
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


def measure_planned(
    sweep: Sweep,
    options: RunOptions,
    plan: Plan,
    console: Console,
    command_started: float,
    previous: Previous | None,
) -> tuple[Recorder, SweepState] | None:
    """Record run.json's facts, print the notes and estimate, and measure; None when the
    sweep was interrupted (what it measured is written)."""
    meta = run_meta(sweep, options, plan)
    if previous is not None:
        meta = resumed_meta(previous, meta)
    for note in plan.notes:
        console.print(Text(f"note: {note}", style="yellow"), highlight=False)
    if not options.quiet:
        for line in estimate_lines(sweep, plan, previous, options.measure == "instructions"):
            console.print(line, highlight=False)
    if previous is None:
        meta["calibration"] = calibrations_for(plan, options.calibrate, console)
    recorder = Recorder(Path(options.output), plan, meta, command_started, previous)
    state = measure(sweep, options, plan, recorder, console, previous)
    return None if state is None else (recorder, state)


def measure(
    sweep: Sweep,
    options: RunOptions,
    plan: Plan,
    recorder: Recorder,
    console: Console,
    previous: Previous | None = None,
) -> SweepState | None:
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
                    decide=options.decide,
                    max_time=options.max_time if options.max_time is not None else math.inf,
                    resume=previous.point if previous is not None else None,
                    measure=options.measure,
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


def render(recorder: Recorder, state: SweepState, options: RunOptions, console: Console) -> None:
    breakdown = recorder.breakdown if options.breakdown else None
    render_run(
        recorder.table,
        recorder.meta,
        recorder.out_dir,
        console,
        options.quiet,
        breakdown,
        samples=recorder.samples,
    )
