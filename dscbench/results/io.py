"""Reading runs: ``load_results`` (a run directory, a results file with run.json beside it, or a
JSON export), run.json alone, a run as its journal holds it; and the JSON export itself.

A run directory holds run.json, results.parquet / results.csv, samples.parquet and, for model
runs, breakdown.parquet (schema.py's files and columns); while a run is measured, and when one
was killed, the journal (journal.py) is the truth and the tables are built from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dscbench.errors import ResultsError
from dscbench.jsonsafe import json_safe
from dscbench.results.checks import (
    check_meta,
    check_values,
    meta_problem,
    upgrade_samples,
    upgrade_table,
)
from dscbench.results.journal import (
    JOURNAL,
    MANIFEST,
    JournalContents,
    meta_from_journal,
    read_journal,
    read_manifest,
)
from dscbench.results.rows import build_tables
from dscbench.results.schema import (
    KILLED,
    RESULT_COLUMNS,
    RESULTS_PARQUET,
    RUN_JSON,
    SAMPLE_COLUMNS,
    SAMPLE_DTYPES,
    SAMPLES_PARQUET,
    SCHEMA_VERSION,
    STR_COLUMNS,
    ResultSet,
    RunStatus,
    empty_samples,
    typed,
)

EXPORT_FORMAT = "dscbench-results"


def to_json(result_set: ResultSet) -> dict[str, Any]:
    """One self-contained JSON document: run metadata, result rows and raw samples (columnar),
    readable by ``load_results`` (and so by ``dscbench compare``)."""
    rows = json_safe(result_set.results.astype(object).to_dict("records"))
    samples = {c: json_safe(result_set.samples[c].tolist()) for c in SAMPLE_COLUMNS}
    meta = json_safe(dict(result_set.meta, schema_version=SCHEMA_VERSION))
    return {"format": EXPORT_FORMAT, "meta": meta, "results": rows, "samples": samples}


def _load_json_export(path: Path) -> ResultSet:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None
    if not isinstance(doc, dict) or doc.get("format") != EXPORT_FORMAT:
        raise ResultsError(f"{path}: not a dscbench JSON export (no format {EXPORT_FORMAT!r})")
    meta = doc.get("meta")
    if not isinstance(meta, dict):
        raise ResultsError(f"{path}: no meta object")
    meta = check_meta(meta, path)
    try:
        results = pd.DataFrame(doc["results"])
        samples = pd.DataFrame(doc["samples"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResultsError(f"{path}: malformed results or samples ({exc})") from None
    return _finish(results, samples, meta, path)


def read_meta(directory: Path) -> dict[str, Any]:
    """run.json of the run in ``directory``, checked (ResultsError naming a bad field)."""
    return _read_meta(Path(directory), Path(directory))


def _read_meta(directory: Path, asked: Path) -> dict[str, Any]:
    """run.json of ``directory``, checked and migrated (``asked`` is what the user named)."""
    meta_path = directory / RUN_JSON
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{asked}: no {RUN_JSON} beside the results") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{meta_path}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{meta_path}: not a JSON object")
    return check_meta(meta, meta_path)


def _from_journal(
    directory: Path, meta: dict[str, Any], manifest: Mapping[str, Any]
) -> tuple[ResultSet, JournalContents]:
    contents = read_journal(directory, manifest["journal_bytes"])
    meta = meta_from_journal(meta, manifest, contents)
    results, samples = build_tables(contents.records, contents.samples, meta)
    return _finish(results, samples, meta, directory / JOURNAL), contents


def load_journal(directory: Path) -> tuple[ResultSet, JournalContents]:
    """A run as its journal holds it, consolidated or not, with the records and samples the
    journal committed (what --resume restores); ResultsError when it has none."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    if manifest is None or not (directory / JOURNAL).is_file():
        raise ResultsError(
            f"{directory}: no {MANIFEST} and {JOURNAL} (a merged run, or one written by a "
            "dscbench before 0.6)"
        )
    return _from_journal(directory, _read_meta(directory, directory), manifest)


