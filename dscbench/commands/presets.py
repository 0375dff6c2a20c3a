"""`dscbench presets`: the shipped presets, what they sweep and how long they measure."""

from __future__ import annotations

import typer
from rich.table import Table

from dscbench import spec as specs
from dscbench.commands.common import console

app = typer.Typer()


@app.command()
def presets() -> None:
    """List the shipped presets: what they sweep and how long they measure."""
    console.print(presets_table())


def presets_table() -> Table:
    table = Table(header_style="bold")
    for col in ("preset", "configurations", "min-time/variant", "rounds", "description"):
        table.add_column(col)
    for name in specs.preset_names():
        sweep = specs.load_preset(name)
        n = len(sweep.cases(default_threads=1))
        s = sweep.settings
        table.add_row(name, str(n), f"{s.min_time:g} s", str(s.rounds), sweep.description)
    return table
