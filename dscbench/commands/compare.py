"""`dscbench compare`: read the runs, decide per row, render, return the exit code.

Imports no torch: comparing runs must be quick on a CI runner that never measured anything
(and no pandas until it runs: cli.py imports this module for ``--help``).
"""

from __future__ import annotations

import io
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from dscbench.commands import common
from dscbench.defaults import CONFIDENCE, THRESHOLD
from dscbench.spec import parse_fraction

if TYPE_CHECKING:
    from dscbench import compare
    from dscbench.compare import FailOn

app = typer.Typer()


class CompareMetric(str, Enum):
    latency = "latency"
    speedup = "speedup"
    instructions = "instructions"


class CompareFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    github_benchmark = "github-benchmark"


@app.command("compare")
def compare_runs(
    baseline: Annotated[
        Path,
        typer.Argument(
            help="Baseline run: a run directory, results file or JSON export; alone, a run "
            "that measured two environments interleaved."
        ),
    ],
    candidate: Annotated[
        Path | None, typer.Argument(help="Candidate run, in any of the same forms.")
    ] = None,
    *,
    metric: Annotated[
        CompareMetric,
        typer.Option(
            case_sensitive=False,
            help="latency (per variant), or speedup (standard/separable ratio: cancels "
            "machine speed).",
        ),
    ] = CompareMetric.latency,
    threshold: Annotated[
        str, typer.Option(help="Smallest change that counts, as 0.05 or 5%.")
    ] = f"{THRESHOLD:.0%}",
    confidence: Annotated[
        str, typer.Option(help="Confidence of the intervals.")
    ] = f"{CONFIDENCE:g}",
    fmt: Annotated[
        CompareFormat,
        typer.Option("--format", case_sensitive=False, help="The output format."),
    ] = CompareFormat.table,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write the format to; - is stdout.")
    ] = "-",
    fail_on_inconclusive: Annotated[
        bool, typer.Option(help="Exit 3 when rows are inconclusive (and nothing regressed).")
    ] = False,
    fail_on_kernel_change: Annotated[
        bool,
        typer.Option(
            help="Exit 1 when a row ran a different kernel (the kernels column), whatever its "
            "time did."
        ),
    ] = False,
    allow_different_hardware: Annotated[
        bool, typer.Option(help="Compare runs measured on different CPUs or GPUs.")
    ] = False,
    baseline_env: Annotated[
        str | None,
        typer.Option(help="The baseline's environment (a run that measured several)."),
    ] = None,
    candidate_env: Annotated[
        str | None,
        typer.Option(help="The candidate's environment (a run that measured several)."),
    ] = None,
    history: Annotated[
        bool,
        typer.Option(
            "--history",
            help="Judge the one run given against the history's run of --baseline-commit on "
            "the same machine and stack (dscbench history add).",
        ),
    ] = False,
    baseline_commit: Annotated[
        str | None,
        typer.Option(help="With --history: the baseline's commit (e.g. the PR's merge-base)."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", envvar="DSCBENCH_HISTORY_DB", help="With --history: the history database."
        ),
    ] = None,
) -> None:
    """Compare two runs row by row, or two environments of one interleaved run; exit 1 on a
    regression (a CI gate).

    Exit codes: 0 no regression, 1 at least one regression (or, with
    --fail-on-kernel-change, a row that ran another kernel), 2 bad input, 3 inconclusive rows
    with --fail-on-inconclusive.
    """
    from dscbench.compare import FailOn  # pandas, now that the command runs

    stored = None
    if history or baseline_commit is not None:
        stored, candidate = from_history(baseline, candidate, history, baseline_commit, db)
    code = execute(
        stored if stored is not None else baseline,
        candidate,
        baseline_env=baseline_env,
        candidate_env=candidate_env,
        metric=metric.value,
        threshold=threshold,
        confidence=confidence,
        fmt=fmt.value,
        output=output,
        fail_on=FailOn(fail_on_inconclusive, fail_on_kernel_change),
        allow_different_hardware=allow_different_hardware,
        console=common.console,
    )
    raise typer.Exit(code)


def from_history(
    run: Path, second: Path | None, history: bool, commit: str | None, db: str | None
) -> tuple[object, Path]:
    """--history --baseline-commit SHA RUN: the stored baseline (a ResultSet) and RUN as the
    candidate; the flags' misuse is one line, exit 2."""
    from dscbench.errors import SpecError
    from dscbench.history import queries, store
    from dscbench.results import load_results

    if not history or commit is None:
        raise SpecError("--history and --baseline-commit go together: compare --history "
                        "--baseline-commit SHA RUN")  # fmt: skip
    if second is not None:
        raise SpecError(f"--history judges one run; the baseline is the stored run of commit "
                        f"{commit} (leave out {second})")  # fmt: skip
    candidate = load_results(run)
    with store.opened(db, create=False) as engine:
        run_id, full, runs = queries.baseline_run(engine, commit, candidate)
        baseline = queries.load_run(engine, run_id)
    common.console.print(
        f"baseline: the history's newest run of commit {full[:12]} on this machine and stack "
        f"({runs} stored run(s) of that commit)",
        highlight=False,
    )
    return baseline, run


def execute(
    baseline: Path | object,
    candidate: Path | None,
    *,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
    metric: str,
    threshold: str,
    confidence: str,
    fmt: str,
    output: str,
    fail_on: FailOn,
    allow_different_hardware: bool,
    console: Console,
    append: bool = False,
) -> int:
    """Two runs (sequential design), or one run's two environments (interleaved design)."""
    from dscbench import compare  # pandas and scipy, no torch
    from dscbench.export import comparison as render

    formats = ("table", *render.FORMATS)
    if fmt not in formats:
        raise compare.CompareError(f"--format {fmt!r}: not one of {', '.join(formats)}")
    comparison = compare.judge_runs(
        baseline,
        candidate,
        metric=metric,
        threshold=parse_fraction("--threshold", threshold),
        confidence=parse_fraction("--confidence", confidence, example=CONFIDENCE),
        baseline_env=baseline_env,
        candidate_env=candidate_env,
        allow_different_hardware=allow_different_hardware,
    )
    inputs = [p for p in (baseline, candidate) if isinstance(p, Path)]
    show(comparison, fmt, output, fail_on, console, inputs, append=append)
    return comparison.code(fail_on)


def show(
    comparison: compare.Comparison,
    fmt: str,
    output: str,
    fail_on: FailOn,
    console: Console,
    inputs: list[Path] | None = None,
    *,
    append: bool = False,
) -> None:
    """The chosen format to ``output`` (- is stdout; ``append``: at the end of the file); a
    file gets the format and the log the terminal table. ``output`` may not overwrite the
    ``inputs``."""
    from dscbench.export import write_output
    from dscbench.export.comparison import FORMATS as RENDERERS
    from dscbench.export.comparison import rich_table

    if fmt == "table":
        if output == "-":
            console.print(rich_table(comparison, fail_on))
        else:
            text = table_text(comparison, fail_on)
            write_output(output, text, inputs or (), append=append)
        return
    text = RENDERERS[fmt](comparison, fail_on)
    write_output(output, text, inputs or (), append=append)
    if output != "-":
        console.print(rich_table(comparison, fail_on))


def table_text(comparison: compare.Comparison, fail_on: FailOn) -> str:
    """The terminal table as plain text, 160 columns wide (for --output FILE)."""
    from dscbench.export.comparison import rich_table

    buffer = Console(width=160, file=io.StringIO(), record=True)
    buffer.print(rich_table(comparison, fail_on))
    return buffer.export_text()
