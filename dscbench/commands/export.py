"""`dscbench export`: a run (metadata, result rows and raw samples) as one JSON document."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from dscbench.errors import DscbenchError

app = typer.Typer()


@app.command("export")
def export_run(
    run_path: Annotated[Path, typer.Argument(help="A run directory or results file.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="JSON file to write; - is stdout.")
    ] = "-",
) -> None:
    """Write a run (metadata, result rows and raw samples) as one JSON document."""
    from dscbench import results
    from dscbench.export import write_output

    loaded = results.load_results(run_path)
    if loaded.samples.empty and loaded.results.n_samples.fillna(0).sum() > 0:
        raise DscbenchError(
            f"{run_path}: its samples.parquet is missing, so an export could not be compared "
            "(compare recomputes its statistics from the samples)"
        )
    document = results.to_json(loaded)
    write_output(output, json.dumps(document, allow_nan=False) + "\n", inputs=[run_path])
