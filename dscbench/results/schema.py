"""The result files' schema: every column with its type, group, meaning and unit (one pyarrow
schema per table drives column order, dtypes, the parquet files and the README's table), the
files of a run directory, the statuses, and the pandas dtypes a table is read back with.

Schema history (bump SCHEMA_VERSION on any change a reader must know about, add a migration in
checks.upgrade_table and the columns' defaults below):
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
  5  ``process`` in samples: which worker process of its environment measured the block (older
     files: round mod run.json's ``processes``, the rule those runs followed); intervals take
     the process as their unit (the rounds of one process are averaged first)
  6  ``speedup_rerun_low``, ``speedup_rerun_high``: where a rerun's speedup estimate lands (this
     run's sampling error twice, and run.json's ``harness.between_run_sd``); empty in older
     files
  7  ``kernels``: the kernel of each conv a variant ran, in call order (kernels.py: torch's
     backend choice, and oneDNN's implementation); empty in older files and where a backend
     cannot say
  8  ``instructions``, ``instructions_spread``, ``allocator_instructions``: instructions per
     call counted under valgrind, outside and inside the memory allocators (``--measure
     instructions``; empty in timed runs and older files); run.json's ``harness.measure`` says
     which the run measured
  9  1-D and 3-D layers, dilation, depth multiplier: ``dims``, ``frames``, ``out_frames``,
     ``dilation``, ``depth_multiplier`` (older files: 2, empty, empty, 1, 1 on layer rows);
     a 1-D layer's length is its ``width`` (``height`` empty)
  10 cold caches (``--cache``): ``cache`` (older files: warm), ``cache_method``,
     ``cache_copy_bytes``, ``cache_rotated_bytes``, ``cache_rotation_s`` (empty on warm rows
     and in older files)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pyarrow as pa

# The statuses belong to the schema (the ``status`` column, run.json's ``status``); they are
# defined in dscbench.status, which the worker processes import without pandas or pyarrow.
from dscbench.status import KILLED as KILLED
from dscbench.status import RUN_STATUSES as RUN_STATUSES
from dscbench.status import RunStatus as RunStatus
from dscbench.status import Status as Status

SCHEMA_VERSION = 10

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
        column("cache", STR, "config", "warm or cold (--cache)", nullable=False),
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
        column("dims", INT, "shape", "spatial dimensions of a layer: 1, 2 or 3"),
        column("frames", INT, "shape", "input depth (frames) of a 3-D layer"),
        column("height", INT, "shape", "input height", "pixels"),
        column("width", INT, "shape", "input width (a 1-D layer's length)", "pixels"),
        column("kernel", INT, "shape", "kernel side"),
        column("stride", INT, "shape", "stride"),
        column("dilation", INT, "shape", "spacing of the kernel's taps"),
        column("padding", INT, "shape", "padding (dilation x (kernel // 2))"),
        column("depth_multiplier", INT, "shape", "separable twin's depthwise outputs / C_in"),
        column("bias", BOOL, "shape", "conv bias", nullable=False),
        column("out_frames", INT, "shape", "output depth of a 3-D layer"),
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
        column("instructions", FLOAT, "instructions", "per call, allocators apart", "instr"),
        column("instructions_spread", FLOAT, "instructions", "(max - min) / median over processes"),
        column("allocator_instructions", FLOAT, "instructions", "per call, in allocators", "instr"),
        column("speedup", FLOAT, "pair", "separable row: standard / separable latency", "x"),
        column("speedup_ci_low", FLOAT, "pair", "lower end of the 95% interval", "x"),
        column("speedup_ci_high", FLOAT, "pair", "upper end of the 95% interval", "x"),
        column("speedup_rerun_low", FLOAT, "pair", "lower end of the 95% rerun interval", "x"),
        column("speedup_rerun_high", FLOAT, "pair", "upper end of the 95% rerun interval", "x"),
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
        column("cache_method", STR, "cost", "how cold calls missed the caches", nullable=False),
        column("cache_copy_bytes", FLOAT, "cost", "cold: bytes each call reads cold", "bytes"),
        column("cache_rotated_bytes", FLOAT, "cost", "cold: bytes rotated through", "bytes"),
        column("cache_rotation_s", FLOAT, "cost", "cold: per call, taking the next copy", "s"),
        column("device_name", STR, "meta", "CPU or GPU model", nullable=False),
        column("execution", STR, "meta", "what actually ran", nullable=False),
        column("kernels", STR, "meta", "the kernel of each conv, in call order", nullable=False),
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
        column(
            "process",
            pa.int32(),
            "sample",
            "worker process of its environment that measured the block (0 in a plain run)",
            nullable=False,
        ),
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
SHAPE_COLUMNS = ("batch", "in_channels", "out_channels", "frames", "height", "width", "kernel",
                 "stride", "dilation", "depth_multiplier")  # fmt: skip
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
    "cache",
)
# Columns added by each schema version, with the value older files get (checks.upgrade_table).
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
ADDED_IN_V6 = {"speedup_rerun_low": math.nan, "speedup_rerun_high": math.nan}
ADDED_IN_V7 = {"kernels": ""}
ADDED_IN_V8 = {
    "instructions": math.nan,
    "instructions_spread": math.nan,
    "allocator_instructions": math.nan,
}
# Layer rows of older files were 2-D, dilation 1, multiplier 1 (checks.upgrade_table)
ADDED_IN_V9 = {
    "dims": None,
    "frames": None,
    "out_frames": None,
    "dilation": None,
    "depth_multiplier": None,
}
ADDED_IN_V10 = {
    "cache": "warm",
    "cache_method": "",
    "cache_copy_bytes": math.nan,
    "cache_rotated_bytes": math.nan,
    "cache_rotation_s": math.nan,
}

# The files of a run directory (journal.py names the two a run in progress adds).
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


def empty_samples() -> pd.DataFrame:
    """A samples table with no rows and SAMPLE_SCHEMA's columns and dtypes."""
    return pd.DataFrame({c: pd.Series(dtype=SAMPLE_DTYPES[c]) for c in SAMPLE_COLUMNS})


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


RESULT_DTYPES = pandas_dtypes(RESULT_SCHEMA)
SAMPLE_DTYPES = pandas_dtypes(SAMPLE_SCHEMA)
STR_COLUMNS = [c for c, t in RESULT_DTYPES.items() if t is str]


def typed(df: pd.DataFrame) -> pd.DataFrame:
    """Fix dtypes (RESULT_SCHEMA's) so parquet and csv round-trips give identical frames."""
    df = df.copy()
    for c in STR_COLUMNS:
        df[c] = df[c].astype(object).fillna("")
    df["bias"] = df["bias"].astype(object).where(df["bias"].notna(), False)
    return df.astype(RESULT_DTYPES)[RESULT_COLUMNS].copy()
