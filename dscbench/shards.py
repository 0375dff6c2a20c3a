"""Shards: a deterministic 1/N of a sweep's configurations, the same on every machine and
Python version, so N jobs of a scheduler each run their own part.

A configuration belongs to shard ``K`` (1..N) when the SHA-256 of its key
(``config_id@backend``) modulo N is K - 1: a function of the configuration alone, not of its
position in the list (which changes when the grid changes). ``--shard auto`` reads K and N from
the scheduler:

- Slurm job arrays: ``SLURM_ARRAY_TASK_ID``, ``SLURM_ARRAY_TASK_MIN``, ``SLURM_ARRAY_TASK_COUNT``
  (K = task id - min + 1, N = count);
- Kubernetes Indexed Jobs: ``JOB_COMPLETION_INDEX`` (K = index + 1) with N from ``--shards``;
- anything else (a CI matrix): pass ``--shard K/N`` explicitly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from dscbench.errors import SpecError

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1..count
    count: int
    source: str = "flag"  # flag, slurm or kubernetes

    def owns(self, key: str) -> bool:
        return shard_of(key, self.count) == self.index

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "count": self.count, "source": self.source}


def shard_of(key: str, count: int) -> int:
    """The shard (1..count) that owns configuration ``key``."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select(items: Iterable[T], key_of, shard: Shard | None) -> list[T]:
    """The items ``shard`` owns, in their order (all of them without a shard)."""
    items = list(items)
    if shard is None:
        return items
    return [item for item in items if shard.owns(key_of(item))]


def parse(text: str | None, env: Mapping[str, str], shards: int | None = None) -> Shard | None:
    """``--shard K/N`` or ``--shard auto`` (with ``--shards N`` for Kubernetes) -> Shard."""
    if text is None:
        if shards is not None:
            raise SpecError("--shards N goes with --shard auto (Kubernetes Indexed Jobs)")
        return None
    text = text.strip().lower()
    if text == "auto":
        return _from_scheduler(env, shards)
    index, sep, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        raise SpecError(f"--shard {text!r}: expected K/N (like 2/8) or auto") from None
    if not sep or not 1 <= shard.index <= shard.count:
        raise SpecError(f"--shard {text!r}: K/N needs 1 <= K <= N (like 2/8)")
    return shard


def _from_scheduler(env: Mapping[str, str], shards: int | None) -> Shard:
    def integer(name: str) -> int:
        try:
            return int(env[name])
        except ValueError:
            raise SpecError(f"--shard auto: {name}={env[name]!r} is not an integer") from None

    if "SLURM_ARRAY_TASK_ID" in env:
        missing = [v for v in ("SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN") if v not in env]
        if missing:
            raise SpecError(f"--shard auto: a Slurm array task without {', '.join(missing)}")
        count = shards if shards is not None else integer("SLURM_ARRAY_TASK_COUNT")
        index = integer("SLURM_ARRAY_TASK_ID") - integer("SLURM_ARRAY_TASK_MIN") + 1
        return _checked(Shard(index, count, "slurm"), "SLURM_ARRAY_TASK_ID")
    if "JOB_COMPLETION_INDEX" in env:
        if shards is None:
            raise SpecError(
                "--shard auto in a Kubernetes Indexed Job needs --shards N (the Job's completions)"
            )
        index = integer("JOB_COMPLETION_INDEX") + 1
        return _checked(Shard(index, shards, "kubernetes"), "JOB_COMPLETION_INDEX")
    raise SpecError(
        "--shard auto: no scheduler found (neither SLURM_ARRAY_TASK_ID nor "
        "JOB_COMPLETION_INDEX is set); pass --shard K/N"
    )


def _checked(shard: Shard, variable: str) -> Shard:
    if shard.count < 1 or not 1 <= shard.index <= shard.count:
        raise SpecError(
            f"--shard auto: {variable} gives shard {shard.index} of {shard.count}, outside "
            f"1..{shard.count}"
        )
    return shard
