"""What a run read from disk must hold, and older runs brought up to date: run.json's fields
(checked as data: result files come from others, CI artifacts among them), its schema version,
the result table's columns added since (step by step, as schema.py's history lists them) and
values no measurement produces."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dscbench.errors import ResultsError
from dscbench.results.schema import (
    ADDED_IN_V2,
    ADDED_IN_V3,
    ADDED_IN_V4,
    ADDED_IN_V6,
    ADDED_IN_V7,
    ADDED_IN_V8,
    ADDED_IN_V9,
    ADDED_IN_V10,
    RUN_STATUSES,
    SCHEMA_VERSION,
)


def check_meta(meta: dict[str, Any], source: Path) -> dict[str, Any]:
    """``meta`` (run.json of ``source``) when this dscbench reads its schema version and every
    field it acts on holds what it should; ResultsError naming the first problem otherwise."""
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
    (("harness", "between_run_sd"), lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    (("confirmation",), _optional(lambda v: _confirmations(v)), "a list of confirmation records"),
)


def _confirmations(v: Any) -> bool:
    """run.json's ``confirmation``: records naming a row (strings), saying whether it was
    confirmed (a boolean), with its ratio and interval (numbers or null)."""
    keys = ("config_id", "backend", "env", "variant")
    return isinstance(v, list) and all(
        isinstance(r, dict)
        and all(isinstance(r.get(k), str) for k in keys)
        and isinstance(r.get("confirmed"), bool)
        and all(r.get(k) is None or _number(r.get(k)) for k in ("ratio", "ci_low", "ci_high"))
        and _rounds(r.get("rounds"))
        and (r.get("confidence") is None or (_number(r["confidence"]) and 0 < r["confidence"] < 1))
        for r in v
    )


def _rounds(v: Any) -> bool:
    """[first, end) rounds: two counts, the first not after the second."""
    return (
        isinstance(v, list) and len(v) == 2 and all(_integer(x) and x >= 0 for x in v)
        and v[0] <= v[1]
    )  # fmt: skip


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


def upgrade_table(results: pd.DataFrame, version: int, meta: dict[str, Any]) -> pd.DataFrame:
    """Bring a result table written under ``version`` to the current columns, step by step."""
    results = results.copy()
    for added_in, added in ((2, ADDED_IN_V2), (3, ADDED_IN_V3), (4, ADDED_IN_V4),
                            (6, ADDED_IN_V6), (7, ADDED_IN_V7), (8, ADDED_IN_V8),
                            (9, ADDED_IN_V9), (10, ADDED_IN_V10)):  # fmt: skip
        if version < added_in:
            for column, default in added.items():
                results[column] = default
    if version < 2:
        names = {
            name: info.get("device_name", "")
            for name, info in (meta.get("backends") or {}).items()
            if isinstance(info, dict)
        }
        results["device_name"] = results["backend"].map(names).fillna("")
    if version < 4:
        results["step_flops"] = results["flops"]
    if version < 9:  # every layer was a 2-D conv, dilation 1, one filter per channel
        layer = results["model"].fillna("") == ""
        for column, value in (("dims", 2), ("dilation", 1), ("depth_multiplier", 1)):
            results[column] = pd.Series(value, index=results.index).where(layer)
    return results


def upgrade_samples(samples: pd.DataFrame, meta: dict[str, Any]) -> pd.DataFrame:
    """Bring a samples table written under an older schema to the current columns: ``env``
    (schema 3) is "" and ``process`` (schema 5) is round mod run.json's ``processes``, the
    rule runs before it followed (round r in process r mod N; 0 in a plain run)."""
    if meta["schema_version"] < 3 and "env" not in samples.columns:
        samples = samples.assign(env="")
    if "round" in samples.columns:
        known = samples["process"] if "process" in samples.columns else None
        if known is None or known.isna().any():
            try:
                processes = max(1, int(meta.get("processes") or 1))
            except (TypeError, ValueError):
                processes = 1
            derived = pd.to_numeric(samples["round"], errors="coerce") % processes
            samples = samples.assign(process=derived if known is None else known.fillna(derived))
    return samples


def _show(value: Any) -> str:
    return f"{float(value):g}" if isinstance(value, (float, np.floating)) else str(value)


def check_values(results: pd.DataFrame, samples: pd.DataFrame, source: Path) -> None:
    """Refuse values no measurement produces: a sample that is not a positive, finite number
    of seconds, a block of fewer than one iteration, a negative round, a latency or count that
    is zero or negative. (A compare over such files would print nonsense with exit 0.)"""
    problems = []
    for what, bad in (
        ("time_s", ~(np.isfinite(samples.time_s) & (samples.time_s > 0))),
        ("iterations", samples.iterations < 1),
        ("round", samples["round"] < 0),
        ("process", samples["process"] < 0),
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
