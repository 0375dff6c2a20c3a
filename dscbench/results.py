"""Result files: one row per configuration x variant x backend, raw samples, run metadata.

Layout of a run directory (all rewritten atomically after every round):
  results.parquet / results.csv   RESULT_COLUMNS, one row per config x variant x backend
  samples.parquet                 SAMPLE_COLUMNS, one row per timed block
  run.json                        schema_version, environment, settings, timings, status

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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from dscbench import stats
from dscbench.errors import ResultsError
from dscbench.roofline import add_efficiency
from dscbench.spec import VARIANTS

if TYPE_CHECKING:
    from dscbench.runner import CaseState, EnvState, SweepState

SCHEMA_VERSION = 4

SHAPE_COLUMNS = ("batch", "in_channels", "out_channels", "height", "width", "kernel", "stride")
MODEL_COLUMNS = ("model", "width_mult", "resolution", "depth", "input_shape", "twin")
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
CONFIG_COLUMNS = [
    "config_id",
    "variant",
    "backend",
    "env",
    "device",
    "mode",
    "optimizer",
    "dtype",
    "memory_format",
    "threads",
    *MODEL_COLUMNS,
    *SHAPE_COLUMNS,
    "padding",
    "bias",
    "out_height",
    "out_width",
]
COUNT_COLUMNS = ["params", "macs", "flops", "other_flops", "step_flops", "bytes", "intensity"]
LATENCY_COLUMNS = [
    "latency_median_s",
    "latency_mean_s",
    "latency_min_s",
    "latency_max_s",
    "latency_iqr_s",
    "latency_p10_s",
    "latency_p90_s",
    "latency_cv",
    "n_samples",
    "iterations_per_sample",
    "rounds",
]
PAIR_COLUMNS = [
    "speedup",
    "speedup_ci_low",
    "speedup_ci_high",
    "mac_reduction",
    "param_reduction",
    "efficiency",
]
PARITY_COLUMNS = ["parity_max_abs_err", "parity_max_rel_err", "parity_tolerance"]
# roofline.py: filled where run.json holds a calibration for the row's device and threads
EFFICIENCY_COLUMNS = [
    "achieved_flops_per_s",
    "achieved_bytes_per_s",
    "roofline_bound",
    "roofline_fraction",
]
COST_COLUMNS = ["prepare_s", "compile_s", "peak_memory_bytes"]
META_COLUMNS = [
    "device_name",
    "execution",
    "warnings",
    "status",
    "error",
    "seed",
    "host",
    "shard",
]
RESULT_COLUMNS = (
    CONFIG_COLUMNS
    + COUNT_COLUMNS
    + LATENCY_COLUMNS
    + PAIR_COLUMNS
    + EFFICIENCY_COLUMNS
    + PARITY_COLUMNS
    + COST_COLUMNS
    + META_COLUMNS
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
BREAKDOWN_COLUMNS = [
    "config_id",
    "variant",
    "layer_type",
    "layers",
    "macs",
    "params",
    "macs_share",
    "params_share",
]
SAMPLE_COLUMNS = [
    "config_id",
    "variant",
    "backend",
    "env",
    "round",
    "pair",
    "iterations",
    "time_s",
]

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
# State -> tables
# ---------------------------------------------------------------------------------------------


def _rows_for(
    state: CaseState,
    env: str,
    env_state: EnvState,
    device: tuple[str, str],
    timer_overhead: float | None,
) -> list[dict[str, Any]]:
    spec = state.case.spec
    base = dict(
        config_id=spec.config_id,
        backend=state.case.backend,
        env=env,
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
    series = env_state.series
    measured = bool(series) and all(series[v].times for v in VARIANTS)
    rows = []
    for v in VARIANTS:
        c = state.counts.get(v)
        row = dict(base, variant=v)
        if c is not None:
            row.update(
                params=c.params,
                macs=c.macs,
                flops=c.flops,
                other_flops=c.other_flops,
                step_flops=c.step_flops,
                bytes=c.bytes,
                intensity=c.intensity,
            )
        row.update(dict.fromkeys(LATENCY_COLUMNS + PAIR_COLUMNS + PARITY_COLUMNS, math.nan))
        row.update(
            status=env_state.status,
            error=env_state.error,
            warnings="",
            prepare_s=env_state.prepare_s.get(v, math.nan),
            compile_s=env_state.compile_s.get(v, math.nan),
            peak_memory_bytes=env_state.peak_memory_bytes.get(v, math.nan),
            execution=env_state.execution.get(v, ""),
            rounds=env_state.visits,
        )
        check = env_state.parity.get(v)
        if check is not None:
            row.update(
                parity_max_abs_err=check.max_abs_err,
                parity_max_rel_err=check.max_rel_err,
                parity_tolerance=check.tolerance,
            )
        if measured:
            t = series[v]
            s = stats.summarize(t.times)
            block_s = s.median * t.iterations
            warns = stats.check_samples(t.times, block_s, timer_overhead)
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
                iterations_per_sample=t.iterations,
                warnings="; ".join(f"{w.code}: {w.message}" for w in warns),
            )
        rows.append(row)
    std, sep = rows
    if "macs" in sep:
        sep["mac_reduction"] = std["macs"] / sep["macs"]
        sep["param_reduction"] = std["params"] / sep["params"]
    speedup = env_state.speedup() if measured else None
    if speedup is not None:
        # Only complete sets (both variants measured) enter the speedup; an interrupt can
        # leave a lone block, which stays in the samples and latency statistics.
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


def build_tables(
    sweep: SweepState,
    devices: Mapping[str, tuple[str, str]],
    timer_overheads: Mapping[str, float] | None = None,
    calibrations: Iterable[Mapping[str, Any]] = (),
    host: str = "",
    shard: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Result rows and raw samples of a sweep, in the documented column order: one row per
    case x environment x variant.

    ``devices`` maps backend names to (device kind, device name), e.g. ("cpu", "AMD EPYC");
    ``timer_overheads`` maps them to the cost of an empty timed block, seconds;
    ``calibrations`` (calibrate.Calibration JSONs) fill the efficiency columns; ``host`` and
    ``shard`` tag every row with the machine and shard (--shard) that measured it.
    """
    rows: list[dict[str, Any]] = []
    sample_parts: list[pd.DataFrame] = []
    for state in sweep.cases:
        device = devices.get(state.case.backend, ("", ""))
        overhead = (timer_overheads or {}).get(state.case.backend)
        for env, env_state in state.envs.items():
            for row in _rows_for(state, env, env_state, device, overhead):
                row["seed"] = sweep.settings.seed
                row["host"] = host
                row["shard"] = shard
                rows.append(row)
            for v, t in env_state.series.items():
                if t.times:
                    sample_parts.append(
                        pd.DataFrame(
                            {
                                "config_id": state.case.spec.config_id,
                                "variant": v,
                                "backend": state.case.backend,
                                "env": env,
                                "round": np.asarray(t.rounds, dtype="int32"),
                                "pair": np.asarray(t.pairs, dtype="int32"),
                                "iterations": t.iterations,
                                "time_s": np.asarray(t.times, dtype="float64"),
                            }
                        )
                    )
    results = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    results = add_efficiency(results, calibrations)
    if sample_parts:
        samples = pd.concat(sample_parts, ignore_index=True)[SAMPLE_COLUMNS]
    else:
        samples = empty_samples()
    return _typed(results), samples


