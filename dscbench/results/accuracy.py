"""A run's accuracy table (``dscbench accuracy``): ``accuracy.parquet``, one row per twin and
seed (``ACCURACY_SCHEMA``), and ``accuracy.json`` (the data set, the recipe, the seeds, the
summary over seeds), next to the run's own files. Both are rewritten atomically after every
trained seed, so an interrupted command keeps what it trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from dscbench.errors import ResultsError
from dscbench.results.files import atomic_write, read_versioned_json, write_json, writing

ACCURACY_PARQUET = "accuracy.parquet"
ACCURACY_JSON = "accuracy.json"
ACCURACY_VERSION = 1

ACCURACY_SCHEMA = pa.schema(
    [
        pa.field(
            "variant",
            pa.string(),
            nullable=False,
            metadata={"meaning": "standard or separable twin"},
        ),
        pa.field(
            "seed",
            pa.int64(),
            nullable=False,
            metadata={"meaning": "the seed of the weights and the batch order"},
        ),
        pa.field("epochs", pa.int64(), nullable=False),
        pa.field(
            "test_accuracy",
            pa.float64(),
            nullable=False,
            metadata={"meaning": "share of the test split classified right", "unit": "1"},
        ),
        pa.field(
            "test_loss",
            pa.float64(),
            nullable=False,
            metadata={"meaning": "mean cross-entropy on the test split", "unit": "nat"},
        ),
        pa.field(
            "train_loss",
            pa.float64(),
            nullable=False,
            metadata={"meaning": "mean cross-entropy over the last epoch", "unit": "nat"},
        ),
        pa.field(
            "train_time_s",
            pa.float64(),
            nullable=False,
            metadata={"meaning": "wall time of all epochs", "unit": "s"},
        ),
        pa.field(
            "epoch_time_s",
            pa.float64(),
            nullable=False,
            metadata={"meaning": "the median epoch's wall time", "unit": "s"},
        ),
        pa.field(
            "params",
            pa.int64(),
            nullable=False,
            metadata={"meaning": "parameters of the twin", "unit": "count"},
        ),
    ]
)
ACCURACY_COLUMNS = ACCURACY_SCHEMA.names


def write_accuracy(directory: Path, table: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Both files, atomically (the table first: accuracy.json names what it holds)."""
    table = table[ACCURACY_COLUMNS]
    with writing(directory):
        atomic_write(
            directory / ACCURACY_PARQUET,
            lambda p: table.to_parquet(p, index=False, schema=ACCURACY_SCHEMA),
        )
        write_json(directory / ACCURACY_JSON, {"version": ACCURACY_VERSION, **meta})


def run_directory(path: Path) -> Path | None:
    """The run directory of ``path``: itself, or the directory of a file in a run (one with
    run.json); None for a file elsewhere (a JSON export has no accuracy files)."""
    path = Path(path)
    if path.is_dir():
        return path
    return path.parent if (path.parent / "run.json").exists() else None


def load_accuracy(path: Path) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """(the table, accuracy.json) of the run at ``path``; None when it has none. A damaged or
    newer file is a ResultsError naming it."""
    directory = run_directory(path)
    if directory is None:
        return None
    doc_path, table_path = directory / ACCURACY_JSON, directory / ACCURACY_PARQUET
    if not doc_path.exists():
        return None
    doc = read_versioned_json(doc_path, "an accuracy file", ACCURACY_VERSION)
    try:
        table = pd.read_parquet(table_path)
    except (OSError, pa.ArrowException) as exc:
        raise ResultsError(f"{table_path}: not a readable parquet file ({exc})") from None
    missing = [c for c in ACCURACY_COLUMNS if c not in table.columns]
    if missing:
        raise ResultsError(f"{table_path}: no column {missing[0]!r}")
    bad = table[~table["variant"].isin(["standard", "separable"])]
    if len(bad):
        raise ResultsError(
            f"{table_path}: variant {bad['variant'].iloc[0]!r} is not standard or separable"
        )
    out_of_range = table[~table["test_accuracy"].between(0, 1)]
    if len(out_of_range):
        raise ResultsError(
            f"{table_path}: test_accuracy {out_of_range['test_accuracy'].iloc[0]} is outside 0..1"
        )
    return table[ACCURACY_COLUMNS], doc
