"""`dscbench backends`: every backend, its device, whether it can run here and why not."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from dscbench.commands.common import JsonFlag, console

app = typer.Typer()


@app.command("backends")
def list_backends(as_json: JsonFlag = False) -> None:
    """List the backends: device, whether they can run here and why not, library versions."""
    from dscbench.backends import listing
    from dscbench.instructions import INSTALL_HINT, valgrind_version

    rows = listing()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    console.print(backends_table(rows))
    version = valgrind_version()
    console.print(
        f"--measure instructions: {version} (callgrind)"
        if version
        else Text(f"--measure instructions: no valgrind on the PATH; {INSTALL_HINT}", "yellow"),
        highlight=False,
    )


def backends_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(header_style="bold")
    for col in ("backend", "device", "available", "device name / reason", "versions"):
        table.add_column(col)
    for row in rows:
        ok = row["available"]
        table.add_row(
            row["name"],
            row["device"],
            Text("yes", style="green") if ok else Text("no", style="red"),
            Text(row["device_name"] if ok else row["reason"]),
            Text(", ".join(f"{k} {v}" for k, v in row["versions"].items())),
        )
    return table
