"""`dscbench env`: the environment dscbench records with every run (env.py collects it)."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from dscbench.commands.common import JsonFlag, console

app = typer.Typer()


@app.command()
def env(as_json: JsonFlag = False) -> None:
    """Print the environment dscbench records with every run, and whether valgrind (for
    `dscbench run --measure instructions`) is installed."""
    from dscbench.env import collect_environment
    from dscbench.instructions import valgrind_version

    info = collect_environment()
    info["valgrind"] = valgrind_version() or None  # --measure instructions needs it
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return
    console.print(environment_table(info))


def environment_table(info: dict[str, Any]) -> Table:
    """One row per fact; a dict's facts as ``key.sub``, a list's items one per line."""
    table = Table(show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                table.add_row(f"{key}.{sub}", _plain(subvalue))
        else:
            table.add_row(key, _plain(value))
    return table


def _plain(value: Any) -> Text:
    if isinstance(value, list):
        return Text("\n".join(str(v) for v in value))
    return Text("-" if value is None else str(value))
