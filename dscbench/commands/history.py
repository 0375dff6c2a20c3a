"""`dscbench history`: keep every run in a database (history/store.py) and look at a series.

Imports no torch, and no pandas or SQLAlchemy until a subcommand runs (cli.py imports this
module for ``--help``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from dscbench.commands import common

app = typer.Typer()
group = typer.Typer(
    name="history",
    help="Keep every run in a database and follow each series over commits.",
    no_args_is_help=True,
)
app.add_typer(group)

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        envvar="DSCBENCH_HISTORY_DB",
        help="Database: sqlite:///PATH (or a bare path) for an embedded file, postgresql://... "
        "for a shared server. Default: history.sqlite under the user data directory.",
    ),
]

BranchOption = Annotated[str | None, typer.Option(help="Only this branch's runs.")]
SinceOption = Annotated[
    str | None, typer.Option(help="Only runs started on or after this date (YYYY-MM-DD).")
]


def history_points(db: str | None, branch: str | None, since: str | None) -> object:
    """The history's measured values (queries.points) for --branch and --since."""
    from dscbench.history import queries, store

    start = parse_since(since)
    with store.opened(db, create=False) as engine:
        return queries.points(engine, branch, start)


@group.command("add")
def add(
    run: Annotated[Path, typer.Argument(help="A run directory, results file or JSON export.")],
    commit: Annotated[str, typer.Option(help="The commit the run measured (e.g. $GITHUB_SHA).")],
    branch: Annotated[str | None, typer.Option(help="Its branch (e.g. main).")] = None,
    db: DbOption = None,
    fingerprint: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated facts that define a series' machine and stack (default: "
            "cpu_model,cpu_count,machine,device_name,torch,onnxruntime); any library in "
            "run.json's environment.libraries, or os, python, cpu_capability, host.",
        ),
    ] = None,
) -> None:
    """Record every row of a run (failed rows as failed) under its commit; a run already in
    the history is refused."""
    from dscbench.history import fingerprint as fp
    from dscbench.history import record, store
    from dscbench.results import load_results

    facts = fp.parse_facts(fingerprint)
    commit = check_commit(commit)
    result_set = load_results(run)
    with store.opened(db) as engine:
        added = record.add(engine, result_set, commit, branch, facts)
    common.console.print(
        f"added {run}: {added.rows} rows ({added.failed} failed) in {added.series} series, "
        f"commit {commit[:12]}" + (f" on {branch}" if branch else ""),
        highlight=False,
    )


def check_commit(text: str) -> str:
    """A commit id: 4 to 64 hex digits (a SHA-1 or SHA-256, full or abbreviated)."""
    from dscbench.errors import SpecError

    value = text.strip().lower()
    if not 4 <= len(value) <= 64 or any(c not in "0123456789abcdef" for c in value):
        raise SpecError(f"--commit {text!r}: not a commit id (4 to 64 hex digits)")
    return value


class CheckFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"


@group.command("check")
def check(
    db: DbOption = None,
    branch: BranchOption = None,
    since: SinceOption = None,
    threshold: Annotated[
        str,
        typer.Option(
            help="Exit 1 when the newest commit starts a slowdown larger than this (5%, 0.05)."
        ),
    ] = "5%",
    output_format: Annotated[
        CheckFormat, typer.Option("--format", case_sensitive=False, help="table, markdown, json.")
    ] = CheckFormat.table,
) -> None:
    """Find the change points of every series: where it stepped, between which commits, by
    how much; exit 1 when the newest commit starts a slowdown beyond --threshold."""
    from dscbench.history import check as checking
    from dscbench.spec import parse_fraction

    limit = parse_fraction("--threshold", threshold)
    report = checking.check(history_points(db, branch, since), limit)
    if output_format is CheckFormat.json:
        common.console.print_json(checking.to_json(report))
    elif output_format is CheckFormat.markdown:
        common.console.print(checking.markdown(report), markup=False, highlight=False)
    else:
        common.console.print(checking.table(report))
    raise typer.Exit(report.exit_code())


@group.command("report")
def report(
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory to write the site to.")],
    db: DbOption = None,
    branch: BranchOption = None,
    since: SinceOption = None,
    threshold: Annotated[
        str, typer.Option(help="What history check calls a regression (5%, 0.05).")
    ] = "5%",
) -> None:
    """Write the history as a static site: a summary page (newest changes first, filters for
    backend, variant and configuration) and a trend chart per series."""
    from dscbench.export import dashboard
    from dscbench.history import check as checking
    from dscbench.spec import parse_fraction

    limit = parse_fraction("--threshold", threshold)
    points = history_points(db, branch, since)
    if points.empty:  # type: ignore[attr-defined]
        from dscbench.errors import SpecError

        raise SpecError("the history holds no measured rows to show (dscbench history add)")
    title = "dscbench history" + (f" ({branch})" if branch else "")
    written = dashboard.write(output, points, checking.check(points, limit), title)
    common.console.print(f"wrote {len(written)} pages to {output} (open {written[0]})")


def parse_since(text: str | None) -> datetime | None:
    """--since YYYY-MM-DD (or an ISO time), in UTC unless it says."""
    from dscbench.errors import SpecError

    if text is None:
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise SpecError(f"--since {text!r}: not a date (YYYY-MM-DD)") from None
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc)  # as the store keeps its times


@group.command("show")
def show(
    db: DbOption = None,
    series: Annotated[
        str | None, typer.Option(help="One series' key (as the list prints it): its points.")
    ] = None,
) -> None:
    """List the series in the history (latest value, runs), or print one series' points."""
    from dscbench.history import queries, store

    with store.opened(db, create=False) as engine:
        if series is None:
            table = series_table(queries.series_summary(engine))
        else:
            points = queries.series_points(engine, series)
            if points.empty:
                from dscbench.errors import SpecError

                raise SpecError(f"--series {series!r}: no such series in the history")
            table = points_table(points)
    common.console.print(table)


def series_table(summary: object) -> Table:
    table = Table(title="series")
    for column in ("series", "config", "variant", "backend", "env", "runs", "latest", "metric"):
        table.add_column(column, justify="right" if column in ("runs", "latest") else "left")
    for r in summary.itertuples():  # type: ignore[attr-defined]
        table.add_row(r.series, r.config_id, r.variant, r.backend, r.env or "-", str(r.runs),
                      _value(r.latest, r.metric), r.metric)  # fmt: skip
    return table


def points_table(points: object) -> Table:
    table = Table(title="points, oldest first")
    for column in ("started", "commit", "branch", "status", "value", "95% interval"):
        table.add_column(column, justify="right" if column in ("value",) else "left")
    for r in points.itertuples():  # type: ignore[attr-defined]
        interval = (
            f"[{_value(r.low, r.metric)}, {_value(r.high, r.metric)}]"
            if r.low == r.low and r.low is not None
            else "-"
        )
        status = Text(r.status, "green" if r.status == "ok" else "red")
        table.add_row(f"{r.started_at:%Y-%m-%d %H:%M}", r.commit[:12], r.branch or "-", status,
                      _value(r.value, r.metric), interval)  # fmt: skip
    return table


def _value(x: float | None, metric: str) -> str:
    if x is None or x != x:
        return "-"
    if metric == "instructions":
        return f"{x:,.0f}"
    from dscbench.export.units import format_seconds

    return format_seconds(x)
