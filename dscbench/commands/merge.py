"""`dscbench merge`: the shards of one sweep (`run --shard K/N`) as one run (merge.py checks
and unions them)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dscbench.commands.common import RunsArg, console

app = typer.Typer()


@app.command("merge")
def merge_shards(
    runs: RunsArg,
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged run directory.")],
    force: Annotated[bool, typer.Option(help="Write into an existing, non-empty -o.")] = False,
    allow_partial: Annotated[
        bool, typer.Option(help="Merge even if shards are missing or unfinished.")
    ] = False,
    allow_different_hardware: Annotated[
        bool, typer.Option(help="Merge shards measured on different hardware (marked so).")
    ] = False,
) -> None:
    """Union the shards of one sweep (`run --shard K/N`) into one run."""
    from dscbench import merge, results
    from dscbench.export import check_not_input

    check_not_input(output / results.RUN_JSON, runs)
    merged, breakdown = merge.merge_runs(
        runs, allow_partial=allow_partial, allow_different_hardware=allow_different_hardware
    )
    out = merge.write_merged(output, merged, breakdown, force)
    shards = len(merged.meta["merged_from"])
    console.print(
        f"Merged {shards} shards ({len(merged.results)} rows, status {merged.meta['status']}"
        + (", mixed hardware" if merged.meta["mixed_hardware"] else "")
        + f") into {out}/",
        highlight=False,
    )
