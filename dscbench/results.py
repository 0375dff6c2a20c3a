"""Result files: one row per configuration x variant x backend, raw samples, run metadata.

Layout of a run directory:
  run.json                        schema_version, environment, settings, timings, status
  journal.jsonl, manifest.json    while it runs: append-only checkpoints, and the small file
                                  that names the committed part (see Journal)
  results.parquet / results.csv   RESULT_SCHEMA, one row per config x variant x backend
  samples.parquet                 SAMPLE_SCHEMA, one row per timed block
  breakdown.parquet               BREAKDOWN_SCHEMA (network runs)
The tables are written (atomically) when the run ends; until then readers build them from
the journal. ``merge`` and older runs have no journal: their tables are all there is.

Schema history (bump SCHEMA_VERSION on any change a reader must know about, add a migration):
  1  first version (dscbench 0.1.0)
  2  backends: device_name, execution, compile_s, peak_memory_bytes, parity_max_abs_err,
     parity_max_rel_err, parity_tolerance; prepare_s per variant instead of per configuration;
     statuses compile_error, parity_failed, skipped
  3  interleaved environments: ``env`` column in results and samples ("" for a plain run),
     status worker_crashed; speedup intervals are t intervals over rounds (they were a
     bootstrap over pairs); ``pair`` numbers the set of blocks all environments and variants of
     a visit share; run.json gains environments, canary and precision
  4  model twins and training: ``model``, ``width_mult``, ``resolution``, ``depth``,
     ``input_shape``, ``twin``, ``optimizer``, ``other_flops``, ``step_flops``; the conv shape
     columns are nullable (empty on model rows); ``peak_memory_bytes`` on CPU rows too;
     breakdown.parquet beside model runs; efficiency columns (``achieved_flops_per_s``,
     ``achieved_bytes_per_s``, ``roofline_bound``, ``roofline_fraction``) and run.json's
     ``calibration``; ``host`` and ``shard`` columns (--shard, dscbench merge)
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from dscbench import stats
from dscbench.errors import ResultsError
from dscbench.roofline import add_efficiency
from dscbench.spec import VARIANTS, Spec, spec_from_json

SCHEMA_VERSION = 4

STR, INT, FLOAT, BOOL = pa.string(), pa.int64(), pa.float64(), pa.bool_()


def column(
    name: str, type_: pa.DataType, group: str, doc: str, unit: str = "", nullable: bool = True
) -> pa.Field:
    """One column: its arrow type (an int64 that may be empty is a nullable integer), the group
    it belongs to, what it means and its unit (README's Columns table says more)."""
    return pa.field(name, type_, nullable, metadata={"group": group, "doc": doc, "unit": unit})


# The single source of truth for the result table's columns, their order, types and units:
# writing, reading, upgrading and typing all derive from it.
RESULT_SCHEMA = pa.schema(
    [
        column("config_id", STR, "config", "readable key of the configuration", nullable=False),
        column("variant", STR, "config", "standard or separable", nullable=False),
        column("backend", STR, "config", "backend name", nullable=False),
        column("env", STR, "config", "--env name; empty in a plain run", nullable=False),
        column("device", STR, "config", "cpu or cuda", nullable=False),
        column("mode", STR, "config", "inference or training", nullable=False),
        column("optimizer", STR, "config", "sgd or adam on training rows", nullable=False),
        column("dtype", STR, "config", "element type", nullable=False),
        column("memory_format", STR, "config", "contiguous or channels_last", nullable=False),
        column("threads", INT, "config", "intra-op threads", nullable=False),
        column("model", STR, "model", "network name; empty on layer rows", nullable=False),
        column("width_mult", FLOAT, "model", "width multiplier"),
        column("resolution", INT, "model", "input side", "pixels"),
        column("depth", INT, "model", "middle-flow blocks"),
        column("input_shape", STR, "model", "network input CxHxW", nullable=False),
        column("twin", STR, "model", "twin transform of a user model", nullable=False),
        column("batch", INT, "shape", "batch size", nullable=False),
        column("in_channels", INT, "shape", "input channels"),
        column("out_channels", INT, "shape", "output channels"),
        column("height", INT, "shape", "input height", "pixels"),
        column("width", INT, "shape", "input width", "pixels"),
        column("kernel", INT, "shape", "kernel side"),
        column("stride", INT, "shape", "stride"),
        column("padding", INT, "shape", "padding (kernel // 2)"),
        column("bias", BOOL, "shape", "conv bias", nullable=False),
        column("out_height", INT, "shape", "output height", "pixels"),
        column("out_width", INT, "shape", "output width", "pixels"),
        column("params", INT, "counts", "learnable parameters"),
        column("macs", INT, "counts", "conv + FC multiply-accumulates, forward", "MAC"),
        column("flops", INT, "counts", "2 x macs", "FLOP"),
        column("other_flops", INT, "counts", "BN, activations, pooling, adds", "FLOP"),
        column("step_flops", INT, "counts", "conv + FC FLOPs of one timed iteration", "FLOP"),
        column("bytes", INT, "counts", "compulsory memory traffic", "bytes"),
        column("intensity", FLOAT, "counts", "flops / bytes", "FLOP/byte"),
        column("latency_median_s", FLOAT, "latency", "median per-iteration latency", "s"),
        column("latency_mean_s", FLOAT, "latency", "mean per-iteration latency", "s"),
        column("latency_min_s", FLOAT, "latency", "fastest sample", "s"),
        column("latency_max_s", FLOAT, "latency", "slowest sample", "s"),
        column("latency_iqr_s", FLOAT, "latency", "interquartile range", "s"),
        column("latency_p10_s", FLOAT, "latency", "10th percentile", "s"),
        column("latency_p90_s", FLOAT, "latency", "90th percentile", "s"),
        column("latency_cv", FLOAT, "latency", "std / mean"),
        column("n_samples", INT, "latency", "timed blocks"),
        column("iterations_per_sample", INT, "latency", "iterations per timed block"),
        column("rounds", INT, "latency", "rounds that measured the row", nullable=False),
        column("speedup", FLOAT, "pair", "separable row: standard / separable latency", "x"),
        column("speedup_ci_low", FLOAT, "pair", "lower end of the 95% interval", "x"),
        column("speedup_ci_high", FLOAT, "pair", "upper end of the 95% interval", "x"),
        column("mac_reduction", FLOAT, "pair", "standard / separable MACs", "x"),
        column("param_reduction", FLOAT, "pair", "standard / separable params", "x"),
        column("efficiency", FLOAT, "pair", "speedup / mac_reduction"),
        column("achieved_flops_per_s", FLOAT, "efficiency", "step_flops / latency", "FLOP/s"),
        column("achieved_bytes_per_s", FLOAT, "efficiency", "bytes / latency", "bytes/s"),
        column("roofline_bound", STR, "efficiency", "compute or memory", nullable=False),
        column("roofline_fraction", FLOAT, "efficiency", "achieved / roofline allowance"),
        column("parity_max_abs_err", FLOAT, "parity", "largest absolute error vs float64"),
        column("parity_max_rel_err", FLOAT, "parity", "largest relative error vs float64"),
        column("parity_tolerance", FLOAT, "parity", "the dtype's tolerance"),
        column("prepare_s", FLOAT, "cost", "preparing, all builds, compilation excluded", "s"),
        column("compile_s", FLOAT, "cost", "compiling (first build)", "s"),
        column("peak_memory_bytes", FLOAT, "cost", "peak bytes of one iteration", "bytes"),
        column("device_name", STR, "meta", "CPU or GPU model", nullable=False),
        column("execution", STR, "meta", "what actually ran", nullable=False),
        column("warnings", STR, "meta", "typed warnings, '; '-separated", nullable=False),
        column("status", STR, "meta", "ok, or the kind of failure", nullable=False),
        column("error", STR, "meta", "one-line cause of a failure", nullable=False),
        column("seed", INT, "meta", "seed of weights, inputs and order", nullable=False),
        column("host", STR, "meta", "machine that measured the row", nullable=False),
        column("shard", INT, "meta", "shard index with --shard"),
    ]
)
SAMPLE_SCHEMA = pa.schema(
    [
        column("config_id", STR, "key", "configuration", nullable=False),
        column("variant", STR, "key", "standard or separable", nullable=False),
        column("backend", STR, "key", "backend name", nullable=False),
        column("env", STR, "key", "--env name", nullable=False),
        column("round", pa.int32(), "sample", "round that measured the block", nullable=False),
        column("pair", pa.int32(), "sample", "set of blocks measured together", nullable=False),
        column("iterations", INT, "sample", "iterations in the block", nullable=False),
        column("time_s", FLOAT, "sample", "block time / iterations", "s", nullable=False),
    ]
)
BREAKDOWN_SCHEMA = pa.schema(
    [
        column("config_id", STR, "key", "model configuration", nullable=False),
        column("variant", STR, "key", "standard or separable", nullable=False),
        column("layer_type", STR, "key", "kind of layer", nullable=False),
        column("layers", INT, "counts", "layers of that kind", nullable=False),
        column("macs", INT, "counts", "their MACs", "MAC", nullable=False),
        column("params", INT, "counts", "their parameters", nullable=False),
        column("macs_share", FLOAT, "counts", "share of the network's MACs"),
        column("params_share", FLOAT, "counts", "share of the network's parameters"),
    ]
)


def columns_of(schema: pa.Schema, group: str | None = None) -> list[str]:
    """The schema's column names (of one group, by field metadata), in order."""
    return [f.name for f in schema if group is None or f.metadata[b"group"].decode() == group]


RESULT_COLUMNS = columns_of(RESULT_SCHEMA)
SAMPLE_COLUMNS = columns_of(SAMPLE_SCHEMA)
BREAKDOWN_COLUMNS = columns_of(BREAKDOWN_SCHEMA)
SHAPE_COLUMNS = ("batch", "in_channels", "out_channels", "height", "width", "kernel", "stride")
MODEL_COLUMNS = tuple(columns_of(RESULT_SCHEMA, "model"))
LATENCY_COLUMNS = columns_of(RESULT_SCHEMA, "latency")
PAIR_COLUMNS = columns_of(RESULT_SCHEMA, "pair")
PARITY_COLUMNS = columns_of(RESULT_SCHEMA, "parity")
# What a human label of a row is made of (tables, comparisons).
LABEL_COLUMNS = (
    *SHAPE_COLUMNS,
    *MODEL_COLUMNS,
    "mode",
    "optimizer",
    "dtype",
    "threads",
    "memory_format",
)
# Columns added by each schema version, with the value older files get (see _migrate).
ADDED_IN_V2 = {
    "device_name": "",
    "execution": "",
    "compile_s": math.nan,
    "peak_memory_bytes": math.nan,
    "parity_max_abs_err": math.nan,
    "parity_max_rel_err": math.nan,
    "parity_tolerance": math.nan,
}
ADDED_IN_V3 = {"env": ""}
ADDED_IN_V4 = {
    "optimizer": "",
    "model": "",
    "width_mult": math.nan,
    "resolution": None,
    "depth": None,
    "input_shape": "",
    "twin": "",
    "other_flops": None,  # not recorded before; step_flops equals flops (inference only)
    "achieved_flops_per_s": math.nan,
    "achieved_bytes_per_s": math.nan,
    "roofline_bound": "",
    "roofline_fraction": math.nan,
    "host": "",
    "shard": None,
}

RESULTS_PARQUET = "results.parquet"
RESULTS_CSV = "results.csv"
SAMPLES_PARQUET = "samples.parquet"
RUN_JSON = "run.json"
BREAKDOWN_PARQUET = "breakdown.parquet"


@dataclass
class ResultSet:
    """A run read back: metadata (run.json), result rows and raw samples."""

    meta: dict[str, Any]
    results: pd.DataFrame
    samples: pd.DataFrame


# ---------------------------------------------------------------------------------------------
# Records -> tables
# ---------------------------------------------------------------------------------------------


@dataclass
class CaseRecord:
    """What the runner knows of one case in one environment, as plain data: the runner hands
    these (and the raw samples) to this module, which turns them into rows; the journal stores
    them, and ``--resume`` restores the runner from them. Per-variant fields are dicts keyed
    by variant; seconds and bytes as everywhere."""

    spec: dict[str, Any]  # spec.spec_to_json
    backend: str
    env: str = ""
    status: str = "not_measured"
    error: str = ""
    traceback: str = ""
    visits: int = 0  # rounds that measured it
    sets: int = 0  # sets of blocks measured so far (the next set's index)
    checked: bool = False  # parity and counts checked on a first build
    build_s: float = math.nan  # the first build of both variants, compilation included
    fresh: bool = True  # rebuilt on every visit
    iterations: dict[str, int] = field(default_factory=dict)  # per timed block
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # counting.Counts fields
    prepare_s: dict[str, float] = field(default_factory=dict)
    compile_s: dict[str, float] = field(default_factory=dict)
    peak_memory_bytes: dict[str, float] = field(default_factory=dict)
    execution: dict[str, str] = field(default_factory=dict)
    parity: dict[str, dict[str, Any]] = field(default_factory=dict)  # parity.Parity fields
    breakdown: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """(config_id, backend, env): what a row and its samples are found by."""
        return (self.spec_object.config_id, self.backend, self.env)

    @property
    def spec_object(self) -> Spec:
        cached = self.__dict__.get("_spec")
        if cached is None:
            cached = self.__dict__["_spec"] = spec_from_json(self.spec)
        return cached

    def to_json(self) -> dict[str, Any]:
        return json_safe({f.name: getattr(self, f.name) for f in fields(self)})

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> CaseRecord:
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in data.items() if k in known})
        # JSON has no NaN: json_safe wrote null for every missing number
        record.build_s = math.nan if record.build_s is None else float(record.build_s)
        for attr in ("prepare_s", "compile_s", "peak_memory_bytes"):
            values = getattr(record, attr)
            setattr(record, attr, {v: math.nan if x is None else x for v, x in values.items()})
        return record