def breakdown_table(sweep: SweepState) -> pd.DataFrame:
    """Per model configuration and variant, MACs and params by layer type (BREAKDOWN_COLUMNS);
    empty for a sweep of single conv layers."""
    rows = [
        {"config_id": state.case.spec.config_id, "variant": v, **row}
        for state in sweep.cases
        for v, layer_rows in state.breakdown.items()
        for row in layer_rows
    ]
    table = pd.DataFrame(rows, columns=BREAKDOWN_COLUMNS)
    return table.drop_duplicates(["config_id", "variant", "layer_type"]).astype(
        {"layers": "int64", "macs": "int64", "params": "int64"}
    )


def empty_samples() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=_SAMPLE_DTYPES[c]) for c in SAMPLE_COLUMNS})


_SAMPLE_DTYPES: dict[str, Any] = {
    "config_id": str,
    "variant": str,
    "backend": str,
    "env": str,
    "round": "int32",
    "pair": "int32",
    "iterations": "int64",
    "time_s": "float64",
}
_INT_COLUMNS = ["threads", "batch", "rounds", "seed"]
_NULLABLE_INT_COLUMNS = [
    "in_channels",
    "out_channels",
    "height",
    "width",
    "kernel",
    "stride",
    "padding",
    "out_height",
    "out_width",
    "resolution",
    "depth",
    "shard",
    "params",
    "macs",
    "flops",
    "other_flops",
    "step_flops",
    "bytes",
    "n_samples",
    "iterations_per_sample",
]
_STR_COLUMNS = [
    "config_id",
    "variant",
    "backend",
    "env",
    "device",
    "device_name",
    "execution",
    "mode",
    "optimizer",
    "model",
    "input_shape",
    "twin",
    "roofline_bound",
    "host",
    "dtype",
    "memory_format",
    "warnings",
    "status",
    "error",
]
_FLOAT_COLUMNS = [
    c
    for c in RESULT_COLUMNS
    if c not in {*_INT_COLUMNS, *_NULLABLE_INT_COLUMNS, *_STR_COLUMNS, "bias"}
]


