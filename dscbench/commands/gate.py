"""`dscbench gate`: the CI gate in one command. An interleaved `run` of two interpreters (base
and head) with ``--decide`` at the gate's threshold, then `compare` of its two environments
(confirmation of slower rows included), the markdown appended to the CI step summary, and
compare's exit code.

Light: cli.py imports this module for ``--help``; the run and the comparison import what they
need when they run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from dscbench.commands import common
from dscbench.commands import compare as compare_command
from dscbench.commands.run.options import default_output
from dscbench.defaults import CONFIDENCE, THRESHOLD
from dscbench.errors import SpecError
from dscbench.spec import parse_fraction

app = typer.Typer()

BASE, HEAD = "base", "head"
DEFAULT_MAX_TIME_S = 300.0  # the README's CI recipe: a pull request's gate, not a study
SUMMARY_VARIABLE = "GITHUB_STEP_SUMMARY"
# `run` options the gate sets itself (its own --output and --max-time are the run's too).
OWNED = {
    "--env": "--base and --head",
    "--decide": "--threshold",
    "--precision": "--threshold (the gate decides; it does not aim at a width)",
    "--resume": "`dscbench run --resume DIR`, then `dscbench compare DIR`",
    "--dry-run": "`dscbench run --dry-run` (the gate measures)",
    # Reachable only after `--` (before it they are the gate's own options):
    "--output": "the gate's own --output, before `--`",
    "-o": "the gate's own --output, before `--`",
    "--max-time": "the gate's own --max-time, before `--`",
}


@app.command(
    "gate",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def gate(
    ctx: typer.Context,
    *,
    base: Annotated[
        str,
        typer.Option(
            help="The baseline's interpreter, PYTHON[:VAR=VALUE,...] (empty: this one), as "
            "`run --env` takes it after NAME=."
        ),
    ],
    head: Annotated[
        str, typer.Option(help="The candidate's interpreter, in the same form as --base.")
    ],
    threshold: Annotated[
        str,
        typer.Option(
            help="Smallest change that counts, as 0.05 or 5%: the run decides every row's "
            "latency at it (`run --decide`, 95% confidence) and compare judges at it (with "
            "--metric and --confidence)."
        ),
    ] = f"{THRESHOLD:.0%}",
    max_time: Annotated[
        float,
        typer.Option(help="Seconds the run may take while it adds rounds to decide rows."),
    ] = DEFAULT_MAX_TIME_S,
    metric: Annotated[
        compare_command.CompareMetric,
        typer.Option(
            case_sensitive=False,
            help="latency (per variant), or speedup (standard/separable ratio).",
        ),
    ] = compare_command.CompareMetric.latency,
    confidence: Annotated[
        str, typer.Option(help="Confidence of compare's intervals.")
    ] = f"{CONFIDENCE:g}",
    fail_on_inconclusive: Annotated[
        bool, typer.Option(help="Exit 3 when rows are inconclusive (and nothing regressed).")
    ] = False,
    fail_on_kernel_change: Annotated[
        bool, typer.Option(help="Exit 1 when a row ran a different kernel in head than in base.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run directory (default results/<UTC time>-<host>)."),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option(
            help="Append the comparison as markdown to this file; default: $GITHUB_STEP_SUMMARY "
            "when it is set (a GitHub Actions step summary), else nowhere."
        ),
    ] = None,
) -> None:
    """Measure base and head interleaved, decide every row, confirm slower ones, and exit with
    compare's code: the CI gate in one command. Any further options are `dscbench run`'s
    sweep options (e.g. --preset quick --threads 1).

    Exit codes: 0 no regression, 1 at least one regression (or, with --fail-on-kernel-change,
    a row that ran another kernel), 2 bad input, 3 inconclusive rows
    with --fail-on-inconclusive, 130 interrupted (resume with `dscbench run --resume DIR`).
    """
    run_options = list(ctx.args)
    check_gate_input(run_options, threshold, confidence, max_time)
    out = output if output is not None else default_output()
    target = summary_target(summary)
    args = [
        "run",
        "--env", f"{BASE}={base}",
        "--env", f"{HEAD}={head}",
        "--decide", threshold,
        "--max-time", f"{max_time:g}",
        "--output", str(out),
        *run_options,
    ]  # fmt: skip
    started = time.perf_counter()
    code = run_as_typed(ctx, args)
    from dscbench.commands.run.execute import EXIT_OK, EXIT_SOME_FAILED  # loaded by the run
    from dscbench.compare import FailOn

    if code not in (EXIT_OK, EXIT_SOME_FAILED):
        raise typer.Exit(code)  # bad input (2) or interrupted (130): nothing to judge
    code = compare_command.execute(
        out,
        None,
        baseline_env=BASE,
        candidate_env=HEAD,
        metric=metric.value,
        threshold=threshold,
        confidence=confidence,
        fmt="markdown" if target is not None else "table",
        output=str(target) if target is not None else "-",
        fail_on=FailOn(fail_on_inconclusive, fail_on_kernel_change),
        allow_different_hardware=False,
        console=common.console,
        append=target is not None,
    )
    common.err_console.print(
        Text(
            f"gate: {out} judged in {time.perf_counter() - started:.0f} s, exit {code}"
            + (f"; summary appended to {target}" if target is not None else ""),
        ),
        highlight=False,
    )
    raise typer.Exit(code)


def run_as_typed(ctx: typer.Context, args: list[str]) -> int:
    """``dscbench run ...`` through the root command, with ``sys.argv`` saying so while it runs:
    run.json records that command, which is what ``run --resume DIR`` replays."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "dscbench", *args]
    try:
        code = ctx.find_root().command.main(args=args, standalone_mode=False)
    finally:
        sys.argv = saved
    return code if isinstance(code, int) else 0


def check_gate_input(
    run_options: list[str], threshold: str, confidence: str, max_time: float
) -> None:
    """Refuse, before anything is measured, the `run` options the gate sets itself (naming what
    to use instead) and a threshold, confidence or time limit that compare or the run would
    refuse later."""
    for option in run_options:
        name = option.split("=", 1)[0]
        if name in OWNED:
            raise SpecError(f"gate: {name} is the gate's to set; use {OWNED[name]}")
    if not 0 < parse_fraction("--threshold", threshold) < 1:
        raise SpecError(f"--threshold {threshold!r}: must be between 0 and 100%")
    if not 0.5 <= parse_fraction("--confidence", confidence, example=CONFIDENCE) < 1:
        raise SpecError(f"--confidence {confidence!r}: must be between 0.5 and 1")
    if not (math.isfinite(max_time) and max_time > 0):
        raise SpecError(f"--max-time {max_time:g}: must be a positive number of seconds")


def summary_target(summary: Path | None) -> Path | None:
    """--summary, else $GITHUB_STEP_SUMMARY when set (and not empty)."""
    if summary is not None:
        return summary
    variable = os.environ.get(SUMMARY_VARIABLE, "")
    return Path(variable) if variable else None
