"""`dscbench run`: validate the sweep, measure it, write result files after every round, render."""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from dscbench.compare import DISTURBED_ROUND_SPREAD, run_round_spread
from dscbench.env import collect_environment, utc_now
from dscbench.errors import BackendUnavailable, SpecError
from dscbench.export.table import results_table, summary_lines, warning_lines
from dscbench.export.units import format_count, format_ratio
from dscbench.measure import HarnessOptions
from dscbench.spec import ALL_BACKENDS, Case, Sweep, validate_cases
from dscbench.stats import BOOTSTRAP_RESAMPLES, CONFIDENCE

if TYPE_CHECKING:
    from dscbench.backends.base import Backend

MAX_WARNING_LINES = 15
EXIT_SOME_FAILED = 1
EXIT_INTERRUPTED = 130


def torch_default_threads() -> int:
    """The intra-op thread count torch would use, which is the default of the threads axis."""
    try:
        import torch
    except ImportError:
        return 1  # creating the backend reports the missing package
    return torch.get_num_threads()


def resolve_backends(
    sweep: Sweep, cases: list[Case], skips: dict[Case, str], skip_unavailable: bool
) -> dict[str, Backend]:
    """Create every backend the cases use. An unavailable one raises BackendUnavailable, or with
    ``skip_unavailable`` adds its cases to ``skips``. Each backend then plans its cases."""
    instances: dict[str, Backend] = {}
    for name in dict.fromkeys(c.backend for c in cases):
        status = registry.availability(name)
        if status.available:
            instances[name] = registry.create(name, sweep.options)
        elif skip_unavailable:
            for case in cases:
                if case.backend == name:
                    skips.setdefault(case, f"backend {name} is not available: {status.reason}")
        else:
            raise BackendUnavailable(f"backend {name!r} is not available: {status.reason}")
    problems = []
    for name, backend in instances.items():
        mine = [c for c in cases if c.backend == name and c not in skips]
        cannot = backend.plan([c.spec for c in mine])
        for case in mine:
            if case.spec in cannot:
                if skip_unavailable:
                    skips[case] = cannot[case.spec]
                else:
                    problems.append(f"config {case.spec.config_id} on {name}: {cannot[case.spec]}")
    if problems:
        raise SpecError("\n".join(problems))
    return instances


