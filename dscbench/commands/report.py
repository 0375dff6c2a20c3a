"""`dscbench report`: result files in, a document out (export/report.py renders it); also the
loading that `dscbench plot` shares. Reads result files only (no torch import; pandas once it
runs)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dscbench.commands.common import RunsArg
from dscbench.errors import SpecError

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer()


class ReportFormat(str, Enum):
    markdown = "markdown"
    html = "html"
    csv = "csv"
    latex = "latex"


@app.command("report")
def report_runs(
    runs: RunsArg,
    *,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="markdown, html (one self-contained file with plots), csv (the table), latex.",
        ),
    ] = ReportFormat.markdown,
    output: Annotated[
        str, typer.Option("--output", "-o", help="The file to write; - for stdout.")
    ] = "-",
) -> None:
    """Render runs as a report: summary, wins and losses, break-even channel counts, the full
    table and the environment."""
    from dscbench.export import write_output

    write_output(output, report(runs, fmt.value), inputs=runs)


def run_names(runs: list[Path]) -> list[str]:
    """A short unique label per input: its directory (or file) name; a name given twice is
    ``R`` and ``R (2)``."""
    from dscbench.analysis import run_labels

    return run_labels([Path(r).name or str(r) for r in runs])


def load_runs(runs: list[Path]) -> tuple[pd.DataFrame, list[dict[str, Any]], list[Any]]:
    """The result rows of every run (one table: with a ``run`` column when there are several,
    ``machine`` columns when one mixes hardware; analysis.combine), their calibrations and
    their ResultSets."""
    from dscbench import results
    from dscbench.analysis import combine

    loaded = [results.load_results(run) for run in runs]
    if not loaded:
        raise SpecError("give at least one run")
    table = combine(loaded, run_names(runs))
    calibrations: list[dict[str, Any]] = []
    for r in loaded:
        for c in r.meta.get("calibration") or []:
            if all(c.get("key") != seen.get("key") for seen in calibrations):
                calibrations.append(c)
    return table, calibrations, loaded


def report(runs: list[Path], fmt: str) -> str:
    """The report of ``runs`` in ``fmt`` (export/report.py); HTML embeds every plot that these
    results can draw."""
    from dscbench.export import report as reports

    if fmt not in reports.FORMATS:
        raise SpecError(f"--format {fmt!r}: not one of {', '.join(reports.FORMATS)}")
    table, calibrations, loaded = load_runs(runs)
    document = reports.build(loaded, run_names(runs))
    document.accuracy = accuracy_sections(runs, loaded)
    if fmt == "html":
        document.figures = svg_figures(table, calibrations)
    return reports.render(document, fmt)


def accuracy_sections(runs: list[Path], loaded: list[Any]) -> list[tuple]:
    """(name, table rows, note) of each run that `dscbench accuracy` wrote."""
    from dscbench.export import accuracy as render
    from dscbench.results.accuracy import load_accuracy

    sections = []
    for name, run, result in zip(run_names(runs), runs, loaded, strict=True):
        found = load_accuracy(run)
        if found is not None:
            shown = render.document(*found, result.results)
            sections.append((name, render.rows(shown), render.markdown(shown)[-1]))
    return sections


SVG_UP_TO_ROWS = 2000  # beyond, plots are embedded as PNG: thousands of SVG markers weigh MBs


def svg_figures(table: pd.DataFrame, calibrations: list[dict[str, Any]]) -> dict[str, str]:
    """Every plot kind these results can draw, as inline SVG (an XML-less <svg> element), or
    for large result sets as a base64 PNG <img>."""
    import base64

    from dscbench import plot as plots

    plots.matplotlib_pyplot()  # one clear line when matplotlib is missing
    figures = {}
    for kind in plots.KINDS:
        try:
            fig = plots.figure(kind, table, calibrations)
        except plots.PlotError:
            continue  # e.g. no calibration for the roofline, no layer rows for break-even
        if len(table) <= SVG_UP_TO_ROWS:
            svg = plots.to_bytes(fig, "svg").decode("utf-8")
            figures[kind] = svg[svg.index("<svg") :]
        else:
            png = base64.b64encode(plots.to_bytes(fig, "png")).decode("ascii")
            figures[kind] = f'<img alt="{kind} plot" src="data:image/png;base64,{png}">'
    return figures