def load_results(path: Path) -> ResultSet:
    """Read a run directory, a results.parquet / results.csv file (with run.json beside it), or
    a JSON export (``dscbench export``). A run that says it is running while no process
    writes it reads as ``killed``."""
    path = Path(path)
    loaded = _load_results(path)
    if loaded.meta.get("status") == RunStatus.RUNNING and not _is_export(path):
        from dscbench.lock import holder

        if holder(path if path.is_dir() else path.parent) is None:
            loaded.meta["status"] = KILLED
    return loaded


def _is_export(path: Path) -> bool:
    """Whether ``path`` names a JSON export (any .json file but run.json)."""
    return path.is_file() and path.suffix == ".json" and path.name != RUN_JSON


def _load_results(path: Path) -> ResultSet:
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if _is_export(path):
        return _load_json_export(path)
    directory = path if path.is_dir() else path.parent
    if path.name == RUN_JSON:
        path = directory
    meta = _read_meta(directory, path)
    manifest = read_manifest(directory)
    if manifest is not None and not manifest.get("consolidated"):
        # A run being measured, or one killed: its journal is the truth (journal.Journal's doc).
        return _from_journal(directory, meta, manifest)[0]
    table = path if path.is_file() else directory / RESULTS_PARQUET
    if manifest is None and not table.exists() and (directory / JOURNAL).exists():
        raise ResultsError(
            f"{directory}: the run stopped before its first checkpoint; nothing was measured"
        )
    try:
        if table.suffix == ".csv":
            results = pd.read_csv(
                table,
                dtype=dict.fromkeys(STR_COLUMNS, str),
                keep_default_na=False,  # an empty error or warnings cell is "", not NaN
                na_values={c: [""] for c in RESULT_COLUMNS if c not in STR_COLUMNS},
            )
        else:
            results = pd.read_parquet(table)
    except Exception as exc:  # pyarrow and pandas raise many kinds; all mean "unreadable"
        raise ResultsError(f"{table}: unreadable ({type(exc).__name__}: {exc})") from None
    samples_path = directory / SAMPLES_PARQUET
    try:
        samples = pd.read_parquet(samples_path)
    except FileNotFoundError:
        samples = empty_samples()
    except Exception as exc:
        raise ResultsError(f"{samples_path}: unreadable ({type(exc).__name__}: {exc})") from None
    return _finish(results, samples, meta, table)


def from_tables(
    results: pd.DataFrame, samples: pd.DataFrame, meta: dict[str, Any], source: str
) -> ResultSet:
    """A ResultSet from tables read elsewhere (a history database's copy of a run, named
    ``source`` in errors), upgraded, checked and typed as a run directory's are."""
    problem = meta_problem(meta)
    if problem:
        raise ResultsError(f"{source}: {problem}")
    return _finish(results, samples, meta, Path(source))


def _finish(
    results: pd.DataFrame, samples: pd.DataFrame, meta: dict[str, Any], source: Path
) -> ResultSet:
    """Upgrade, check and type a result table and its samples read from ``source``."""
    results = upgrade_table(results, meta["schema_version"], meta)
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ResultsError(f"{source}: missing columns {', '.join(missing)}")
    try:
        results = typed(results[RESULT_COLUMNS])
    except (ValueError, TypeError) as exc:
        raise ResultsError(f"{source}: a column has values of the wrong type ({exc})") from None
    samples = upgrade_samples(samples, meta)
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ResultsError(f"{source}: samples lack columns {', '.join(missing)}")
    try:
        samples = samples[SAMPLE_COLUMNS].astype(SAMPLE_DTYPES)
    except (ValueError, TypeError) as exc:
        raise ResultsError(f"{source}: samples have values of the wrong type ({exc})") from None
    check_values(results, samples, source)
    return ResultSet(meta, results, samples)
