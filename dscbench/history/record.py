"""Adding a run to the history (``dscbench history add``): every row with its estimate, its
interval and the per-process values behind it, and the run's own tables, in one transaction
(store.py's tables)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from dscbench.history import fingerprint as fp
from dscbench.history.store import (
    CONFIDENCE,
    CONFIG_GROUPS,
    HistoryError,
    fingerprints,
    rows,
    run_files,
    runs,
    units,
)
from dscbench.jsonsafe import json_safe


def run_key(meta: Mapping[str, Any]) -> str:
    """A run's identity: the SHA-256 of its host, start time, configurations and shard."""
    parts = [meta.get("host"), meta.get("started_at"), meta.get("configurations_sha256"),
             json.dumps(meta.get("shard"), sort_keys=True)]  # fmt: skip
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Added:
    """What ``add`` stored."""

    run_id: int
    key: str
    rows: int
    failed: int
    series: int


def add(
    engine: sa.Engine,
    result_set: Any,
    commit: str,
    branch: str | None = None,
    facts: tuple[str, ...] = fp.DEFAULT_FACTS,
    now: datetime | None = None,
) -> Added:
    """Store every row of ``result_set`` (results.ResultSet) under ``commit``, in one
    transaction; HistoryError when the run is there already."""
    meta = result_set.meta
    key = run_key(meta)
    measure = (meta.get("harness") or {}).get("measure") or "time"
    estimates = timed_estimates(result_set.samples) if measure == "time" else {}
    try:
        return _insert(engine, result_set, commit, branch, facts, now, key, measure, estimates)
    except sa.exc.IntegrityError:  # another job added this run or fingerprint just now
        raise HistoryError(
            f"this run (started {meta.get('started_at')} on {meta.get('host')}) could not be "
            "added: another job wrote the same run or fingerprint at the same moment; add it "
            "again (nothing of it was written)"
        ) from None


def _insert(
    engine: sa.Engine,
    result_set: Any,
    commit: str,
    branch: str | None,
    facts: tuple[str, ...],
    now: datetime | None,
    key: str,
    measure: str,
    estimates: Mapping[tuple[str, ...], Mapping[str, Any]],
) -> Added:
    """``add``'s transaction."""
    meta, table = result_set.meta, result_set.results
    with engine.begin() as conn:
        there = conn.execute(
            sa.select(runs.c.commit, runs.c.added_at).where(runs.c.key == key)
        ).first()
        if there is not None:
            raise HistoryError(
                f"this run (started {meta.get('started_at')} on {meta.get('host')}) is in the "
                f"history already: added {there.added_at:%Y-%m-%d %H:%M} for commit "
                f"{there.commit[:12]}"
            )
        run_id = conn.execute(
            sa.insert(runs).values(
                key=key,
                commit=commit,
                branch=branch,
                started_at=_time(meta.get("started_at")),
                added_at=now or datetime.now(timezone.utc),
                host=meta.get("host"),
                measure=measure,
                status=meta.get("status") or "",
                source=meta.get("source"),
                dscbench=(meta.get("environment") or {}).get("dscbench"),
                run_schema=int(meta.get("schema_version") or 0),
                meta=json.dumps(json_safe(meta)),
            )
        ).inserted_primary_key[0]
        prints: dict[str, int] = {}
        series: set[str] = set()
        failed = 0
        for row in table.to_dict("records"):
            facts_row = fp.facts_of(meta, row, facts)
            print_key = fp.key_of(facts_row)
            if print_key not in prints:
                prints[print_key] = _fingerprint_id(conn, print_key, facts_row)
            values = _row_values(row, measure, estimates)
            s = fp.series_key(row["config_id"], row["variant"], row["backend"],
                              str(row.get("env") or ""), print_key)  # fmt: skip
            series.add(s)
            failed += values["status"] != "ok"
            row_id = conn.execute(
                sa.insert(rows).values(
                    run_id=run_id, fingerprint_id=prints[print_key], series=s, **values
                )
            ).inserted_primary_key[0]
            behind = [
                {"row_id": row_id, "position": i, "value": v}
                for i, v in enumerate(estimates.get(_key(row), {}).get("units", []))
                if _number(v) is not None
            ]
            if behind:
                conn.execute(sa.insert(units), behind)
        conn.execute(
            sa.insert(run_files).values(
                run_id=run_id, results=_parquet(table), samples=_parquet(result_set.samples)
            )
        )
    return Added(run_id, key, len(table), failed, len(series))


