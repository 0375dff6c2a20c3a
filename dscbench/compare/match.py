"""Matching the two sides' result rows: which rows both measured, which are missing or failed
on a side (settled as Changes here), and why nothing matched when nothing did."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from dscbench.compare.model import Change, Verdict
from dscbench.labels import row_label
from dscbench.results import LABEL_COLUMNS
from dscbench.status import RunStatus, Status

# Axes whose values, when the two sides share none, explain why no row matched: (column, how to
# say it, the flag that sets it).
MATCH_AXES = (
    ("threads", "thread counts", "--threads"),
    ("dtype", "dtypes", "--dtype"),
    ("batch", "batch sizes", "--batch"),
    ("mode", "modes", "--mode"),
    ("memory_format", "memory formats", "--memory-format"),
    ("cache", "caches", "--cache"),
    ("backend", "backends", "--backend"),
    ("model", "models", "--model"),
    ("in_channels", "channel counts", "--in-channels"),
    ("dims", "layer dimensions", "--dims"),
    ("dilation", "dilations", "--dilation"),
    ("depth_multiplier", "depth multipliers", "--depth-multiplier"),
)


def why_nothing_comparable(base: pd.DataFrame, cand: pd.DataFrame, sides: tuple[str, str]) -> str:
    """One line on why two sides have no row in common that both measured: the axes on which
    they share no value, or that the shared configurations failed or were not measured."""
    keys_b = set(zip(base.config_id, base.backend, base.variant, strict=True))
    keys_c = set(zip(cand.config_id, cand.backend, cand.variant, strict=True))
    if not keys_b & keys_c:
        differ = []
        for column, what, flag in MATCH_AXES:
            vb = sorted({str(v) for v in base[column].dropna()})
            vc = sorted({str(v) for v in cand[column].dropna()})
            if vb and vc and not set(vb) & set(vc):
                differ.append(
                    f"{what} differ ({sides[0]} {', '.join(vb)}, {sides[1]} {', '.join(vc)}): "
                    f"rerun one side with {flag} {','.join(vb)}"
                )
        reason = "; ".join(differ) or "their configurations differ"
        return f"nothing to compare: the two sides share no configuration; {reason}"
    shared = keys_b & keys_c
    ok_b = {k for k, s in zip(zip(base.config_id, base.backend, base.variant, strict=True),
                              base.status, strict=True) if s == Status.OK}  # fmt: skip
    ok_c = {k for k, s in zip(zip(cand.config_id, cand.backend, cand.variant, strict=True),
                              cand.status, strict=True) if s == Status.OK}  # fmt: skip
    return (
        f"nothing to compare: of the {len(shared)} rows both sides have, {sides[0]} measured "
        f"{len(shared & ok_b)} and {sides[1]} {len(shared & ok_c)}, and none was measured by "
        "both (see their status column)"
    )


def incomplete_notes(sides: dict[str, Any]) -> list[str]:
    """A note for each side whose run did not finish (interrupted, crashed, still running):
    its unreached rows are left out, not counted as failures."""
    notes = []
    for name, rs in sides.items():
        status = rs.meta.get("status", RunStatus.COMPLETE)
        if status != RunStatus.COMPLETE:
            missing = int((rs.results.status == Status.NOT_MEASURED).sum())
            notes.append(
                f"{name} is incomplete (status {status}, {rs.meta.get('rounds_done', '?')} "
                f"round(s) done): {missing} row(s) it never measured are left out, and only "
                "what both sides measured is judged"
            )
    return notes


ROW_FIELDS = ["status", "error", *LABEL_COLUMNS, "backend", "env"]


def _rows(results: pd.DataFrame, metric: str) -> dict[tuple, dict[str, Any]]:
    """key -> the fields of the result row the metric compares (status, error, label)."""
    columns = ["config_id", "variant", *[f for f in ROW_FIELDS if f != "variant"]]
    # A row an interrupted run never reached is absent, not failing: only what both sides
    # measured is judged (incomplete_notes says a side was cut short).
    results = results[results.status != Status.NOT_MEASURED]
    if metric == "latency":
        rows = results[columns]
    else:
        rows = results.loc[results.variant == "separable", columns].copy()
        rows["variant"] = "pair"
    keys = zip(rows.config_id, rows.backend, rows.env, rows.variant, strict=True)
    return dict(zip(keys, rows[ROW_FIELDS].to_dict("records"), strict=True))


def label(row: dict[str, Any]) -> str:
    """A comparison row's label: ``row_label`` with every axis but backend and environment,
    which renderers show themselves (stable across runs, so tools that track rows by name,
    like github-action-benchmark, see the same name every time)."""
    return row_label(row, omit=("backend", "env"))


@dataclass
class Matched:
    """The outcome of matching two sides' rows: every key in order, the rows that are missing
    or failed on a side as finished Changes, and the keys both sides measured."""

    keys: list[tuple]
    labels: dict[tuple, str]
    settled: dict[tuple, Change]
    comparable: list[tuple]
    counts: dict[tuple, str]  # every row's notes on what changed besides time
    kernels: dict[tuple, tuple[str, str]] = field(default_factory=dict)  # (before, after)

    def with_kernels(self, change: Change) -> Change:
        """``change`` with the kernels both sides ran."""
        before, after = self.kernels.get(change.key, ("", ""))
        return replace(change, kernels_before=before, kernels_after=after)

    def fail_unmeasured(self, *why: Callable[[tuple], str]) -> None:
        """Comparable rows that some ``why(key)`` says cannot be compared become ``failed``."""
        for key in list(self.comparable):
            reason = next((text for text in (w(key) for w in why) if text), "")
            if reason:
                self.settled[key] = Change(
                    config_id=key[0],
                    backend=key[1],
                    env=key[2],
                    variant=key[3],
                    label=self.labels[key],
                    verdict=Verdict.FAILED,
                    note=join(reason, self.counts.get(key)),
                )
                self.comparable.remove(key)


def match_rows(
    base: pd.DataFrame, cand: pd.DataFrame, metric: str, typical_b: dict, typical_c: dict
) -> Matched:
    """Match result rows on config_id (every config column), backend, env and variant."""
    rows_b, rows_c = _rows(base, metric), _rows(cand, metric)
    counts = count_changes(base, cand, metric)
    kernels = kernels_of(base, cand, metric)
    for key, (before, after) in kernels.items():
        if before and after and before != after:
            counts[key] = join(counts.get(key), f"kernel changed: {before} -> {after}")
    keys = list(dict.fromkeys([*rows_b, *rows_c]))
    labels: dict[tuple, str] = {}
    settled: dict[tuple, Change] = {}
    comparable = []
    for key in keys:
        b, c = rows_b.get(key), rows_c.get(key)
        labels[key] = label(c if c is not None else b)
        common = dict(
            config_id=key[0], backend=key[1], env=key[2], variant=key[3], label=labels[key]
        )
        if c is None or b is None:
            if c is None:
                value, _ = typical_b.get(key, (math.nan, math.nan))
                settled[key] = Change(**common, verdict=Verdict.REMOVED, baseline=value)
            else:
                value, spread = typical_c.get(key, (math.nan, math.nan))
                settled[key] = Change(
                    **common, verdict=Verdict.ADDED, candidate=value, spread=spread
                )
            continue
        if b["status"] != Status.OK or c["status"] != Status.OK:
            if b["status"] == Status.OK:
                side = "candidate"
                note = f"candidate {c['status']}: {_own_error(c['error'], key[3])}".rstrip(": ")
            elif c["status"] == Status.OK:
                side = "baseline"
                note = f"baseline {b['status']}: {_own_error(b['error'], key[3])}".rstrip(": ")
            else:
                side = "both"
                note = f"both failed: baseline {b['status']}, candidate {c['status']}"
            settled[key] = Change(
                **common, verdict=Verdict.FAILED, note=join(note, counts.get(key)), failed_in=side
            )
            continue
        comparable.append(key)
    return Matched(keys, labels, settled, comparable, counts, kernels)


def _own_error(error: str, variant: str) -> str:
    """The part of a case's error about ``variant`` ("standard: ...; separable: ...")."""
    for part in error.split("; "):
        if part.startswith(f"{variant}: "):
            return part[len(variant) + 2 :]
    return error


