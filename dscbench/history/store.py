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
- **Adding** (record.py) is one transaction: a run already there (the same key: host, start
  time and configurations of its run.json) is refused, and an error leaves nothing
  half-written. **Reading** (queries.py): series, points, a stored run for compare.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dscbench.errors import DscbenchError

SCHEMA_VERSION = 2  # 1: runs, fingerprints, rows, units; 2: run_files (compare's baseline)
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
run_files = sa.Table(
    "run_files",
    metadata,
    sa.Column("run_id", sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    sa.Column("results", sa.LargeBinary, nullable=False),  # parquet (zstd), the result rows
    sa.Column("samples", sa.LargeBinary, nullable=False),  # parquet (zstd), the raw samples
)


def _add_run_files(conn: sa.Connection) -> None:
    """1 -> 2: runs keep their tables, so compare can take a stored run as its baseline (runs
    added before have none: compare refuses them as baselines)."""
    run_files.create(conn)


# version -> the step that brings a database of that version to the next (in one transaction)
MIGRATIONS: dict[int, Callable[[sa.Connection], None]] = {1: _add_run_files}


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
