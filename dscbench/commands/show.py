"""`dscbench show RUN`: a stored run's table and summary again, as `dscbench run` printed them,
optionally filtered. Reads result files only (no torch import; pandas once it runs)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dscbench.commands import common
from dscbench.errors import SpecError
from dscbench.export.units import format_bytes, format_count, format_rate, format_seconds
from dscbench.labels import constant_axes, describe_constant, table_label

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer()


class Variant(str, Enum):
    standard = "standard"
    separable = "separable"


@app.command("show")
def show_run(
    run: Annotated[Path, typer.Argument(help="A run directory, results file or JSON export.")],
    *,
    backend: Annotated[
        str | None, typer.Option(help="Only these backends (comma-separated).")
    ] = None,
    variant: Annotated[
        Variant | None,
        typer.Option(case_sensitive=False, help="Only this variant: one line per row."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="Only configurations where this holds, over the result columns, e.g. "
            "\"in_channels >= 64 and kernel == 3\" (README 'Columns')."
        ),
    ] = None,
    breakdown: Annotated[
        bool, typer.Option("--breakdown", help="Also print each model's layer-type breakdown.")
    ] = False,
    kernels: Annotated[
        bool,
        typer.Option(
            "--kernels",
            help="Only which kernel each conv of each pair ran (the kernels column), with "
            "reference-kernel fallbacks flagged.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Summary lines only.")] = False,
) -> None:
    """Print a stored run's table and summary again, as `dscbench run` printed them."""
    backends = [b.strip() for b in backend.split(",")] if backend else None
    chosen = variant.value if variant else None
    view = "kernels" if kernels else "variant" if chosen else "run"
    raise typer.Exit(execute(run, backends, chosen, where, breakdown, quiet, common.console, view))


def select(
    table: pd.DataFrame,
    backends: list[str] | None = None,
    variant: str | None = None,
    where: str | None = None,
) -> pd.DataFrame:
    """Rows of ``table`` on ``backends``, of ``variant``, and of the configurations where
    ``where`` (a filter over the result columns, e.g. ``in_channels >= 64``: where.py says
    what it accepts; nothing in it is run as code) holds for either variant (so a pair stays
    a pair). Bad filters are SpecErrors naming the value."""
    from dscbench import where as where_filter

    if backends:
        unknown = [b for b in backends if b not in set(table.backend)]
        if unknown:
            raise SpecError(
                f"--backend {','.join(unknown)}: not in this run "
                f"(it has {', '.join(dict.fromkeys(table.backend))})"
            )
        table = table[table.backend.isin(backends)]
    if where:
        hits = table[where_filter.evaluate(table, where)]
        keys = set(zip(hits.config_id, hits.backend, hits.env, strict=True))
        keep = [k in keys for k in zip(table.config_id, table.backend, table.env, strict=True)]
        table = table[keep]
    if variant:
        table = table[table.variant == variant]
    return table


def rows_table(table: pd.DataFrame) -> Table:
    """One line per row (one variant): latency, counts, efficiency, memory, status."""
    import pandas as pd

    constant = constant_axes(table.to_dict("records"))
    out = Table(title=f"{describe_constant(constant)}", header_style="bold")
    machine = ["machine"] if "machine" in table.columns else []  # a run that mixes hardware
    counted = bool(table.instructions.notna().any())
    for column in (*machine, "configuration", "variant", "latency", "params", "MACs",
                   "achieved", "roofline", "peak mem", *(["instructions"] if counted else []),
                   "kernels", "status"):  # fmt: skip
        out.add_column(
            column,
            justify="left"
            if column in ("machine", "configuration", "variant", "kernels")
            else "right",
        )
    for row in table.to_dict("records"):
        iqr = row["latency_iqr_s"] / row["latency_median_s"] if row["latency_median_s"] else 0
        bound = row["roofline_bound"]
        fraction = row["roofline_fraction"]
        out.add_row(
            *[row[c] for c in machine],
            table_label(row, constant),
            row["variant"],
            f"{format_seconds(row['latency_median_s'])} ±{iqr:.0%}"
            if pd.notna(row["latency_median_s"])
            else "-",
            format_count(row["params"]),
            format_count(row["macs"]),
            format_rate(row["achieved_flops_per_s"], "FLOP/s"),
            f"{fraction:.0%} of {bound}" if bound and pd.notna(fraction) else "-",
            format_bytes(row["peak_memory_bytes"]),
            *([format_count(row["instructions"])] if counted else []),
            Text(
                row["kernels"] or "-",
                style="yellow" if "reference_kernel:" in row["warnings"] else "",
            ),
            Text(row["status"], style="" if row["status"] == "ok" else "red"),
        )
    return out


def execute(
    run: Path,
    backends: list[str] | None,
    variant: str | None,
    where: str | None,
    breakdown: bool,
    quiet: bool,
    console: Console,
    view: str = "run",
) -> int:
    """``view``: the run's table and summary ("run"), one variant's rows ("variant") or the
    kernels each pair ran ("kernels")."""
    import pandas as pd

    from dscbench import results
    from dscbench.analysis import mixed_hardware_note, row_machines, with_machines
    from dscbench.export.console import render_run

    loaded = results.load_results(run)
    # A merge of different hardware: every row names its machine, and summaries are per machine.
    table = select(with_machines(loaded.results, loaded.meta), backends, variant, where)
    if table.empty:
        raise SpecError(f"{run}: no rows match the filters")
    if view == "kernels":
        from dscbench.export.table import kernels_table

        console.print(kernels_table(table))
        return 0
    if variant:
        console.print(rows_table(table))
        if "machine" in table.columns:
            console.print(mixed_hardware_note(row_machines(table)), highlight=False)
        return 0
    parts = None
    if breakdown:
        path = Path(run) / results.BREAKDOWN_PARQUET
        parts = pd.read_parquet(path) if path.exists() else pd.DataFrame()
        parts = parts[parts.config_id.isin(set(table.config_id))] if len(parts) else parts
    directory = Path(run) if Path(run).is_dir() else Path(run).parent
    samples = loaded.samples[loaded.samples.config_id.isin(set(table.config_id))]
    render_run(table, loaded.meta, directory, console, quiet, parts, stored=True, samples=samples)
    if not quiet:
        show_accuracy(run, loaded.results, console)
    return 0


def show_accuracy(run: Path, rows: pd.DataFrame, console: Console) -> None:
    """A run `dscbench accuracy` wrote: its accuracy table too."""
    from dscbench.export import accuracy as render
    from dscbench.results.accuracy import load_accuracy

    found = load_accuracy(run)
    if found is not None:
        console.print(render.rich_table(render.document(*found, rows)))
