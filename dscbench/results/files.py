"""Writing a run directory's files: each one atomically (a temporary file beside it, fsync,
rename over it), so a file is complete or absent, never half-written; the output directory is
checked and made first."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dscbench.errors import ResultsError
from dscbench.jsonsafe import json_safe
from dscbench.results.schema import (
    BREAKDOWN_PARQUET,
    BREAKDOWN_SCHEMA,
    RESULT_SCHEMA,
    RESULTS_CSV,
    RESULTS_PARQUET,
    RUN_JSON,
    SAMPLE_SCHEMA,
    SAMPLES_PARQUET,
    SCHEMA_VERSION,
)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same directory, then rename over ``path``."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; results are ordinary files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def writing(directory: Path) -> Iterator[None]:
    """An OSError while writing (disk full, directory removed, permissions) becomes one
    ResultsError naming ``directory``."""
    try:
        yield
    except OSError as exc:
        raise ResultsError(f"cannot write results to {directory}: {exc.strerror or exc}") from None


def check_output_dir(path: Path, force: bool) -> None:
    """Refuse a path that is not a directory, or an existing non-empty one unless ``force``
    (a writer's lock file alone does not count)."""
    from dscbench.lock import LOCK

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ResultsError(f"--output {path}: exists and is not a directory")
    if path.exists() and any(p.name != LOCK for p in path.iterdir()) and not force:
        raise ResultsError(f"--output {path}: directory exists and is not empty (use --force)")


def prepare_output_dir(path: Path, force: bool) -> Path:
    """Create the run directory; refuse an existing non-empty one unless ``force``."""
    path = Path(path)
    check_output_dir(path, force)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--output {path}: cannot create ({exc.strerror or exc})") from None
    return path


def fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (a crash right after it could otherwise undo it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_json(path: Path, doc: Mapping[str, Any], indent: int | None = 2) -> None:
    """Write ``doc`` as strict JSON (missing numbers as null), fsync'd, atomically."""

    def write(p: Path) -> None:
        with open(p, "w", encoding="utf-8") as f:
            f.write(json.dumps(json_safe(doc), indent=indent, default=str, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    atomic_write(path, write)


def write_run(
    directory: Path,
    results: pd.DataFrame,
    samples: pd.DataFrame,
    meta: dict[str, Any],
    breakdown: pd.DataFrame | None = None,
) -> None:
    """Write every file atomically (each is complete or absent, never half-written); the
    breakdown only when there is one (model runs)."""
    directory = Path(directory)
    meta = dict(meta, schema_version=SCHEMA_VERSION)
    with writing(directory):
        if breakdown is not None and len(breakdown):
            atomic_write(
                directory / BREAKDOWN_PARQUET,
                lambda p: breakdown.to_parquet(p, index=False, schema=BREAKDOWN_SCHEMA),
            )
        atomic_write(
            directory / RESULTS_PARQUET,
            lambda p: results.to_parquet(p, index=False, schema=RESULT_SCHEMA),
        )
        atomic_write(directory / RESULTS_CSV, lambda p: results.to_csv(p, index=False))
        atomic_write(
            directory / SAMPLES_PARQUET,
            lambda p: samples.to_parquet(p, index=False, schema=SAMPLE_SCHEMA),
        )
        write_json(directory / RUN_JSON, meta)


def read_versioned_json(path: Path, what: str, newest: int) -> dict[str, Any]:
    """A JSON document with an integer ``version`` no newer than ``newest``; anything else is
    a ResultsError naming the file (``what`` it should have been)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not readable JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
        raise ResultsError(f"{path}: no integer 'version'; not {what}")
    if doc["version"] > newest:
        raise ResultsError(
            f"{path}: {what} version {doc['version']} is newer than this dscbench reads "
            f"({newest}); upgrade dscbench"
        )
    return doc
