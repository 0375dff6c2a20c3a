"""Result tables from the runner's records: a ``CaseRecord`` per case and environment, plain
data the runner hands over (and the journal stores), becomes one row per variant with its
latency statistics, counts, speedup and warnings; plus the breakdown table and the fields of
run.json that follow from the records."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from dscbench import stats
from dscbench.defaults import BETWEEN_RUN_SD
from dscbench.jsonsafe import json_safe
from dscbench.results.checks import upgrade_samples
from dscbench.results.schema import (
    BREAKDOWN_COLUMNS,
    LATENCY_COLUMNS,
    PAIR_COLUMNS,
    PARITY_COLUMNS,
    RESULT_COLUMNS,
    SAMPLE_COLUMNS,
    SAMPLE_DTYPES,
    SCHEMA_VERSION,
    Status,
    empty_samples,
    typed,
)
from dscbench.roofline import add_efficiency
from dscbench.spec import VARIANTS, Spec, spec_from_json


@dataclass
class CaseRecord:
    """What the runner knows of one case in one environment, as plain data: the runner hands
    these (and the raw samples) to this module, which turns them into rows; the journal stores
    them, and ``--resume`` restores the runner from them. Per-variant fields are dicts keyed
    by variant; seconds and bytes as everywhere."""

    spec: dict[str, Any]  # spec.spec_to_json
    backend: str
    env: str = ""
    status: str = Status.NOT_MEASURED
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
    cache: dict[str, dict[str, Any]] = field(default_factory=dict)  # cold: cold.Rotation
    kernels: dict[str, str] = field(default_factory=dict)
    warnings: dict[str, str] = field(default_factory=dict)  # found while preparing
    # --measure instructions: per variant, instructions per call, one count per visit
    instructions: dict[str, list[float]] = field(default_factory=dict)
    allocator_instructions: dict[str, list[float]] = field(default_factory=dict)
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


def _cache_columns(rotation: Mapping[str, Any]) -> dict[str, Any]:
    """How a cold row's calls missed the caches (cold.Rotation.to_json); empty when warm."""

    def number(key: str) -> float:
        value = rotation.get(key)
        return math.nan if value is None else float(value)  # JSON null: a NaN

    return dict(
        cache_method=rotation.get("method", ""),
        cache_copy_bytes=number("copy_bytes"),
        cache_rotated_bytes=number("rotated_bytes"),
        cache_rotation_s=number("rotation_s"),
    )


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


def _config_columns(record: CaseRecord, device: tuple[str, str]) -> dict[str, Any]:
    """The columns both variants' rows of a record share: configuration, model or shape."""
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
        cache=spec.cache,
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
            dims=spec.dims,
            frames=spec.frames,
            height=spec.height,
            kernel=spec.kernel,
            stride=spec.stride,
            dilation=spec.dilation,
            padding=spec.padding,
            depth_multiplier=spec.depth_multiplier,
            bias=spec.bias,
            out_frames=spec.out_frames,
            out_height=spec.out_height,
            out_width=spec.out_width,
        )
    return base


def _variant_row(
    record: CaseRecord,
    variant: str,
    base: dict[str, Any],
    series: Mapping[str, np.ndarray] | None,
    timer_overhead: float | None,
) -> dict[str, Any]:
    """One variant's row: counts, costs, parity and, when ``series`` (its samples) is given, its
    latency statistics and warnings."""
    row = dict(base, variant=variant)
    c = record.counts.get(variant)
    if c is not None:
        row.update(_counts_columns(c))
    row.update(dict.fromkeys(LATENCY_COLUMNS + PAIR_COLUMNS + PARITY_COLUMNS, math.nan))
    row.update(instructions=math.nan, instructions_spread=math.nan, allocator_instructions=math.nan)
    row.update(
        status=record.status,
        error=record.error,
        warnings=record.warnings.get(variant, ""),
        prepare_s=record.prepare_s.get(variant, math.nan),
        compile_s=record.compile_s.get(variant, math.nan),
        peak_memory_bytes=record.peak_memory_bytes.get(variant, math.nan),
        execution=record.execution.get(variant, ""),
        kernels=record.kernels.get(variant, ""),
        rounds=record.visits,
        **_cache_columns(record.cache.get(variant, {})),
    )
    counts = record.instructions.get(variant)
    if counts:
        row.update(_instruction_columns(counts, row["warnings"]))
    allocator = record.allocator_instructions.get(variant)
    if allocator:
        row["allocator_instructions"] = float(np.median(allocator))
    check = record.parity.get(variant)
    if check is not None:
        row.update(
            parity_max_abs_err=check["max_abs_err"],
            parity_max_rel_err=check["max_rel_err"],
            parity_tolerance=check["tolerance"],
        )
    if series is not None:
        times = series["time_s"]
        iterations = int(series["iterations"][-1])
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
            warnings="; ".join(
                [w for w in [row["warnings"]] if w] + [f"{w.code}: {w.message}" for w in warns]
            ),
        )
    return row