def execute(
    sweep: Sweep,
    *,
    output: Path,
    force: bool,
    dry_run: bool,
    verify_counts: bool,
    skip_unavailable: bool,
    quiet: bool,
    console: Console,
    command_started: float,
) -> None:
    import typer

    if ALL_BACKENDS in sweep.requested_backends():
        sweep.expand_all_backends(registry.available_names())
    cases = sweep.cases(torch_default_threads())
    skips = validate_cases(cases, skip_unsupported=skip_unavailable)
    if dry_run:
        notes = dict(skips)
        for name in dict.fromkeys(c.backend for c in cases):
            status = registry.availability(name)
            if not status.available:
                for case in cases:
                    if case.backend == name:
                        notes.setdefault(case, f"backend unavailable: {status.reason}")
        console.print(plan_table(sweep, cases, notes))
        return
    instances = resolve_backends(sweep, cases, skips, skip_unavailable)
    out_dir = results.prepare_output_dir(output, force)
    notes = [note for b in instances.values() for note in getattr(b, "notes", [])]
    for note in notes:
        console.print(Text(f"note: {note}", style="yellow"), highlight=False)
    meta: dict[str, Any] = {
        "tool": "dscbench",
        "command": sys.argv,
        "source": sweep.source,
        "settings": vars(sweep.settings).copy(),
        "backend_options": vars(sweep.options).copy(),
        "n_configurations": len(cases),
        "started_at": utc_now(),
        "environment": collect_environment(),
        "backends": {
            name: {"device": b.device, "device_name": b.device_name(), "versions": b.versions()}
            for name, b in instances.items()
        },
        "skipped": {c.spec.config_id + " " + c.backend: reason for c, reason in skips.items()},
        "notes": notes,
    }
    harness = HarnessOptions(warmup=sweep.settings.warmup)
    meta["harness"] = {
        "block_time_s": harness.block_time,
        "max_block_iterations": harness.max_block_iterations,
        "bootstrap_resamples": BOOTSTRAP_RESAMPLES,
        "confidence": CONFIDENCE,
    }
    devices = {name: (info.device, "") for name, info in registry.REGISTRY.items()}
    devices.update({name: (b.device, b.device_name()) for name, b in instances.items()})
    overheads = {name: b.timer().overhead() for name, b in instances.items()}
    write_s = 0.0
    last_table = None

    def checkpoint(state: runner.SweepState) -> None:
        nonlocal write_s, last_table
        t0 = time.perf_counter()
        table, samples = results.build_tables(state, devices, overheads)
        p = state.phases
        now = utc_now()
        meta.update(
            status=state.status,
            rounds_done=state.rounds_done,
            updated_at=now,
            finished_at=None if state.status == "running" else now,
            timings={
                "wall_s": time.perf_counter() - command_started,
                "timed_s": p.timed,
                "warmup_s": p.warmup,
                "prepare_s": p.prepare,
                "compile_s": p.compile,
                "parity_s": p.parity,
                "counting_s": p.counting,
                "write_s": write_s,
                "timer_overhead_s": overheads,
            },
        )
        meta["round_spread"] = run_round_spread(samples)
        results.write_run(out_dir, table, samples, meta)
        write_s += time.perf_counter() - t0
        last_table = table

    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet,
    )
    rounds = sweep.settings.rounds
    with progress:
        task = progress.add_task("measuring", total=len(cases) * rounds)

        def on_progress(done: int, total: int, label: str) -> None:
            current = min(done // max(len(cases), 1) + 1, rounds)
            progress.update(task, completed=done, description=f"round {current}/{rounds} {label}")

        try:
            with _terminate_as_interrupt():
                state = runner.run_sweep(
                    cases,
                    sweep.settings,
                    instances,
                    checkpoint=checkpoint,
                    progress=on_progress,
                    harness=harness,
                    verify_counts=verify_counts,
                    skipped=skips,
                )
        except KeyboardInterrupt:
            progress.stop()
            console.print(
                Text(f"interrupted: what was measured so far is in {out_dir}", style="yellow")
            )
            raise typer.Exit(EXIT_INTERRUPTED) from None

    table = last_table
    if not quiet:
        console.print(results_table(table))
        for line in _capped(warning_lines(table)):
            console.print(Text(f"warning: {line}", style="yellow"), highlight=False)
    for line in summary_lines(table):
        console.print(line, highlight=False)
    spread = meta.get("round_spread", math.nan)
    if spread > DISTURBED_ROUND_SPREAD:
        console.print(
            Text(
                f"warning: this run's rounds disagree by {spread:.1%} (median over rows; steady "
                f"runs stay under {DISTURBED_ROUND_SPREAD:.0%}): the machine was busy while it "
                "ran. Rerun before comparing it with another run.",
                style="yellow",
            ),
            highlight=False,
        )
    t = meta["timings"]
    compiled = f", {t['compile_s']:.1f} s compiling" if t["compile_s"] > 0 else ""
    console.print(
        f"Results in {out_dir}/ (results.parquet, results.csv, samples.parquet, run.json); "
        f"wall {t['wall_s']:.1f} s, {t['timed_s'] / t['wall_s']:.0%} in timed blocks, "
        f"{t['warmup_s'] / t['wall_s']:.0%} warming up{compiled}.",
        highlight=False,
    )
    failed = [s for s in state.cases if s.status not in (runner.OK, runner.SKIPPED)]
    if failed:
        raise typer.Exit(EXIT_SOME_FAILED)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a batch scheduler's pre-emption, `kill`) stops the sweep like Ctrl-C does, so the
    results measured so far are written before the process ends."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (embedded use): leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_WARNING_LINES:
        return lines
    more = len(lines) - MAX_WARNING_LINES
    return [*lines[:MAX_WARNING_LINES], f"... and {more} more (see the warnings column)"]


def plan_table(sweep: Sweep, cases: list[Case], notes: dict[Case, str]) -> Table:
    """What a run would measure, with closed-form counts and why a case would not run (an
    unavailable backend, an unsupported dtype); nothing is timed."""
    table = Table(title=f"{len(cases)} configurations from {sweep.source}", header_style="bold")
    for col in ("config_id", "backend", "MACs std/sep", "params std/sep", "MAC red.", "note"):
        table.add_column(col)
    for case in cases:
        std = counting.closed_form(case.spec, "standard")
        sep = counting.closed_form(case.spec, "separable")
        table.add_row(
            case.spec.config_id,
            case.backend,
            f"{format_count(std.macs)}/{format_count(sep.macs)}",
            f"{format_count(std.params)}/{format_count(sep.params)}",
            format_ratio(std.macs / sep.macs),
            Text(notes[case], style="yellow") if case in notes else "",
        )
    return table