def join(*parts: str | None) -> str:
    return "; ".join(p for p in parts if p)


def kernels_of(base: pd.DataFrame, cand: pd.DataFrame, metric: str) -> dict[tuple, tuple[str, str]]:
    """key -> (baseline's kernels, candidate's): the ``kernels`` column of the rows both sides
    have; for the speedup metric, both variants' as ``standard: A | separable: B``."""
    on = ["config_id", "backend", "env"]
    both = base[[*on, "variant", "kernels"]].merge(
        cand[[*on, "variant", "kernels"]], on=[*on, "variant"], suffixes=("_b", "_c")
    )
    if metric == "latency":
        return {
            (r.config_id, r.backend, r.env, r.variant): (r.kernels_b, r.kernels_c)
            for r in both.itertuples(index=False)
        }
    out: dict[tuple, tuple[str, str]] = {}
    for (config_id, backend, env), group in both.groupby(on, sort=False):
        by_variant = {r.variant: (r.kernels_b, r.kernels_c) for r in group.itertuples()}
        sides = []
        for side in (0, 1):
            named = {v: k[side] for v, k in by_variant.items()}
            # both variants named, or nothing to compare (an older file, a backend without)
            complete = all(named.get(v) for v in ("standard", "separable"))
            sides.append(
                f"standard: {named['standard']} | separable: {named['separable']}"
                if complete
                else ""
            )
        out[(config_id, backend, env, "pair")] = (sides[0], sides[1])
    return out


def count_changes(base: pd.DataFrame, cand: pd.DataFrame, metric: str) -> dict[tuple, str]:
    """key -> 'counts changed: standard params 9216 -> 9472' for configurations whose params or
    MACs differ between the runs (the model or the counter changed)."""
    on = ["config_id", "backend", "env", "variant"]
    columns = [*on, "params", "macs"]
    both = base[columns].merge(cand[columns], on=on, suffixes=("_b", "_c"))
    changed = both[(both.params_b != both.params_c) | (both.macs_b != both.macs_c)]
    out: dict[tuple, list[str]] = {}
    for row in changed.itertuples(index=False):
        parts = [
            f"{row.variant} {name} {getattr(row, name + '_b')} -> {getattr(row, name + '_c')}"
            for name in ("params", "macs")
            if getattr(row, name + "_b") != getattr(row, name + "_c")
        ]
        variant = "pair" if metric == "speedup" else row.variant
        out.setdefault((row.config_id, row.backend, row.env, variant), []).extend(parts)
    return {key: "counts changed: " + ", ".join(parts) for key, parts in out.items()}