def _parquet(frame: pd.DataFrame) -> bytes:
    """``frame`` as parquet bytes, zstd-compressed, without pandas' schema and per-column
    statistics (a quick-preset run's result table: 15 KB instead of 47 KB; every value kept)."""
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None)
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", write_statistics=False, store_schema=False)
    return buffer.getvalue()


def _fingerprint_id(conn: sa.Connection, key: str, facts: Mapping[str, str]) -> int:
    found = conn.execute(sa.select(fingerprints.c.id).where(fingerprints.c.key == key)).scalar()
    if found is not None:
        return int(found)
    return int(
        conn.execute(
            sa.insert(fingerprints).values(key=key, facts=json.dumps(dict(sorted(facts.items()))))
        ).inserted_primary_key[0]
    )


def _time(text: Any) -> datetime:
    try:
        stamp = datetime.fromisoformat(str(text))
    except ValueError:
        raise HistoryError(f"run.json's started_at {text!r} is not a time") from None
    stamp = stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)
    return stamp.astimezone(timezone.utc)  # SQLite keeps the clock time, not the offset


def _key(row: Mapping[str, Any]) -> tuple[str, str, str, str]:
    return (row["config_id"], row["backend"], str(row.get("env") or ""), row["variant"])


def _number(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if np.isfinite(x) else None


def _row_values(
    row: Mapping[str, Any], measure: str, estimates: Mapping[tuple[str, ...], Mapping[str, Any]]
) -> dict[str, Any]:
    """A result row's columns in the store."""
    from dscbench.results.schema import RESULT_SCHEMA, columns_of

    config = {c: row.get(c) for g in CONFIG_GROUPS for c in columns_of(RESULT_SCHEMA, g)}
    status = str(row.get("status") or "")
    out: dict[str, Any] = {
        "config_id": row["config_id"],
        "variant": row["variant"],
        "backend": row["backend"],
        "env": str(row.get("env") or ""),
        "config": json.dumps(json_safe(config), sort_keys=True),
        "status": status,
        "error": row.get("error") or None,
        "speedup": _number(row.get("speedup")),
        "speedup_low": _number(row.get("speedup_ci_low")),
        "speedup_high": _number(row.get("speedup_ci_high")),
        "instructions_spread": _number(row.get("instructions_spread")),
        "allocator_instructions": _number(row.get("allocator_instructions")),
        "kernels": row.get("kernels") or None,
        "warnings": row.get("warnings") or None,
    }
    if measure == "instructions":
        out.update(metric="instructions", value=_number(row.get("instructions")))
        return out
    estimate = estimates.get(_key(row), {})
    out.update(
        metric="latency_s",
        value=_number(estimate.get("value", row.get("latency_median_s"))),
        low=_number(estimate.get("low")),
        high=_number(estimate.get("high")),
        units=estimate.get("n"),
    )
    if status != "ok":
        out["value"] = out["low"] = out["high"] = None
    return out


def timed_estimates(samples: pd.DataFrame) -> dict[tuple[str, ...], dict[str, Any]]:
    """Per row of a timed run: the estimate compare uses (the trimmed mean of the log latency
    over processes, round effects removed; stats.runs.row_stats), its 95% interval, and the
    per-process values behind it, in seconds."""
    from dscbench.stats import remove_round_effects, row_estimates, t_quantile, unit_values
    from dscbench.stats.runs import KEY, MIN_ROWS_FOR_SPREAD, round_values

    if samples.empty:
        return {}
    values = round_values(samples, "latency")
    values = remove_round_effects(values, KEY, "backend", MIN_ROWS_FOR_SPREAD)
    stats = row_estimates(values, KEY)
    per_unit = unit_values(values, KEY).groupby(KEY, sort=False).cost.agg(list)
    out: dict[tuple[str, ...], dict[str, Any]] = {}
    for key, r in stats.iterrows():
        half = (
            float(t_quantile(CONFIDENCE, r["df"])) * float(np.sqrt(r["se2"]))
            if r["n"] >= 2 and np.isfinite(r["se2"])
            else np.nan
        )
        out[tuple(key)] = {
            "value": float(np.exp(r["mean"])),
            "low": float(np.exp(r["mean"] - half)) if np.isfinite(half) else None,
            "high": float(np.exp(r["mean"] + half)) if np.isfinite(half) else None,
            "n": int(r["n"]),
            "units": [float(np.exp(c)) for c in per_unit.get(key, [])],
        }
    return out