def _counts_columns(c: Mapping[str, int]) -> dict[str, Any]:
    flops = 2 * c["macs"]
    return dict(
        params=c["params"],
        macs=c["macs"],
        flops=flops,
        other_flops=c.get("other_flops", 0),
        step_flops=2 * c.get("step_macs", 0),
        bytes=c["bytes"],
        intensity=flops / c["bytes"],
    )


def _rows_for(
    record: CaseRecord,
    series: Mapping[str, Mapping[str, np.ndarray]],
    device: tuple[str, str],
    timer_overhead: float | None,
) -> list[dict[str, Any]]:
    """Both variants' rows of one record; ``series`` holds each variant's samples (arrays of
    SAMPLE_COLUMNS, in the order measured)."""
    spec = record.spec_object
    base = dict(
        config_id=spec.config_id,
        backend=record.backend,
        env=record.env,
        device=device[0],
        device_name=device[1],
        mode=spec.mode,
        optimizer=spec.optimizer,
        dtype=spec.dtype,
        memory_format=spec.memory_format,
        threads=spec.threads,
        batch=spec.batch,
        in_channels=spec.in_channels,
        height=spec.height,
        width=spec.width,
    )
    if spec.kind == "model":
        base.update(
            model=spec.model,
            width_mult=spec.width_mult,
            resolution=spec.resolution,
            depth=spec.depth or None,
            input_shape="x".join(str(d) for d in spec.input_shape),
            twin=spec.twin,
        )
    else:
        base.update(
            out_channels=spec.out_channels,
            kernel=spec.kernel,
            stride=spec.stride,
            padding=spec.padding,
            bias=spec.bias,
            out_height=spec.out_height,
            out_width=spec.out_width,
        )
    measured = all(v in series and len(series[v]) for v in VARIANTS)
    rows = []
    for v in VARIANTS:
        row = dict(base, variant=v)
        c = record.counts.get(v)
        if c is not None:
            row.update(_counts_columns(c))
        row.update(dict.fromkeys(LATENCY_COLUMNS + PAIR_COLUMNS + PARITY_COLUMNS, math.nan))
        row.update(
            status=record.status,
            error=record.error,
            warnings="",
            prepare_s=record.prepare_s.get(v, math.nan),
            compile_s=record.compile_s.get(v, math.nan),
            peak_memory_bytes=record.peak_memory_bytes.get(v, math.nan),
            execution=record.execution.get(v, ""),
            rounds=record.visits,
        )
        check = record.parity.get(v)
        if check is not None:
            row.update(
                parity_max_abs_err=check["max_abs_err"],
                parity_max_rel_err=check["max_rel_err"],
                parity_tolerance=check["tolerance"],
            )
        if measured:
            times = series[v]["time_s"]
            iterations = int(series[v]["iterations"][-1])
            s = stats.summarize(times)
            warns = stats.check_samples(times, s.median * iterations, timer_overhead)
            row.update(
                latency_median_s=s.median,
                latency_mean_s=s.mean,
                latency_min_s=s.min,
                latency_max_s=s.max,
                latency_iqr_s=s.iqr,
                latency_p10_s=s.p10,
                latency_p90_s=s.p90,
                latency_cv=s.cv,
                n_samples=s.n,
                iterations_per_sample=iterations,
                warnings="; ".join(f"{w.code}: {w.message}" for w in warns),
            )
        rows.append(row)
    std, sep = rows
    if "macs" in sep:
        sep["mac_reduction"] = std["macs"] / sep["macs"]
        sep["param_reduction"] = std["params"] / sep["params"]
    a, b, r = (
        stats.pair_blocks(
            series["standard"]["pair"].tolist(),
            series["standard"]["time_s"].tolist(),
            series["standard"]["round"].tolist(),
            series["separable"]["pair"].tolist(),
            series["separable"]["time_s"].tolist(),
        )
        if measured
        else (np.empty(0),) * 3
    )
    if a.size:
        # Only complete sets (both variants measured) enter the speedup; an interrupt can
        # leave a lone block, which stays in the samples and latency statistics.
        speedup = stats.round_speedup(a, b, r)
        sep.update(
            speedup=speedup.value,
            speedup_ci_low=speedup.ci_low,
            speedup_ci_high=speedup.ci_high,
            efficiency=speedup.value / sep.get("mac_reduction", math.nan),
        )
        few = stats.check_rounds(speedup.rounds, math.isfinite(speedup.ci_low))
        if few:
            sep["warnings"] = "; ".join(
                [w for w in [sep["warnings"]] if w] + [f"{w.code}: {w.message}" for w in few]
            )
    return rows


