"""Reading the history: its series, their points, and a stored run as compare reads one
(``compare --history``'s baseline)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from dscbench.history import fingerprint as fp
from dscbench.history.store import HistoryError, fingerprints, rows, run_files, runs


def _rows_of_runs(*columns: Any) -> sa.Select[Any]:
    """SELECT ``columns`` from the rows joined with their runs."""
    return sa.select(*columns).join(runs, rows.c.run_id == runs.c.id)


def _frame(engine: sa.Engine, query: sa.Select[Any]) -> pd.DataFrame:
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all())


def series_summary(engine: sa.Engine) -> pd.DataFrame:
    """One line per series: its configuration, variant, backend, environment, metric, the
    number of runs and the newest value."""
    newest = (
        _rows_of_runs(rows.c.series, sa.func.max(runs.c.started_at).label("newest"),
                      sa.func.count().label("runs"))
        .group_by(rows.c.series)
        .subquery()
    )  # fmt: skip
    described = (rows.c.series, rows.c.config_id, rows.c.variant, rows.c.backend, rows.c.env,
                 rows.c.metric)  # fmt: skip
    query = (
        _rows_of_runs(*described, newest.c.runs, rows.c.value.label("latest"))
        .join(newest, (newest.c.series == rows.c.series) & (newest.c.newest == runs.c.started_at))
        .order_by(rows.c.config_id, rows.c.backend, rows.c.env, rows.c.variant)
    )
    return _frame(engine, query)


def series_points(engine: sa.Engine, series: str) -> pd.DataFrame:
    """A series' points, oldest run first: run time, commit, branch, status, value, interval."""
    query = (
        _rows_of_runs(runs.c.started_at, runs.c.commit, runs.c.branch, rows.c.status,
                      rows.c.metric, rows.c.value, rows.c.low, rows.c.high,
                      rows.c.id.label("row_id"))
        .where(rows.c.series == series)
        .order_by(runs.c.started_at, runs.c.id)
    )  # fmt: skip
    return _frame(engine, query)


def points(
    engine: sa.Engine, branch: str | None = None, since: datetime | None = None
) -> pd.DataFrame:
    """Every measured value in the history (ok rows), oldest run first: series, run, commit,
    time, value, metric and what the series is; only ``branch``'s runs and runs started at or
    after ``since`` when given."""
    query = _rows_of_runs(
        rows.c.series, rows.c.run_id, runs.c.commit, runs.c.started_at, rows.c.value,
        rows.c.low, rows.c.high, rows.c.metric, rows.c.config_id, rows.c.variant,
        rows.c.backend, rows.c.env,
    ).where((rows.c.status == "ok") & rows.c.value.is_not(None))  # fmt: skip
    if branch is not None:
        query = query.where(runs.c.branch == branch)
    if since is not None:
        query = query.where(runs.c.started_at >= since)
    frame = _frame(engine, query.order_by(runs.c.started_at, runs.c.id))
    if not frame.empty:
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame


def load_run(engine: sa.Engine, run_id: int) -> Any:
    """A stored run as a results.ResultSet (its run.json and tables), as compare reads one."""
    import io

    from dscbench.results import from_tables

    query = sa.select(runs.c.meta, runs.c.commit, run_files.c.results, run_files.c.samples).join(
        run_files, run_files.c.run_id == runs.c.id, isouter=True
    )
    with engine.connect() as conn:
        found = conn.execute(query.where(runs.c.id == run_id)).first()
    if found is None or found.results is None:
        raise HistoryError(
            f"run {run_id} of the history has no tables (added before history schema 2)"
        )
    meta = json.loads(found.meta)
    return from_tables(
        pd.read_parquet(io.BytesIO(found.results)),
        pd.read_parquet(io.BytesIO(found.samples)),
        meta,
        f"the history's run of commit {found.commit[:12]}",
    )


def baseline_run(
    engine: sa.Engine, commit: str, candidate: Any, facts: tuple[str, ...] = fp.DEFAULT_FACTS
) -> tuple[int, str, int]:
    """The stored run compare takes as the baseline for ``candidate`` (a ResultSet): the newest
    run of ``commit`` (a full or abbreviated id) whose rows share a fingerprint with the
    candidate's; (its id, its full commit, how many runs of that commit there were).
    HistoryError when the commit is not in the history, is ambiguous, or has no run on the
    candidate's fingerprint."""
    prefix = commit.strip().lower()
    with engine.connect() as conn:
        commits = conn.execute(
            sa.select(runs.c.commit).where(runs.c.commit.startswith(prefix)).distinct()
        ).scalars().all()  # fmt: skip
        if not commits:
            raise HistoryError(f"--baseline-commit {commit}: not in the history")
        if len(commits) > 1:
            shown = ", ".join(sorted(c[:12] for c in commits)[:5])
            raise HistoryError(f"--baseline-commit {commit}: ambiguous ({shown}); give more digits")
        wanted = {
            fp.key_of(fp.facts_of(candidate.meta, row, facts))
            for row in candidate.results.to_dict("records")
        }
        stored = conn.execute(
            sa.select(runs.c.id, runs.c.started_at, fingerprints.c.key)
            .join(rows, rows.c.run_id == runs.c.id)
            .join(fingerprints, fingerprints.c.id == rows.c.fingerprint_id)
            .where(runs.c.commit == commits[0])
            .distinct()
            .order_by(runs.c.started_at.desc(), runs.c.id.desc())
        ).all()
    matching = [r.id for r in stored if r.key in wanted]
    if not matching:
        raise HistoryError(
            f"--baseline-commit {commit}: its {len({r.id for r in stored})} stored run(s) were "
            "measured on another machine or stack (fingerprint) than this run"
        )
    return matching[0], commits[0], len({r.id for r in stored})
