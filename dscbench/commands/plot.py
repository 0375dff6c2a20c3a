"""`dscbench plot`: a stored run as a figure (plot.py draws it with matplotlib). Reads result
files only (no torch import)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer

from dscbench.commands.common import RunsArg
from dscbench.commands.report import load_runs
from dscbench.errors import SpecError

app = typer.Typer()


class PlotKind(str, Enum):
    speedup = "speedup"
    roofline = "roofline"
    latency = "latency"
    breakeven = "breakeven"


@app.command("plot")
def plot_run(
    runs: RunsArg,
    *,
    kind: Annotated[
        PlotKind,
        typer.Option(
            case_sensitive=False,
            help="speedup (vs MAC reduction), roofline (needs a calibration), latency (vs "
            "channels), breakeven (where separable starts to win).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The image: FILE.png, FILE.svg or FILE.pdf.")
    ],
) -> None:
    r"""Draw a stored run (needs matplotlib: pip install 'dscbench\[plot]')."""
    raise typer.Exit(plot(runs, kind.value, output))


def plot(runs: list[Path], kind: str, output: Path) -> int:
    from dscbench import plot as plots

    table, calibrations, _ = load_runs(runs)
    fmt = output.suffix.lstrip(".").lower()
    if fmt not in plots.FORMATS:
        raise SpecError(f"-o {output}: the file must end in .png, .svg or .pdf")
    plots.save(plots.figure(kind, table, calibrations), output)
    return 0