def devices_of(meta: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """Backend name -> (device kind, device name), from run.json's backend facts (the first
    environment's, then any other environment's)."""
    devices: dict[str, tuple[str, str]] = {}
    facts = [meta.get("backends") or {}] + [
        (e or {}).get("backends") or {} for e in (meta.get("environments") or {}).values()
    ]
    for one in facts:
        for name, info in one.items():
            if isinstance(info, dict):
                devices.setdefault(name, (info.get("device", ""), info.get("device_name", "")))
    return devices


def build_tables(
    records: Iterable[CaseRecord],
    samples: pd.DataFrame | None,
    meta: Mapping[str, Any],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Result rows (one per record x variant, in the documented column order) and the raw
    samples sorted as measured, from the runner's records and ``meta`` (run.json: the backends'
    devices, timer overheads, calibrations, host, shard and seed)."""
    samples = empty_samples() if samples is None or not len(samples) else samples
    samples = samples[SAMPLE_COLUMNS].astype(_SAMPLE_DTYPES).reset_index(drop=True)
    devices = devices_of(meta)
    overheads = ((meta.get("timings") or {}).get("timer_overhead_s")) or {}
    settings = meta.get("settings") or {}
    calibrations = list(meta.get("calibration") or ())
    host = str(meta.get("host") or (meta.get("environment") or {}).get("hostname") or "")
    shard = (meta.get("shard") or {}).get("index")
    # Arrays and group indices, not a DataFrame slice per row: 10,000 rows take a second,
    # not a minute (benchmarks/REPORT-robust.md).
    columns = {c: samples[c].to_numpy() for c in ("round", "pair", "iterations", "time_s")}
    groups = (
        samples.groupby(["config_id", "backend", "env", "variant"], sort=False).indices
        if len(samples)
        else {}
    )
    parts: list[pd.DataFrame] = []
    table: dict[str, list[Any]] = {c: [] for c in RESULT_COLUMNS}
    for record in records:
        cid, backend, env = record.key
        series = {
            v: {c: values[groups[(cid, backend, env, v)]] for c, values in columns.items()}
            for v in VARIANTS
            if (cid, backend, env, v) in groups
        }
        for row in _rows_for(
            record, series, devices.get(backend, ("", "")), overheads.get(backend)
        ):
            row.update(seed=settings.get("seed", 0), host=host, shard=shard)
            for c, values in table.items():  # column by column: each row's dict goes at once
                values.append(row.get(c))
        if len(table["config_id"]) >= ROWS_PER_PART:
            parts.append(_part(table, calibrations))
            table = {c: [] for c in RESULT_COLUMNS}
    if table["config_id"] or not parts:
        parts.append(_part(table, calibrations))
    return (pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]), samples


ROWS_PER_PART = 500


def _part(table: dict[str, list[Any]], calibrations: list[Any]) -> pd.DataFrame:
    """A few hundred rows (as columns) as a finished, typed frame: built in parts, a table of
    10,000 rows never exists as Python objects all at once (benchmarks/REPORT-robust.md)."""
    return _typed(add_efficiency(pd.DataFrame(table, columns=RESULT_COLUMNS), calibrations))


def breakdown_table(records: Iterable[CaseRecord]) -> pd.DataFrame:
    """Per model configuration and variant, MACs and params by layer type (BREAKDOWN_COLUMNS);
    empty for a sweep of single conv layers."""
    rows = [
        {"config_id": record.key[0], "variant": v, **row}
        for record in records
        for v, layer_rows in record.breakdown.items()
        for row in layer_rows
    ]
    table = pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)
    return table.drop_duplicates(["config_id", "variant", "layer_type"]).astype(
        {"layers": "int64", "macs": "int64", "params": "int64"}
    )


def derived_meta(records: Iterable[CaseRecord], samples: pd.DataFrame) -> dict[str, Any]:
    """run.json's fields that follow from the records and samples: the tracebacks of failures,
    the builds kept across visits (rebuilding them each visit costs too much), and the rounds'
    spread."""
    failures: dict[str, str] = {}
    kept: list[str] = []
    for r in records:
        where = f"{r.key[0]} {r.backend}" + (f" {{{r.env}}}" if r.env else "")
        if r.traceback:
            failures[where] = r.traceback
        if r.checked and not r.fresh:
            kept.append(where)
    return {
        "failures": failures,
        "kept_builds": kept,
        "round_spread": stats.run_round_spread(samples),
    }


def empty_samples() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_SAMPLE_DTYPES[c]) for c in SAMPLE_COLUMNS})


def pandas_dtypes(schema: pa.Schema) -> dict[str, Any]:
    """The pandas dtype of each column: strings as str (empty, never NaN), integers that may
    be empty as the nullable Int64, the rest as numpy's."""
    out: dict[str, Any] = {}
    for f in schema:
        if pa.types.is_string(f.type):
            out[f.name] = str
        elif pa.types.is_integer(f.type):
            out[f.name] = "Int64" if f.nullable else str(f.type.to_pandas_dtype()().dtype)
        else:
            out[f.name] = f.type.to_pandas_dtype()
    return out


_RESULT_DTYPES = pandas_dtypes(RESULT_SCHEMA)
_SAMPLE_DTYPES = pandas_dtypes(SAMPLE_SCHEMA)
_STR_COLUMNS = [c for c, t in _RESULT_DTYPES.items() if t is str]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Fix dtypes (RESULT_SCHEMA's) so parquet and csv round-trips give identical frames."""
    df = df.copy()
    for c in _STR_COLUMNS:
        df[c] = df[c].astype(object).fillna("")
    df["bias"] = df["bias"].astype(object).where(df["bias"].notna(), False)
    return df.astype(_RESULT_DTYPES)[RESULT_COLUMNS].copy()


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _atomic(path: Path, write: Callable[[Path], None]) -> None:
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


def _write_json(path: Path, doc: Mapping[str, Any], indent: int | None = 2) -> None:
    def write(p: Path) -> None:
        with open(p, "w", encoding="utf-8") as f:
            f.write(json.dumps(json_safe(doc), indent=indent, default=str, allow_nan=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    _atomic(path, write)


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
    try:
        if breakdown is not None and len(breakdown):
            _atomic(
                directory / BREAKDOWN_PARQUET,
                lambda p: breakdown.to_parquet(p, index=False, schema=BREAKDOWN_SCHEMA),
            )
        _atomic(
            directory / RESULTS_PARQUET,
            lambda p: results.to_parquet(p, index=False, schema=RESULT_SCHEMA),
        )
        _atomic(directory / RESULTS_CSV, lambda p: results.to_csv(p, index=False))
        _atomic(
            directory / SAMPLES_PARQUET,
            lambda p: samples.to_parquet(p, index=False, schema=SAMPLE_SCHEMA),
        )
        _write_json(directory / RUN_JSON, meta)
    except OSError as exc:  # disk full, directory removed, permissions
        raise ResultsError(f"cannot write results to {directory}: {exc.strerror or exc}") from None


# ---------------------------------------------------------------------------------------------
# The journal: crash-consistent checkpoints of a run in progress
# ---------------------------------------------------------------------------------------------

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
        try:
            for name in CONSOLIDATED:  # an earlier run's (--force): not this one's
                (journal.directory / name).unlink(missing_ok=True)
            _write_json(journal.directory / RUN_JSON, dict(meta, schema_version=SCHEMA_VERSION))
            with open(journal.directory / JOURNAL, "wb") as f:
                os.fsync(f.fileno())
            journal._commit(meta, consolidated=False)
        except OSError as exc:
            raise ResultsError(
                f"cannot write results to {directory}: {exc.strerror or exc}"
            ) from None
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
        try:
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
        except OSError as exc:
            raise ResultsError(
                f"cannot write results to {self.directory}: {exc.strerror or exc}"
            ) from None

    def consolidate(
        self,
        results: pd.DataFrame,
        samples: pd.DataFrame,
        meta: dict[str, Any],
        breakdown: pd.DataFrame | None = None,
    ) -> None:
        """Write the final tables and run.json, then switch the manifest to them."""
        write_run(self.directory, results, samples, meta, breakdown)
        try:
            self._commit(meta, consolidated=True)
        except OSError as exc:
            raise ResultsError(
                f"cannot write results to {self.directory}: {exc.strerror or exc}"
            ) from None

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
        _write_json(self.directory / MANIFEST, doc, indent=None)
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
            for c in SAMPLE_COLUMNS:
                columns[c] += batch.get("samples", {}).get(c, [])
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


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null, recursively: strict JSON parsers reject bare
    NaN/Infinity (run.json after one round, for instance, has no round spread)."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    return value


def _migrate(meta: dict[str, Any], source: Path) -> dict[str, Any]:
    version = meta.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ResultsError(f"{source}: no integer schema_version; not a dscbench run")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: schema_version {version} is newer than this dscbench reads "
            f"({SCHEMA_VERSION}); upgrade dscbench"
        )
    problem = meta_problem(meta)
    if problem:
        raise ResultsError(f"{source}: {problem}")
    return meta


RUN_STATUSES = ("running", "complete", "interrupted", "crashed", "partial", "killed")
# What readers call a run whose run.json says running while no process writes it (a kill -9,
# a lost node): never written to run.json, which keeps what the killed process last wrote.
KILLED = "killed"


def _integer(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _strings(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(x, str) for x in v)


def _optional(check: Any) -> Any:
    return lambda v: v is None or check(v)


# run.json's fields that dscbench acts on, with what each must be (where present; a field a
# reader does not use may hold anything). Read from result files of others (CI artifacts):
# every value is checked as data, never evaluated.
META_FIELDS: tuple[tuple[tuple[str, ...], Any, str], ...] = (
    (("status",), lambda v: v in RUN_STATUSES, f"one of {', '.join(RUN_STATUSES)}"),
    (("rounds_done",), lambda v: _integer(v) and v >= 0, "a count"),
    (("n_configurations",), lambda v: _integer(v) and v >= 0, "a count"),
    (("configurations_sha256",), lambda v: isinstance(v, str), "a string"),
    (("command",), _strings, "a list of strings"),
    (("source",), lambda v: isinstance(v, str), "a string"),
    (("settings",), lambda v: isinstance(v, dict), "an object"),
    (("settings", "min_time"), lambda v: _number(v) and v > 0, "a positive number"),
    (("settings", "rounds"), lambda v: _integer(v) and v >= 1, "a positive integer"),
    (("settings", "warmup"), lambda v: _number(v) and v >= 0, "a number of seconds"),
    (("settings", "seed"), _integer, "an integer"),
    (("settings", "parity"), lambda v: isinstance(v, bool), "true or false"),
    (("settings", "fresh"), lambda v: isinstance(v, bool), "true or false"),
    (("backend_options",), lambda v: isinstance(v, dict), "an object"),
    (("environment",), lambda v: isinstance(v, dict), "an object"),
    (("backends",), lambda v: isinstance(v, dict), "an object"),
    (("shard",), _optional(lambda v: isinstance(v, dict)), "an object or null"),
    (("shard", "index"), lambda v: _integer(v) and v >= 1, "a positive integer"),
    (("shard", "count"), lambda v: _integer(v) and v >= 1, "a positive integer"),
    (("mixed_hardware",), lambda v: isinstance(v, bool), "true or false"),
    (("merged_from",), lambda v: isinstance(v, list), "a list"),
    (("harness",), lambda v: isinstance(v, dict), "an object"),
    (("harness", "confidence"), lambda v: _number(v) and 0 < v < 1, "a number in (0, 1)"),
)


def meta_problem(meta: Mapping[str, Any]) -> str | None:
    """The first field of run.json that does not hold what dscbench expects there, as a phrase
    naming the field and its value; None when all do."""
    for path, check, expected in META_FIELDS:
        value: Any = meta
        for key in path:
            if not isinstance(value, Mapping) or key not in value:
                break
            value = value[key]
        else:
            if not check(value):
                shown = json.dumps(value, default=str)
                shown = shown if len(shown) <= 60 else shown[:57] + "..."
                return f"{'.'.join(path)} is {shown}, not {expected}"
    return None


def _upgrade_table(results: pd.DataFrame, version: int, meta: dict[str, Any]) -> pd.DataFrame:
    """Bring a result table written under ``version`` to the current columns, step by step."""
    results = results.copy()
    if version < 2:
        for column, default in ADDED_IN_V2.items():
            results[column] = default
        names = {
            name: info.get("device_name", "")
            for name, info in (meta.get("backends") or {}).items()
            if isinstance(info, dict)
        }
        results["device_name"] = results["backend"].map(names).fillna("")
    if version < 3:
        for column, default in ADDED_IN_V3.items():
            results[column] = default
    if version < 4:
        for column, default in ADDED_IN_V4.items():
            results[column] = default
        results["step_flops"] = results["flops"]
    return results


EXPORT_FORMAT = "dscbench-results"


def to_json(result_set: ResultSet) -> dict[str, Any]:
    """One self-contained JSON document: run metadata, result rows and raw samples (columnar),
    readable by ``load_results`` (and so by ``dscbench compare``)."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, np.generic):
            return clean(value.item())
        return value

    rows = [
        {k: clean(v) for k, v in row.items()}
        for row in result_set.results.astype(object).to_dict("records")
    ]
    samples = {c: [clean(v) for v in result_set.samples[c].tolist()] for c in SAMPLE_COLUMNS}
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
    meta = _migrate(meta, path)
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
    return _migrate(meta, meta_path)


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
    export = path.is_file() and path.suffix == ".json" and path.name != RUN_JSON
    if loaded.meta.get("status") == "running" and not export:
        from dscbench.lock import holder

        if holder(path if path.is_dir() else path.parent) is None:
            loaded.meta["status"] = KILLED
    return loaded


def _load_results(path: Path) -> ResultSet:
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix == ".json" and path.name != RUN_JSON:
        return _load_json_export(path)
    directory = path if path.is_dir() else path.parent
    if path.name == RUN_JSON:
        path = directory
    meta = _read_meta(directory, path)
    manifest = read_manifest(directory)
    if manifest is not None and not manifest.get("consolidated"):
        # A run being measured, or one killed: its journal is the truth (Journal's doc).
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
                dtype=dict.fromkeys(_STR_COLUMNS, str),
                keep_default_na=False,  # an empty error or warnings cell is "", not NaN
                na_values={c: [""] for c in RESULT_COLUMNS if c not in _STR_COLUMNS},
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


def _finish(
    results: pd.DataFrame, samples: pd.DataFrame, meta: dict[str, Any], source: Path
) -> ResultSet:
    """Upgrade, check and type a result table and its samples read from ``source``."""
    results = _upgrade_table(results, meta["schema_version"], meta)
    missing = [c for c in RESULT_COLUMNS if c not in results.columns]
    if missing:
        raise ResultsError(f"{source}: missing columns {', '.join(missing)}")
    try:
        results = _typed(results[RESULT_COLUMNS])
    except (ValueError, TypeError) as exc:
        raise ResultsError(f"{source}: a column has values of the wrong type ({exc})") from None
    if meta["schema_version"] < 3 and "env" not in samples.columns:
        samples = samples.assign(env="")
    missing = [c for c in SAMPLE_COLUMNS if c not in samples.columns]
    if missing:
        raise ResultsError(f"{source}: samples lack columns {', '.join(missing)}")
    try:
        samples = samples[SAMPLE_COLUMNS].astype(_SAMPLE_DTYPES)
    except (ValueError, TypeError) as exc:
        raise ResultsError(f"{source}: samples have values of the wrong type ({exc})") from None
    _check_values(results, samples, source)
    return ResultSet(meta, results, samples)


def _show(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, (float, np.floating)) else str(value)


def _check_values(results: pd.DataFrame, samples: pd.DataFrame, source: Path) -> None:
    """Refuse values no measurement produces: a sample that is not a positive, finite number
    of seconds, a block of fewer than one iteration, a negative round, a latency or count that
    is zero or negative. (A compare over such files would print nonsense with exit 0.)"""
    problems = []
    for what, bad in (
        ("time_s", ~(np.isfinite(samples.time_s) & (samples.time_s > 0))),
        ("iterations", samples.iterations < 1),
        ("round", samples["round"] < 0),
    ):
        if bad.any():
            first = samples[bad].iloc[0]
            problems.append(
                f"{int(bad.sum())} sample(s) with {what} {_show(first[what])} in the samples "
                f"(first: {first.config_id} {first.variant})"
            )
    for column in ("latency_median_s", "latency_min_s", "speedup"):
        values = results[column]
        bad = values.notna() & ~(np.isfinite(values) & (values > 0))
        if bad.any():
            first = results[bad].iloc[0]
            problems.append(
                f"{int(bad.sum())} row(s) with {column} {_show(first[column])} "
                f"(first: {first.config_id} {first.variant})"
            )
    if problems:
        raise ResultsError(f"{source}: corrupt values: {'; '.join(problems)}")