# Counts of one row from different processes that differ by more than this are said to vary
# (instructions.py: with the allocators apart, processes agreed to 0.001% or better).
INSTRUCTIONS_AGREE = 1e-3


def _instruction_columns(counts: list[float], warnings: str) -> dict[str, Any]:
    """A row's ``instructions`` (the median of its processes' counts), their spread and, when
    they disagree, an ``instructions_vary`` warning."""
    median = float(np.median(counts))
    spread = (max(counts) - min(counts)) / median if median > 0 else math.nan
    out: dict[str, Any] = {"instructions": median, "instructions_spread": spread}
    if spread > INSTRUCTIONS_AGREE:
        out["warnings"] = "; ".join(
            [w for w in [warnings] if w]
            + [
                f"instructions_vary: {len(counts)} processes counted {min(counts):.0f} to "
                f"{max(counts):.0f} ({spread:.3%} apart)"
            ]
        )
    return out


def _add_speedup(
    sep: dict[str, Any],
    series: Mapping[str, Mapping[str, np.ndarray]],
    between_run_sd: float,
) -> None:
    """The separable row's speedup over standard, with its interval over processes and its
    rerun interval (``between_run_sd`` added), from the sets of blocks both variants
    completed."""
    std_series, sep_series = series["standard"], series["separable"]
    a, b, r, p = stats.pair_blocks(
        std_series["pair"].tolist(),
        std_series["time_s"].tolist(),
        std_series["round"].tolist(),
        sep_series["pair"].tolist(),
        sep_series["time_s"].tolist(),
        std_series["process"].tolist(),
    )
    if not a.size:
        return
    # Only complete sets (both variants measured) enter the speedup; an interrupt can leave a
    # lone block, which stays in the samples and latency statistics.
    speedup = stats.round_speedup(a, b, r, processes=p)
    rerun_low, rerun_high = stats.rerun_interval(speedup, between_run_sd)
    sep.update(
        speedup=speedup.value,
        speedup_ci_low=speedup.ci_low,
        speedup_ci_high=speedup.ci_high,
        speedup_rerun_low=rerun_low,
        speedup_rerun_high=rerun_high,
        efficiency=speedup.value / sep.get("mac_reduction", math.nan),
    )
    few = stats.check_rounds(speedup.rounds, math.isfinite(speedup.ci_low))
    if few:
        sep["warnings"] = "; ".join(
            [w for w in [sep["warnings"]] if w] + [f"{w.code}: {w.message}" for w in few]
        )


def _rows_for(
    record: CaseRecord,
    series: Mapping[str, Mapping[str, np.ndarray]],
    device: tuple[str, str],
    timer_overhead: float | None,
    between_run_sd: float = BETWEEN_RUN_SD,
) -> list[dict[str, Any]]:
    """Both variants' rows of one record; ``series`` holds each variant's samples (arrays of
    SAMPLE_COLUMNS, in the order measured)."""
    base = _config_columns(record, device)
    measured = all(v in series and len(series[v]) for v in VARIANTS)
    std, sep = (
        _variant_row(record, v, base, series[v] if measured else None, timer_overhead)
        for v in VARIANTS
    )
    if "macs" in sep:
        sep["mac_reduction"] = std["macs"] / sep["macs"]
        sep["param_reduction"] = std["params"] / sep["params"]
    if measured:
        _add_speedup(sep, series, between_run_sd)
    return [std, sep]


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
    samples = upgrade_samples(samples, {"schema_version": SCHEMA_VERSION, **meta})
    samples = samples[SAMPLE_COLUMNS].astype(SAMPLE_DTYPES).reset_index(drop=True)
    devices = devices_of(meta)
    overheads = ((meta.get("timings") or {}).get("timer_overhead_s")) or {}
    settings = meta.get("settings") or {}
    calibrations = list(meta.get("calibration") or ())
    host = str(meta.get("host") or (meta.get("environment") or {}).get("hostname") or "")
    shard = (meta.get("shard") or {}).get("index")
    between_run_sd = (meta.get("harness") or {}).get("between_run_sd", BETWEEN_RUN_SD)
    # Arrays and group indices, not a DataFrame slice per row: 10,000 rows take a second,
    # not a minute (benchmarks/REPORT-robust.md).
    columns = {
        c: samples[c].to_numpy() for c in ("round", "pair", "process", "iterations", "time_s")
    }
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
            record, series, devices.get(backend, ("", "")), overheads.get(backend), between_run_sd
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
    return typed(add_efficiency(pd.DataFrame(table, columns=RESULT_COLUMNS), calibrations))


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
