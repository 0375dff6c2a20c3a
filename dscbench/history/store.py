"""The results store: every row of every run added to one database (SQLAlchemy Core), so that
history can follow each series over commits.

- **Where.** ``--db URL`` (or ``DSCBENCH_HISTORY_DB``): ``sqlite:///PATH``, or a bare path, for
  an embedded file (default: history.sqlite under platformdirs' user data directory), or
  ``postgresql://USER@HOST/DB`` for a server a team shares (the psycopg driver).
- **Tables** (``SCHEMA_VERSION``, recorded in ``dscbench_info``): ``runs``, one per run added
  (its key, commit, branch, times, host, what it measured, its run.json); ``fingerprints``
  (fingerprint.py: facts -> key); ``rows``, one per result row (its series, configuration,
  status, the estimate and its 95% interval, speedup, instructions, kernels); ``units``, the
  per-process values behind a timed row's estimate. A database written by a newer dscbench is
  refused; an older one is brought up to date (``MIGRATIONS``) in the transaction that opens it.
- **Adding** is one transaction: a run already there (the same key: host, start time and
  configurations of its run.json) is refused, and an error leaves nothing half-written.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from dscbench.errors import DscbenchError
from dscbench.history import fingerprint as fp
from dscbench.jsonsafe import json_safe

SCHEMA_VERSION = 1  # 1: runs, fingerprints, rows, units
DB_VARIABLE = "DSCBENCH_HISTORY_DB"
DEFAULT_FILE = "history.sqlite"
CONFIDENCE = 0.95
# A row's configuration, kept as JSON beside its config_id for filters and labels.
CONFIG_GROUPS = ("key", "shape", "model", "config")

metadata = sa.MetaData()
info = sa.Table(
    "dscbench_info",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)
runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(64), nullable=False, unique=True),
    sa.Column("commit", sa.String(64), nullable=False, index=True),
    sa.Column("branch", sa.String(255), index=True),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("host", sa.String(255)),
    sa.Column("measure", sa.String(16), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("source", sa.Text),
    sa.Column("dscbench", sa.String(64)),
    sa.Column("run_schema", sa.Integer, nullable=False),
    sa.Column("meta", sa.Text, nullable=False),  # run.json
)
fingerprints = sa.Table(
    "fingerprints",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("key", sa.String(16), nullable=False, unique=True),
    sa.Column("facts", sa.Text, nullable=False),  # JSON
)
rows = sa.Table(
    "rows",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("fingerprint_id", sa.ForeignKey("fingerprints.id"), nullable=False),
    sa.Column("series", sa.String(16), nullable=False, index=True),
    sa.Column("config_id", sa.String(255), nullable=False),
    sa.Column("variant", sa.String(16), nullable=False),
    sa.Column("backend", sa.String(64), nullable=False),
    sa.Column("env", sa.String(128), nullable=False),
    sa.Column("config", sa.Text, nullable=False),  # JSON: CONFIG_GROUPS' columns
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("metric", sa.String(16), nullable=False),  # "latency_s" or "instructions"
    sa.Column("value", sa.Float),  # the estimate: seconds per call, or instructions per call
    sa.Column("low", sa.Float),  # its 95% interval (none for instructions: exact)
    sa.Column("high", sa.Float),
    sa.Column("units", sa.Integer),  # processes (or rounds) behind it
    sa.Column("speedup", sa.Float),
    sa.Column("speedup_low", sa.Float),
    sa.Column("speedup_high", sa.Float),
    sa.Column("instructions_spread", sa.Float),
    sa.Column("allocator_instructions", sa.Float),
    sa.Column("kernels", sa.Text),
    sa.Column("warnings", sa.Text),
)
units = sa.Table(
    "units",
    metadata,
    sa.Column("row_id", sa.ForeignKey("rows.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("value", sa.Float, nullable=False),  # seconds per call, one process's
)
# version -> the step that brings a database of that version to the next (in one transaction)
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {}


class HistoryError(DscbenchError):
    """A database that cannot be used, a run added twice, a commit not in the history."""


def default_url() -> str:
    """``DSCBENCH_HISTORY_DB``, else the embedded file under the user data directory."""
    import platformdirs

    if os.environ.get(DB_VARIABLE):
        return os.environ[DB_VARIABLE]
    return str(Path(platformdirs.user_data_dir("dscbench")) / DEFAULT_FILE)


def parse_url(text: str) -> sa.URL:
    """A database URL, or a bare path meaning an embedded file (``sqlite:///PATH``)."""
    if "://" not in text:
        return sa.URL.create("sqlite", database=str(Path(text).expanduser()))
    try:
        url = sa.make_url(text)
    except (sa.exc.ArgumentError, ValueError):
        raise HistoryError(
            f"--db {text!r}: not a database URL (sqlite:///PATH, postgresql://...)"
        ) from None
    if url.drivername == "postgresql":  # SQLAlchemy's default driver is psycopg2; we use psycopg
        url = url.set(drivername="postgresql+psycopg")
    return url


def shown(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


@contextmanager
def opened(text: str | None = None, *, create: bool = True) -> Iterator[sa.Engine]:
    """The database at ``text`` (default_url), its tables created or migrated; HistoryError
    (one line, exit 2) when it cannot be reached or is newer than this dscbench."""
    url = parse_url(text or default_url())
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        path = Path(url.database)
        if not path.exists() and not create:
            raise HistoryError(f"no history database at {path} (dscbench history add creates it)")
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = sa.create_engine(url)
    except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
        driver = "; pip install 'psycopg[binary]'" if "postgres" in url.drivername else ""
        raise HistoryError(f"--db {shown(url)}: cannot use this database ({exc}){driver}") from None
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_foreign_keys)
    try:
        try:
            with engine.begin() as conn:
                _ready(conn, url)
        except sa.exc.OperationalError as exc:
            raise HistoryError(
                f"--db {shown(url)}: cannot open the database: {_reason(exc)}"
            ) from None
        try:
            yield engine
        except sa.exc.OperationalError as exc:  # the server went away, a lock timed out
            raise HistoryError(f"--db {shown(url)}: {_reason(exc)} (nothing was written)") from None
    finally:
        engine.dispose()


def _reason(exc: sa.exc.OperationalError) -> str:
    """The driver's first line of why."""
    text = str(exc.orig if exc.orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlite_foreign_keys(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _ready(conn: sa.Connection, url: sa.URL) -> None:
    """Create the tables of an empty database; migrate an older one; refuse a newer one."""
    if not sa.inspect(conn).has_table(info.name):
        metadata.create_all(conn)
        conn.execute(sa.insert(info).values(name="schema_version", value=str(SCHEMA_VERSION)))
        return
    version = int(conn.execute(sa.select(info.c.value).where(info.c.name == "schema_version"))
                  .scalar_one())  # fmt: skip
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"--db {shown(url)}: written by a newer dscbench (history schema {version}; this one "
            f"reads up to {SCHEMA_VERSION}): upgrade dscbench"
        )
    while version < SCHEMA_VERSION:
        MIGRATIONS[version](conn)
        version += 1
        conn.execute(
            sa.update(info).where(info.c.name == "schema_version").values(value=str(version))
        )


def run_key(meta: Mapping[str, Any]) -> str:
    """A run's identity: the SHA-256 of its host, start time, configurations and shard."""
    parts = [meta.get("host"), meta.get("started_at"), meta.get("configurations_sha256"),
             json.dumps(meta.get("shard"), sort_keys=True)]  # fmt: skip
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Added:
    """What ``add`` stored."""

    run_id: int
    key: str
    rows: int
    failed: int
    series: int


def add(
    engine: sa.Engine,
    result_set: Any,
    commit: str,
    branch: str | None = None,
    facts: tuple[str, ...] = fp.DEFAULT_FACTS,
    now: datetime | None = None,
) -> Added:
    """Store every row of ``result_set`` (results.ResultSet) under ``commit``, in one
    transaction; HistoryError when the run is there already."""
    meta, table = result_set.meta, result_set.results
    key = run_key(meta)
    measure = (meta.get("harness") or {}).get("measure") or "time"
    estimates = timed_estimates(result_set.samples) if measure == "time" else {}
    with engine.begin() as conn:
        there = conn.execute(
            sa.select(runs.c.commit, runs.c.added_at).where(runs.c.key == key)
        ).first()
        if there is not None:
            raise HistoryError(
                f"this run (started {meta.get('started_at')} on {meta.get('host')}) is in the "
                f"history already: added {there.added_at:%Y-%m-%d %H:%M} for commit "
                f"{there.commit[:12]}"
            )
        run_id = conn.execute(
            sa.insert(runs).values(
                key=key,
                commit=commit,
                branch=branch,
                started_at=_time(meta.get("started_at")),
                added_at=now or datetime.now(timezone.utc),
                host=meta.get("host"),
                measure=measure,
                status=meta.get("status") or "",
                source=meta.get("source"),
                dscbench=(meta.get("environment") or {}).get("dscbench"),
                run_schema=int(meta.get("schema_version") or 0),
                meta=json.dumps(json_safe(meta)),
            )
        ).inserted_primary_key[0]
        prints: dict[str, int] = {}
        series: set[str] = set()
        failed = 0
        for row in table.to_dict("records"):
            facts_row = fp.facts_of(meta, row, facts)
            print_key = fp.key_of(facts_row)
            if print_key not in prints:
                prints[print_key] = _fingerprint_id(conn, print_key, facts_row)
            values = _row_values(row, measure, estimates)
            s = fp.series_key(row["config_id"], row["variant"], row["backend"],
                              str(row.get("env") or ""), print_key)  # fmt: skip
            series.add(s)
            failed += values["status"] != "ok"
            row_id = conn.execute(
                sa.insert(rows).values(
                    run_id=run_id, fingerprint_id=prints[print_key], series=s, **values
                )
            ).inserted_primary_key[0]
            unit_values = estimates.get(_key(row), {}).get("units", [])
            if unit_values:
                conn.execute(
                    sa.insert(units),
                    [
                        {"row_id": row_id, "position": i, "value": v}
                        for i, v in enumerate(unit_values)
                    ],
                )
    return Added(run_id, key, len(table), failed, len(series))


def _fingerprint_id(conn: sa.Connection, key: str, facts: Mapping[str, str]) -> int:
    found = conn.execute(sa.select(fingerprints.c.id).where(fingerprints.c.key == key)).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            sa.insert(fingerprints).values(key=key, facts=json.dumps(dict(sorted(facts.items()))))
        ).inserted_primary_key[0]
    )


