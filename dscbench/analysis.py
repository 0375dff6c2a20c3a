"""Answers from result tables: per-backend summaries, wins and losses, break-even channel
counts. Pure pandas over result rows (no torch), shared by `report`, `plot` and `show`.

Several runs in one table carry a ``run`` column, and the rows of a run that mixes hardware (a
merge made with --allow-different-hardware) a ``machine`` column (``combine``,
``with_machines``); every summary is then one per run, machine, backend and environment, never
a mean pooled over runs or machines.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from dscbench.results import LABEL_COLUMNS, PAIR_COLUMNS
from dscbench.stats import geometric_mean

GROUP_AXES = ("backend", "env", "kernel_shape")


SHARED_COLUMNS = (*LABEL_COLUMNS, "status", "error")
# Columns that tell rows of one (configuration, backend, environment) apart, present only when
# a table holds them: ``run`` when it holds several runs (`report A B`, `report R R`),
# ``machine`` (with its description ``machine_hardware``) when a run mixes hardware (a merge
# made with --allow-different-hardware). Every pairing, summary and plot series splits by them.
SERIES_COLUMNS = ("run", "machine")
SERIES_DETAILS = ("machine_hardware",)


def series_columns(results: pd.DataFrame) -> list[str]:
    """The SERIES_COLUMNS that ``results`` has."""
    return [c for c in SERIES_COLUMNS if c in results.columns]


def series_name(backend: str, env: str = "", run: Any = "", machine: Any = "") -> str:
    """'torch-cpu', 'torch-cpu {py312}', 'torch-cpu at host-a in run "a (2)"'."""
    name = f"{backend} {{{env}}}" if env else str(backend)
    if isinstance(machine, str) and machine:
        name += f" at {machine}"
    if isinstance(run, str) and run:
        name += f' in run "{run}"'
    return name


def series_of(row: Mapping[str, Any]) -> str:
    """``series_name`` of a row (a dict or a pandas row's fields)."""
    return series_name(
        row["backend"], row.get("env") or "", row.get("run", ""), row.get("machine", "")
    )


def pairs(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, backend, env), and per run and machine where the table has those
    columns (SERIES_COLUMNS): the standard row's columns suffixed ``_std`` next to the
    separable row's suffixed ``_sep``; pair and configuration columns also appear
    unsuffixed."""
    key = [*series_columns(results), "config_id", "backend", "env"]
    std = results[results.variant == "standard"].set_index(key)
    sep = results[results.variant == "separable"].set_index(key)
    joined = std.merge(
        sep, left_index=True, right_index=True, how="outer", suffixes=("_std", "_sep")
    )
    details = [c for c in SERIES_DETAILS if c in results.columns]
    shared = joined[[f"{c}_sep" for c in (*PAIR_COLUMNS, *SHARED_COLUMNS, *details)]]
    shared.columns = [*PAIR_COLUMNS, *SHARED_COLUMNS, *details]
    joined = pd.concat([joined, shared], axis=1)
    order = list(dict.fromkeys(zip(*(results[c] for c in key), strict=True)))  # sweep order
    return joined.reindex(pd.MultiIndex.from_tuples(order, names=key)).reset_index()


# ---------------------------------------------------------------------------------------------
# Runs and machines
# ---------------------------------------------------------------------------------------------


@dataclass
class Machine:
    """One machine a run measured on: ``label`` (its host name; unique within the run) in
    tables and summaries, ``hardware`` (CPU, architecture, cores, GPUs) where it is named."""

    label: str
    hardware: str
    shards: list[int] = field(default_factory=list)

    def details(self) -> str:
        """'AMD EPYC 7763, x86_64, 64 cores (shards 1, 3)'."""
        if not self.shards:
            return self.hardware
        word = "shard" if len(self.shards) == 1 else "shards"
        return f"{self.hardware} ({word} {', '.join(map(str, self.shards))})"

    def describe(self) -> str:
        """'host-a: AMD EPYC 7763, x86_64, 64 cores (shards 1, 3)'."""
        return f"{self.label}: {self.details()}"


def hardware_of(environment: Mapping[str, Any] | None, backends: Mapping[str, Any] | None) -> str:
    """'AMD EPYC 7763, x86_64, 64 cores; GPU NVIDIA H100': run.json's environment and the
    names of its CUDA devices."""
    env = environment or {}
    parts = [str(env.get("cpu_model") or "unknown CPU")]
    parts += [str(env["machine"])] if env.get("machine") else []
    parts += [f"{env['cpu_count']} cores"] if env.get("cpu_count") else []
    gpus = sorted(
        {
            str(info.get("device_name"))
            for info in (backends or {}).values()
            if info.get("device") == "cuda" and info.get("device_name")
        }
    )
    return ", ".join(parts) + (f"; GPU {', '.join(gpus)}" if gpus else "")


def mixes_hardware(meta: Mapping[str, Any]) -> bool:
    """A merge of shards measured on different hardware (--allow-different-hardware)."""
    return bool(meta.get("mixed_hardware")) and bool(meta.get("merged_from"))


def machines(meta: Mapping[str, Any]) -> list[Machine]:
    """The machines of a run: of a merge, one per distinct host and hardware among its shards
    (run.json ``merged_from``), in shard order; otherwise the one the run's environment
    names. A host name shared by different hardware gets the hardware in its label."""
    if meta.get("merged_from"):
        entries = [
            (
                (e.get("shard") or {}).get("index"),
                str(e.get("host") or ""),
                hardware_of(e.get("environment"), e.get("backends")),
            )
            for e in meta["merged_from"]
        ]
    else:
        env = meta.get("environment") or {}
        host = str(env.get("hostname") or meta.get("host") or "")
        entries = [(None, host, hardware_of(env, meta.get("backends")))]
    distinct = list(dict.fromkeys((host, hardware) for _, host, hardware in entries))
    hosts = [host for host, _ in distinct]
    out = []
    for host, hardware in distinct:
        if not host:
            label = hardware
        elif hosts.count(host) > 1:
            label = f"{host} ({hardware})"
        else:
            label = host
        shards = sorted(
            int(i) for i, h, hw in entries if (h, hw) == (host, hardware) and i is not None
        )
        out.append(Machine(label, hardware, shards))
    return out


def with_machines(
    table: pd.DataFrame, meta: Mapping[str, Any], always: bool = False
) -> pd.DataFrame:
    """``table`` with the columns ``machine`` (the label of the machine that measured each
    row) and ``machine_hardware`` (its description) when the run mixes hardware, or when
    ``always`` (a run among others that mixes it); unchanged otherwise. A merged row is matched
    to its machine by its shard, failing that by its host."""
    if not (always or mixes_hardware(meta)):
        return table
    found = machines(meta)
    by_shard = {shard: m for m in found for shard in m.shards}
    by_host: dict[str, dict[str, Machine]] = {}  # host -> the machines of its shards, by label
    for entry in meta.get("merged_from") or []:
        machine = by_shard.get((entry.get("shard") or {}).get("index"))
        if machine is not None:
            by_host.setdefault(str(entry.get("host") or ""), {})[machine.label] = machine
    unknown = Machine("unknown machine", "not in run.json's merged_from")

    def machine_of(shard: Any, host: Any) -> Machine:
        if len(found) == 1:
            return found[0]
        if not pd.isna(shard) and int(shard) in by_shard:
            return by_shard[int(shard)]
        candidates = list(by_host.get(str(host), {}).values())
        return candidates[0] if len(candidates) == 1 else unknown

    shards = table["shard"] if "shard" in table.columns else pd.Series(None, index=table.index)
    hosts = table["host"] if "host" in table.columns else pd.Series("", index=table.index)
    rows = [machine_of(s, h) for s, h in zip(shards, hosts, strict=True)]
    return table.assign(
        machine=[m.label for m in rows], machine_hardware=[m.hardware for m in rows]
    )


def row_machines(table: pd.DataFrame) -> list[Machine]:
    """The machines of ``table``'s rows (``machine`` column), with the shards they measured, in
    the order they first appear; [] when the table has no such column."""
    if "machine" not in table.columns:
        return []
    out: dict[str, Machine] = {}
    shards = table["shard"] if "shard" in table.columns else pd.Series(None, index=table.index)
    for label, hardware, shard in zip(table.machine, table.machine_hardware, shards, strict=True):
        machine = out.setdefault(label, Machine(label, hardware))
        if not pd.isna(shard) and int(shard) not in machine.shards:
            machine.shards.append(int(shard))
    for machine in out.values():
        machine.shards.sort()
    return list(out.values())


def mixed_hardware_note(found: Sequence[Machine], what: str = "This run") -> str:
    """The sentence that says a run mixes hardware and names its machines."""
    return (
        f"{what} mixes hardware (shards merged with --allow-different-hardware): it was "
        f"measured on {len(found)} machines, {'; '.join(m.describe() for m in found)}. "
        "Latencies of different machines are not comparable, so every summary is per machine."
    )


def combine(results_sets: Sequence[Any], names: Sequence[str]) -> pd.DataFrame:
    """The rows of several runs (results.ResultSet) as one table: with a ``run`` column (its
    name in ``names``) when there are several, and ``machine`` columns when any of them mixes
    hardware (``with_machines``). One run that does not is its own table, unchanged."""
    mixed = any(mixes_hardware(r.meta) for r in results_sets)
    tables = [with_machines(r.results, r.meta, always=mixed) for r in results_sets]
    if len(tables) > 1:
        tables = [t.assign(run=name) for t, name in zip(tables, names, strict=True)]
    return pd.concat(tables, ignore_index=True)


def run_labels(names: Sequence[str]) -> list[str]:
    """Unique labels for runs named ``names``: a name given twice (`report R R`) becomes
    ``R`` and ``R (2)``."""
    out: list[str] = []
    for name in names:
        label, n = name, 1
        while label in out:
            n += 1
            label = f"{name} ({n})"
        out.append(label)
    return out


def kernel_shapes(table: pd.DataFrame) -> pd.Series:
    """Each layer row's kernel as break-even tables and plots group it: '3x3' for a 2-D
    layer, '33' for a 1-D one, '3x3x3' for a 3-D one, with ' d2' at dilation 2, ' dm2'
    for a depth multiplier of 2 and ' cold' for a cold cache (layers that differ in these
    never share a curve)."""
    dims = table["dims"].fillna(2).astype(int) if "dims" in table else 2
    kernel = table["kernel"].astype(int).astype(str)
    shape = pd.Series(
        [
            "x".join([k] * d)
            for k, d in zip(kernel, np.broadcast_to(dims, len(kernel)), strict=True)
        ],
        index=table.index,
        dtype=object,
    )
    for column, tag in (("dilation", " d"), ("depth_multiplier", " dm")):
        if column in table:
            value = table[column].fillna(1).astype(int)
            shape = shape + np.where(value != 1, tag + value.astype(str), "")
    if "cache" in table:
        shape = shape + np.where(table["cache"].fillna("warm") == "cold", " cold", "")
    return shape


def shape_order(table: pd.DataFrame) -> list[str]:
    """The kernel shapes of ``table`` (with its ``kernel_shape`` column) in a reading order:
    by dimensions, kernel size, dilation, depth multiplier, warm before cold."""
    firsts = table.drop_duplicates("kernel_shape")

    def key(row: Any) -> tuple[float, ...]:
        values = (row.get(c) for c in ("dims", "kernel", "dilation", "depth_multiplier"))
        cold = float(row.get("cache") == "cold")
        return (*(1.0 if v is None or pd.isna(v) else float(v) for v in values), cold)

    return [str(r["kernel_shape"]) for _, r in sorted(firsts.iterrows(), key=lambda i: key(i[1]))]


def _groups(table: pd.DataFrame, *axes: str) -> list[str]:
    return [*series_columns(table), *axes]


# ---------------------------------------------------------------------------------------------
# Summaries
# ---------------------------------------------------------------------------------------------


def measured_pairs(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, backend, environment) with a measured speedup."""
    joined = pairs(results)
    return joined[(joined.status == "ok") & joined.speedup.notna()].copy()


@dataclass
class BackendSummary:
    backend: str
    env: str
    configurations: int
    speedup: float  # geometric mean
    mac_reduction: float  # geometric mean
    faster: int  # interval above 1
    slower: int  # interval below 1
    unclear: int  # an interval that holds 1: within noise
    no_interval: int = 0  # one round, or no spread: no interval to judge by
    run: str = ""  # several runs
    machine: str = ""  # a run that mixes hardware

    @property
    def efficiency(self) -> float:
        return self.speedup / self.mac_reduction

    @property
    def name(self) -> str:
        return series_name(self.backend, self.env, self.run, self.machine)


def _series_fields(table: pd.DataFrame, key: Any) -> dict[str, str]:
    """``run`` and ``machine`` of a groupby key over ``_groups(table, ...)``."""
    series = series_columns(table)
    return {c: str(v) for c, v in zip(series, key[: len(series)], strict=True)}


def interval_counts(pairs_: pd.DataFrame) -> tuple[int, int, int, int]:
    """(faster, slower, within noise, without an interval) over measured pairs: separable is
    faster where the speedup's interval lies above 1, slower where below, within noise where it
    holds 1; a pair with no interval (one round, no spread) is none of those. The one count
    every summary prints (run, show, report)."""
    faster = int((pairs_.speedup_ci_low > 1).sum())
    slower = int((pairs_.speedup_ci_high < 1).sum())
    no_interval = int(pairs_.speedup_ci_low.isna().sum())
    return faster, slower, len(pairs_) - faster - slower - no_interval, no_interval


def backend_summaries(results: pd.DataFrame) -> list[BackendSummary]:
    """Per backend and environment (and run and machine, where the table has them)."""
    ok = measured_pairs(results)
    out = []
    for key, rows in ok.groupby(_groups(ok, "backend", "env"), sort=False):
        backend, env = key[-2:]
        faster, slower, unclear, no_interval = interval_counts(rows)
        out.append(
            BackendSummary(
                str(backend),
                str(env),
                len(rows),
                geometric_mean(rows.speedup),
                geometric_mean(rows.mac_reduction),
                faster,
                slower,
                unclear,
                no_interval,
                **_series_fields(ok, key),
            )
        )
    return out


@dataclass
class BreakEven:
    """Per backend and kernel shape: the input-channel count above which separable wins.

    ``channels`` interpolates log-linearly between the last losing and the first winning
    channel count (when every larger count wins too); ``status`` says ``crosses``,
    ``always`` (wins from the smallest count measured), ``never`` (loses up to the largest)
    or ``mixed`` (wins and losses alternate)."""

    backend: str
    env: str
    kernel: int
    status: str
    channels: float
    lowest: int
    highest: int
    run: str = ""  # several runs
    machine: str = ""  # a run that mixes hardware
    shape: str = ""  # kernel_shapes: '3x3', '33' (1-D), '3x3x3', ' d2', ' dm2'

    @property
    def name(self) -> str:
        return series_name(self.backend, self.env, self.run, self.machine)

    def describe(self) -> str:
        if self.status == "crosses":
            return f"above ~{self.channels:.0f} channels"
        if self.status == "always":
            return f"always (from {self.lowest} channels)"
        if self.status == "never":
            return f"never (up to {self.highest} channels)"
        return "no single crossing (wins and losses alternate)"


def break_even(results: pd.DataFrame) -> list[BreakEven]:
    """Break-even channel counts of layer rows (network rows have no channel axis). Several
    configurations with one channel count (other sizes or strides) enter as their geometric
    mean."""
    ok = measured_pairs(results)
    ok = ok[ok.kernel.notna()]
    ok = ok.assign(kernel_shape=kernel_shapes(ok))
    out = []
    for key, rows in ok.groupby(_groups(ok, *GROUP_AXES), sort=False):
        backend, env, shape = key[-3:]
        by_c = rows.groupby("in_channels").speedup.apply(geometric_mean).sort_index()
        channels = by_c.index.to_numpy(dtype=float)
        speedup = by_c.to_numpy(dtype=float)
        wins = speedup >= 1
        entry = BreakEven(
            str(backend), str(env), int(rows.kernel.iloc[0]), "mixed", math.nan,
            int(channels[0]), int(channels[-1]), **_series_fields(ok, key), shape=str(shape),
        )  # fmt: skip
        if wins.all():
            entry.status = "always"
        elif not wins.any():
            entry.status = "never"
        else:
            first = int(np.argmax(wins))
            if wins[first:].all():
                entry.status = "crosses"
                lo, hi = first - 1, first
                x0, x1 = math.log2(channels[lo]), math.log2(channels[hi])
                y0, y1 = math.log(speedup[lo]), math.log(speedup[hi])
                entry.channels = 2 ** (x0 + (x1 - x0) * (0 - y0) / (y1 - y0))
        out.append(entry)
    return out


def wins_and_losses(results: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Measured pairs where separable is faster (interval above 1) and slower (below 1),
    best and worst first."""
    ok = measured_pairs(results)
    wins = ok[ok.speedup_ci_low > 1].sort_values("speedup", ascending=False, kind="stable")
    losses = ok[ok.speedup_ci_high < 1].sort_values("speedup", kind="stable")
    return wins, losses
