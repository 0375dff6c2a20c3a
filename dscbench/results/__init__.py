"""Result files: one row per configuration x variant x backend, raw samples, run metadata.

Layout of a run directory:
  run.json                        schema_version, environment, settings, timings, status
  journal.jsonl, manifest.json    while it runs: append-only checkpoints, and the small file
                                  that names the committed part (see journal.Journal)
  results.parquet / results.csv   RESULT_SCHEMA, one row per config x variant x backend
  samples.parquet                 SAMPLE_SCHEMA, one row per timed block
  breakdown.parquet               BREAKDOWN_SCHEMA (network runs)
The tables are written (atomically) when the run ends; until then readers build them from
the journal. ``merge`` and older runs have no journal: their tables are all there is.

One job per module, each importing only those above it in this list:
  schema    columns, pyarrow schemas, SCHEMA_VERSION and its history, file names, statuses,
            pandas dtypes, ResultSet
  rows      CaseRecord (the runner's records) -> result and breakdown tables, derived run.json
  files     atomic writes, fsync, write_run, the output directory
  journal   Journal and its manifest; reading the committed part back
  checks    run.json's fields and schema version, table upgrades, impossible values
  io        load_results, read_meta, load_journal, the JSON export

The names below are the package's public face: ``from dscbench import results`` and
``results.load_results(...)`` read as they did when this was one module.
"""

from dscbench.errors import ResultsError
from dscbench.jsonsafe import json_safe
from dscbench.results.checks import META_FIELDS, meta_problem
from dscbench.results.files import (
    check_output_dir,
    fsync_dir,
    prepare_output_dir,
    write_json,
    write_run,
)
from dscbench.results.io import (
    EXPORT_FORMAT,
    from_tables,
    load_journal,
    load_results,
    read_meta,
    to_json,
)
from dscbench.results.journal import (
    CONSOLIDATED,
    DYNAMIC_META,
    JOURNAL,
    MANIFEST,
    MANIFEST_FORMAT,
    Journal,
    JournalContents,
    meta_from_journal,
    read_journal,
    read_manifest,
)
from dscbench.results.rows import (
    ROWS_PER_PART,
    CaseRecord,
    breakdown_table,
    build_tables,
    derived_meta,
    devices_of,
)
from dscbench.results.schema import (
    ADDED_IN_V2,
    ADDED_IN_V3,
    ADDED_IN_V4,
    ADDED_IN_V6,
    ADDED_IN_V7,
    ADDED_IN_V8,
    ADDED_IN_V9,
    BREAKDOWN_COLUMNS,
    BREAKDOWN_PARQUET,
    BREAKDOWN_SCHEMA,
    KILLED,
    LABEL_COLUMNS,
    LATENCY_COLUMNS,
    MODEL_COLUMNS,
    PAIR_COLUMNS,
    PARITY_COLUMNS,
    RESULT_COLUMNS,
    RESULT_SCHEMA,
    RESULTS_CSV,
    RESULTS_PARQUET,
    RUN_JSON,
    RUN_STATUSES,
    SAMPLE_COLUMNS,
    SAMPLE_SCHEMA,
    SAMPLES_PARQUET,
    SCHEMA_VERSION,
    SHAPE_COLUMNS,
    ResultSet,
    RunStatus,
    Status,
    column,
    columns_of,
    empty_samples,
    pandas_dtypes,
)

__all__ = [
    "ADDED_IN_V2",
    "ADDED_IN_V3",
    "ADDED_IN_V4",
    "ADDED_IN_V6",
    "ADDED_IN_V7",
    "ADDED_IN_V8",
    "ADDED_IN_V9",
    "BREAKDOWN_COLUMNS",
    "BREAKDOWN_PARQUET",
    "BREAKDOWN_SCHEMA",
    "CONSOLIDATED",
    "DYNAMIC_META",
    "EXPORT_FORMAT",
    "JOURNAL",
    "KILLED",
    "LABEL_COLUMNS",
    "LATENCY_COLUMNS",
    "MANIFEST",
    "MANIFEST_FORMAT",
    "META_FIELDS",
    "MODEL_COLUMNS",
    "PAIR_COLUMNS",
    "PARITY_COLUMNS",
    "RESULTS_CSV",
    "RESULTS_PARQUET",
    "RESULT_COLUMNS",
    "RESULT_SCHEMA",
    "ROWS_PER_PART",
    "RUN_JSON",
    "RUN_STATUSES",
    "SAMPLES_PARQUET",
    "SAMPLE_COLUMNS",
    "SAMPLE_SCHEMA",
    "SCHEMA_VERSION",
    "SHAPE_COLUMNS",
    "CaseRecord",
    "Journal",
    "JournalContents",
    "ResultSet",
    "ResultsError",
    "RunStatus",
    "Status",
    "breakdown_table",
    "build_tables",
    "check_output_dir",
    "column",
    "columns_of",
    "derived_meta",
    "devices_of",
    "empty_samples",
    "from_tables",
    "fsync_dir",
    "json_safe",
    "load_journal",
    "load_results",
    "meta_from_journal",
    "meta_problem",
    "pandas_dtypes",
    "prepare_output_dir",
    "read_journal",
    "read_manifest",
    "read_meta",
    "to_json",
    "write_json",
    "write_run",
]