def _time(text: Any) -> datetime:
    try:
        stamp = datetime.fromisoformat(str(text))
    except ValueError:
        raise HistoryError(f"run.json's started_at {text!r} is not a time") from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (row["config_id"], row["backend"], str(row.get("env") or ""), row["variant"])


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _row_values(
    row: Mapping[str, Any], measure: str, estimates: Mapping[tuple[str, ...], Mapping[str, Any]]
) -> dict[str, Any]:
    """A result row's columns in the store."""
    from dscbench.results.schema import RESULT_SCHEMA, columns_of

    config = {c: row.get(c) for g in CONFIG_GROUPS for c in columns_of(RESULT_SCHEMA, g)}
    status = str(row.get("status") or "")
    out: dict[str, Any] = {
        "config_id": row["config_id"],
        "variant": row["variant"],
        "backend": row["backend"],
        "env": str(row.get("env") or ""),
        "config": json.dumps(json_safe(config), sort_keys=True),
        "status": status,
        "error": row.get("error") or None,
        "speedup": _number(row.get("speedup")),
        "speedup_low": _number(row.get("speedup_ci_low")),
        "speedup_high": _number(row.get("speedup_ci_high")),
        "instructions_spread": _number(row.get("instructions_spread")),
        "allocator_instructions": _number(row.get("allocator_instructions")),
        "kernels": row.get("kernels") or None,
        "warnings": row.get("warnings") or None,
    }
    if measure == "instructions":
        out.update(metric="instructions", value=_number(row.get("instructions")))
        return out
    estimate = estimates.get(_key(row), {})
    out.update(
        metric="latency_s",
        value=estimate.get("value", _number(row.get("latency_median_s"))),
        low=estimate.get("low"),
        high=estimate.get("high"),
        units=estimate.get("n"),
    )
    if status != "ok":
        out["value"] = out["low"] = out["high"] = None
    return out


