"""The journal: crash-consistent checkpoints of a run in progress (``Journal`` says how), and
reading the committed part of one back.

A run directory being measured holds, besides run.json:
  journal.jsonl   append-only checkpoints: records, samples and canary samples
  manifest.json   the small file, replaced atomically, that names the committed part
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dscbench.errors import ResultsError
from dscbench.jsonsafe import json_safe
from dscbench.results.files import fsync_dir, write_json, write_run, writing
from dscbench.results.rows import CaseRecord, derived_meta
from dscbench.results.schema import (
    BREAKDOWN_PARQUET,
    RESULTS_CSV,
    RESULTS_PARQUET,
    RUN_JSON,
    SAMPLE_COLUMNS,
    SAMPLES_PARQUET,
    SCHEMA_VERSION,
    empty_samples,
)
from dscbench.spec import VARIANTS

JOURNAL = "journal.jsonl"
CONSOLIDATED = (RESULTS_PARQUET, RESULTS_CSV, SAMPLES_PARQUET, BREAKDOWN_PARQUET)
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "dscbench-manifest"
# run.json fields that change while a run goes on: the manifest carries their current values
DYNAMIC_META = (
    "status",
    "rounds_done",
    "updated_at",
    "finished_at",
    "timings",
    "precision",
    "confirmation",
    "worker_crashes",
)


class Journal:
    """A run directory written while it is measured, consistent at every instant.

    - ``run.json`` holds what is known before measuring; it is written once at the start.
    - ``journal.jsonl`` is append-only: each checkpoint appends one line with the records of
      the cases touched since the previous one, their new samples and new canary samples,
      then fsyncs. A checkpoint costs what it adds, never a rewrite of what is there.
    - ``manifest.json`` (a few hundred bytes, replaced atomically: temp file, fsync, rename)
      names how many bytes of the journal are committed, and the run's status and timings.
      Readers trust only the committed bytes: a kill -9 halfway through an append or a rename
      leaves the previous checkpoint readable.
    - At the end (complete, interrupted, crashed) the tables are consolidated into
      results.parquet, results.csv, samples.parquet (and breakdown.parquet), run.json is
      rewritten with everything, and the manifest then says ``consolidated``. Until it does,
      readers rebuild the tables from the journal (``load_results`` does this).
    """

    def __init__(self, directory: Path, committed: int = 0, generation: int = 0) -> None:
        self.directory = Path(directory)
        self.committed = committed
        self.generation = generation

    @classmethod
    def create(cls, directory: Path, meta: Mapping[str, Any]) -> Journal:
        """Start a run's journal: run.json, an empty journal, generation 0 of the manifest."""
        journal = cls(directory)
        with writing(directory):
            for name in CONSOLIDATED:  # an earlier run's (--force): not this one's
                (journal.directory / name).unlink(missing_ok=True)
            write_json(journal.directory / RUN_JSON, dict(meta, schema_version=SCHEMA_VERSION))
            with open(journal.directory / JOURNAL, "wb") as f:
                os.fsync(f.fileno())
            journal._commit(meta, consolidated=False)
        return journal

    @classmethod
    def reopen(cls, directory: Path) -> Journal:
        """Continue a run's journal (``--resume``): drop any bytes past the committed ones (an
        append a kill cut short) and mark the run as being measured again."""
        manifest = read_manifest(Path(directory))
        if manifest is None:
            raise ResultsError(f"{directory}: no {MANIFEST}: not a run this dscbench can resume")
        journal = cls(directory, manifest["journal_bytes"], manifest["generation"])
        with open(journal.directory / JOURNAL, "r+b") as f:
            f.truncate(journal.committed)
            os.fsync(f.fileno())
        return journal

    def append(self, parts: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> None:
        """Append one checkpoint (a line per part) and commit it, with ``meta``'s current
        dynamic fields: readers see all of its lines or none."""
        with writing(self.directory):
            with open(self.directory / JOURNAL, "r+b") as f:
                f.seek(self.committed)
                f.truncate()
                written = 0
                for part in parts:
                    line = json.dumps(json_safe(part), allow_nan=False, default=str) + "\n"
                    written += f.write(line.encode())
                f.flush()
                os.fsync(f.fileno())
            self.committed += written
            self._commit(meta, consolidated=False)

    def consolidate(
        self,
        results: pd.DataFrame,
        samples: pd.DataFrame,
        meta: dict[str, Any],
        breakdown: pd.DataFrame | None = None,
    ) -> None:
        """Write the final tables and run.json, then switch the manifest to them."""
        write_run(self.directory, results, samples, meta, breakdown)
        with writing(self.directory):
            self._commit(meta, consolidated=True)

    def unconsolidate(self, meta: Mapping[str, Any]) -> None:
        """Going on with a run (``--resume``): the journal is the truth again, and the old
        tables go (readers would otherwise take them for the current ones)."""
        self._commit(meta, consolidated=False)
        for name in CONSOLIDATED:
            (self.directory / name).unlink(missing_ok=True)

    def _commit(self, meta: Mapping[str, Any], consolidated: bool) -> None:
        self.generation += 1
        doc = {
            "format": MANIFEST_FORMAT,
            "schema_version": SCHEMA_VERSION,
            "generation": self.generation,
            "journal_bytes": self.committed,
            "consolidated": consolidated,
            **{k: meta.get(k) for k in DYNAMIC_META},
        }
        write_json(self.directory / MANIFEST, doc, indent=None)
        fsync_dir(self.directory)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    """The manifest of a run directory, None when there is none (a run written before the
    journal existed, a merge, an export)."""
    path = Path(directory) / MANIFEST
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: unreadable ({exc})") from None
    if (
        not isinstance(doc, dict)
        or doc.get("format") != MANIFEST_FORMAT
        or not isinstance(doc.get("journal_bytes"), int)
        or not isinstance(doc.get("generation"), int)
    ):
        raise ResultsError(f"{path}: not a dscbench manifest")
    return doc


@dataclass
class JournalContents:
    """What the committed part of a journal holds: the latest record of every case in every
    environment, every sample, every canary sample."""

    records: list[CaseRecord]
    samples: pd.DataFrame
    canary: list[dict[str, float]]


def read_journal(directory: Path, committed: int) -> JournalContents:
    """The first ``committed`` bytes of a run's journal, assembled."""
    path = Path(directory) / JOURNAL
    try:
        with open(path, "rb") as f:
            data = f.read(committed)
    except OSError as exc:
        raise ResultsError(f"{path}: unreadable ({exc.strerror or exc})") from None
    if len(data) < committed:
        raise ResultsError(
            f"{path}: shorter than its manifest says ({len(data)} < {committed} bytes)"
        )
    records: dict[tuple[str, str, str], CaseRecord] = {}
    columns: dict[str, list[Any]] = {c: [] for c in SAMPLE_COLUMNS}
    canary: list[dict[str, float]] = []
    for number, line in enumerate(data.splitlines(), 1):
        try:
            batch = json.loads(line)
            if "resume_from" in batch:  # --resume redoes the interrupted round: drop its samples
                keep = [i for i, r in enumerate(columns["round"]) if r < batch["resume_from"]]
                columns = {c: [values[i] for i in keep] for c, values in columns.items()}
                canary = [c for c in canary if c.get("round", 0) < batch["resume_from"]]
            for doc in batch.get("records", ()):
                record = CaseRecord.from_json(doc)
                records[record.key] = record
            new = batch.get("samples", {})
            for c in SAMPLE_COLUMNS:  # a journal from before schema 5 has no process: null
                columns[c] += new.get(c, [None] * len(new.get("time_s", ())))
            canary += batch.get("canary", [])
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise ResultsError(
                f"{path}: line {number} is corrupt ({type(exc).__name__}: {exc})"
            ) from None
    samples = pd.DataFrame(columns) if columns["time_s"] else empty_samples()
    if len(samples):  # the order a run's own tables have: by case, environment, variant, time
        order = {key: i for i, key in enumerate(records)}
        rank = [
            order.get((c, b, e), len(order)) * len(VARIANTS) + VARIANTS.index(v)
            for c, b, e, v in zip(
                samples.config_id, samples.backend, samples.env, samples.variant, strict=True
            )
        ]
        samples = samples.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)
    return JournalContents(list(records.values()), samples, canary)


def meta_from_journal(
    meta: dict[str, Any], manifest: Mapping[str, Any], contents: JournalContents
) -> dict[str, Any]:
    """run.json as it stands at the manifest's checkpoint."""
    meta = dict(meta)
    meta.update({k: manifest.get(k) for k in DYNAMIC_META if k in manifest})
    meta.update(derived_meta(contents.records, contents.samples))
    if contents.canary and isinstance(meta.get("canary"), dict):
        meta["canary"] = dict(meta["canary"], samples=contents.canary)
    return meta