def _typed(df: pd.DataFrame) -> pd.DataFrame:
    """Fix dtypes so parquet and csv round-trips give identical frames."""
    df = df.copy()
    for c in _STR_COLUMNS:
        df[c] = df[c].astype(object).fillna("")
    types = {c: "int64" for c in _INT_COLUMNS}
    types.update({c: "Int64" for c in _NULLABLE_INT_COLUMNS})
    types.update({c: "float64" for c in _FLOAT_COLUMNS})
    types.update({c: str for c in _STR_COLUMNS})
    df["bias"] = df["bias"].astype(object).where(df["bias"].notna(), False)
    types["bias"] = bool
    return df.astype(types)[RESULT_COLUMNS].copy()


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


def prepare_output_dir(path: Path, force: bool) -> Path:
    """Create the run directory; refuse an existing non-empty one unless ``force``."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ResultsError(f"--output {path}: exists and is not a directory")
    if path.exists() and any(path.iterdir()) and not force:
        raise ResultsError(f"--output {path}: directory exists and is not empty (use --force)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"--output {path}: cannot create ({exc.strerror or exc})") from None
    return path


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
            _atomic(directory / BREAKDOWN_PARQUET, lambda p: breakdown.to_parquet(p, index=False))
        _atomic(directory / RESULTS_PARQUET, lambda p: results.to_parquet(p, index=False))
        _atomic(directory / RESULTS_CSV, lambda p: results.to_csv(p, index=False))
        _atomic(directory / SAMPLES_PARQUET, lambda p: samples.to_parquet(p, index=False))
        _atomic(
            directory / RUN_JSON,
            lambda p: p.write_text(
                json.dumps(json_safe(meta), indent=2, default=str, allow_nan=False) + "\n",
                encoding="utf-8",
            ),
        )
    except OSError as exc:  # disk full, directory removed, permissions
        raise ResultsError(f"cannot write results to {directory}: {exc.strerror or exc}") from None


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
    if not isinstance(version, int):
        raise ResultsError(f"{source}: no integer schema_version; not a dscbench run")
    if version > SCHEMA_VERSION:
        raise ResultsError(
            f"{source}: schema_version {version} is newer than this dscbench reads "
            f"({SCHEMA_VERSION}); upgrade dscbench"
        )
    return meta


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


def load_results(path: Path) -> ResultSet:
    """Read a run directory, a results.parquet / results.csv file (with run.json beside it), or
    a JSON export (``dscbench export``)."""
    path = Path(path)
    if not path.exists():
        raise ResultsError(f"{path}: no such file or directory")
    if path.is_file() and path.suffix == ".json" and path.name != RUN_JSON:
        return _load_json_export(path)
    directory = path if path.is_dir() else path.parent
    if path.name == RUN_JSON:
        path = directory
    meta_path = directory / RUN_JSON
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsError(f"{path}: no {RUN_JSON} beside the results") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{meta_path}: unreadable ({exc})") from None
    if not isinstance(meta, dict):
        raise ResultsError(f"{meta_path}: not a JSON object")
    meta = _migrate(meta, meta_path)
    table = path if path.is_file() else directory / RESULTS_PARQUET
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
