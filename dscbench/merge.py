"""`dscbench merge`: shards of one sweep (run with --shard) become one run.

Refused, with a line naming the shards, unless the flag says otherwise:
- overlapping: two shards with the same index, or a configuration measured in two inputs;
- inconsistent: another sweep (its configurations' SHA-256, recorded by every shard), shard
  count, settings, sweep source, backend options or dscbench version;
- incomplete: a shard missing from 1..N, or a shard whose run did not finish
  (``--allow-partial`` merges what there is, status ``partial``);
- different hardware (CPU model, architecture, GPUs): ``--allow-different-hardware`` merges
  them and marks the run ``mixed_hardware``, which compare refuses in turn unless it is given
  the same flag.

Rows keep their ``host`` and ``shard`` columns; run.json keeps every shard's environment under
``merged_from``. The machine canary is dropped (its samples belong to one machine each).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pandas as pd

from dscbench import results
from dscbench.env import hardware_differences
from dscbench.errors import DscbenchError
from dscbench.lock import holder
from dscbench.signals import ignore_stop_signals, uninterrupted

CONSISTENT = ("settings", "source", "backend_options")


class MergeError(DscbenchError):
    """Shards that cannot be merged as they are."""


def merge_runs(
    paths: list[Path], *, allow_partial: bool = False, allow_different_hardware: bool = False
) -> tuple[results.ResultSet, pd.DataFrame | None]:
    """The merged ResultSet (and breakdown, for model runs) of the shard runs at ``paths``."""
    if len(paths) < 2:
        raise MergeError("merge needs two or more shard runs")
    runs = [results.load_results(p) for p in paths]
    shards = []
    for path, rs in zip(paths, runs, strict=True):
        shard = rs.meta.get("shard")
        if not shard:
            raise MergeError(f"{path}: not a shard (it was not run with --shard K/N)")
        shards.append((int(shard["index"]), int(shard["count"])))
    first = runs[0].meta
    for path, rs, (index, count) in zip(paths, runs, shards, strict=True):
        if count != shards[0][1]:
            raise MergeError(
                f"{path}: shard {index}/{count}, but {paths[0]} is one of {shards[0][1]}"
            )
        for key in CONSISTENT:
            if rs.meta.get(key) != first.get(key):
                raise MergeError(
                    f"{path}: its {key} differ from {paths[0]}'s "
                    f"({rs.meta.get(key)!r} vs {first.get(key)!r}); shards must be one sweep"
                )
        version = (rs.meta.get("environment") or {}).get("dscbench")
        if version != (first.get("environment") or {}).get("dscbench"):
            raise MergeError(f"{path}: measured with dscbench {version}, unlike {paths[0]}")
    sweep = _same_sweep(paths, runs)
    seen: dict[int, Path] = {}
    for path, (index, _) in zip(paths, shards, strict=True):
        if index in seen:
            raise MergeError(f"overlapping shards: {seen[index]} and {path} are both shard {index}")
        seen[index] = path
    owner: dict[tuple, Path] = {}
    for path, rs in zip(paths, runs, strict=True):
        for key in zip(rs.results.config_id, rs.results.backend, rs.results.env, strict=True):
            if owner.setdefault(key, path) != path:
                raise MergeError(
                    f"overlapping shards: {owner[key]} and {path} both measured {key[0]} on "
                    f"{key[1]}"
                )
    count = shards[0][1]
    missing = sorted(set(range(1, count + 1)) - set(seen))
    unfinished = [
        str(p) for p, rs in zip(paths, runs, strict=True) if rs.meta.get("status") != "complete"
    ]
    if (missing or unfinished) and not allow_partial:
        parts = []
        if missing:
            parts.append(f"shard(s) {', '.join(map(str, missing))} of {count} missing")
        if unfinished:
            parts.append(f"not finished: {', '.join(unfinished)}")
        raise MergeError(f"incomplete: {'; '.join(parts)} (--allow-partial merges what there is)")
    mixed = [
        f"{path}: {'; '.join(diffs)}"
        for path, rs in zip(paths[1:], runs[1:], strict=True)
        if (diffs := hardware_differences(first, rs.meta))
    ]
    if mixed and not allow_different_hardware:
        raise MergeError(
            f"shards measured on different hardware ({mixed[0]}); --allow-different-hardware "
            "merges them anyway"
        )
    meta = _merged_meta(paths, runs, shards, partial=bool(missing or unfinished), mixed=bool(mixed))
    meta["configurations_sha256"] = sweep["sweep_sha256"]
    meta["n_configurations"] = sweep["sweep_configurations"]
    table = pd.concat([rs.results for rs in runs], ignore_index=True)
    samples = pd.concat([rs.samples for rs in runs], ignore_index=True)
    breakdowns = [
        pd.read_parquet(Path(p) / results.BREAKDOWN_PARQUET)
        for p in paths
        if (Path(p) / results.BREAKDOWN_PARQUET).exists()
    ]
    breakdown = pd.concat(breakdowns, ignore_index=True).drop_duplicates() if breakdowns else None
    return results.ResultSet(meta, table, samples), breakdown


def _same_sweep(paths: list[Path], runs: list[results.ResultSet]) -> dict[str, Any]:
    """The sweep every shard says it is part of (its configuration count and SHA-256, in
    run.json's ``shard``); MergeError naming the first shard of another sweep."""
    found = []
    for path, rs in zip(paths, runs, strict=True):
        shard = rs.meta["shard"]
        digest, size = shard.get("sweep_sha256"), shard.get("sweep_configurations")
        if not isinstance(digest, str) or not isinstance(size, int):
            raise MergeError(
                f"{path}: its run.json does not record which sweep the shard is part of "
                "(an earlier dscbench); run its shards again to merge them"
            )
        found.append((digest, size))
    for path, (digest, size) in zip(paths[1:], found[1:], strict=True):
        if digest != found[0][0]:
            raise MergeError(
                f"{path}: a shard of another sweep than {paths[0]} ({size} configurations, "
                f"sha256 {digest[:12]}, vs {found[0][1]}, sha256 {found[0][0][:12]}); shards "
                "must come from one sweep"
            )
    return {"sweep_sha256": found[0][0], "sweep_configurations": found[0][1]}


def _merged_meta(
    paths: list[Path], runs: list[Any], shards: list[tuple[int, int]], *, partial: bool, mixed: bool
) -> dict[str, Any]:
    meta = dict(runs[0].meta)
    meta.update(
        status="partial" if partial else "complete",
        shard=None,
        canary=None,
        n_configurations=sum(int(rs.meta.get("n_configurations") or 0) for rs in runs),
        rounds_done=min(int(rs.meta.get("rounds_done") or 0) for rs in runs),
        mixed_hardware=mixed,
        merged_from=[
            {
                "path": str(p),
                "shard": {"index": i, "count": n},
                "status": rs.meta.get("status"),
                "started_at": rs.meta.get("started_at"),
                "host": (rs.meta.get("environment") or {}).get("hostname"),
                "environment": rs.meta.get("environment"),
                "backends": rs.meta.get("backends"),
            }
            for p, rs, (i, n) in zip(paths, runs, shards, strict=True)
        ],
    )
    return meta


def write_merged(
    output: Path,
    merged: results.ResultSet,
    breakdown: pd.DataFrame | None,
    force: bool,
) -> Path:
    """Write the merged run as one set: its files go into a staging directory beside
    ``output``, which then takes ``output``'s place by rename, so ``output`` holds either the
    whole merge or what it held before. Ctrl-C or SIGTERM during the write and the rename is
    held; once the merge is in place the command finishes (exit 0) and further signals are
    ignored."""
    output = Path(output)
    results.check_output_dir(output, force)
    if output.is_dir() and (who := holder(output)) is not None:
        raise MergeError(
            f"--output {output}: a dscbench (pid {who.get('pid')} on {who.get('host')}) is "
            "writing a run there"
        )
    parent = output.parent if str(output.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise results.ResultsError(
            f"--output {output}: cannot create ({exc.strerror or exc})"
        ) from None
    staging = parent / f".{output.name}.merging-{os.getpid()}"
    aside = parent / f".{output.name}.replaced-{os.getpid()}"
    with uninterrupted():
        shutil.rmtree(staging, ignore_errors=True)
        try:
            staging.mkdir()
            results.write_run(staging, merged.results, merged.samples, merged.meta, breakdown)
            if output.exists():  # --force: the old contents go once the new ones are in place
                os.rename(output, aside)
            os.rename(staging, output)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            if aside.exists() and not output.exists():
                os.rename(aside, output)
            raise
        results.fsync_dir(parent)
        ignore_stop_signals()  # done: a signal now must not turn a finished merge into 130
    shutil.rmtree(aside, ignore_errors=True)
    return output