def timed_estimates(samples: pd.DataFrame) -> dict[tuple[str, ...], dict[str, Any]]:
    """Per row of a timed run: the estimate compare uses (the trimmed mean of the log latency
    over processes, round effects removed; stats.runs.row_stats), its 95% interval, and the
    per-process values behind it, in seconds."""
    from dscbench.stats import remove_round_effects, row_estimates, t_quantile, unit_values
    from dscbench.stats.runs import KEY, MIN_ROWS_FOR_SPREAD, round_values

    if samples.empty:
        return {}
    values = round_values(samples, "latency")
    values = remove_round_effects(values, KEY, "backend", MIN_ROWS_FOR_SPREAD)
    stats = row_estimates(values, KEY)
    per_unit = unit_values(values, KEY).groupby(KEY, sort=False).cost.agg(list)
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for key, r in stats.iterrows():
        half = (
            float(t_quantile(CONFIDENCE, r["df"])) * float(np.sqrt(r["se2"]))
            if r["n"] >= 2 and np.isfinite(r["se2"])
            else np.nan
        )
        out[tuple(key)] = {
            "value": float(np.exp(r["mean"])),
            "low": float(np.exp(r["mean"] - half)) if np.isfinite(half) else None,
            "high": float(np.exp(r["mean"] + half)) if np.isfinite(half) else None,
            "n": int(r["n"]),
            "units": [float(np.exp(c)) for c in per_unit.get(key, [])],
        }
    return out


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
        rows.c.metric, rows.c.config_id, rows.c.variant, rows.c.backend, rows.c.env,
    ).where((rows.c.status == "ok") & rows.c.value.is_not(None))  # fmt: skip
    if branch is not None:
        query = query.where(runs.c.branch == branch)
    if since is not None:
        query = query.where(runs.c.started_at >= since)
    frame = _frame(engine, query.order_by(runs.c.started_at, runs.c.id))
    if not frame.empty:
        frame["started_at"] = pd.to_datetime(frame["started_at"], utc=True)
    return frame
