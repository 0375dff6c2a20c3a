"""Shards: a deterministic 1/N of a sweep's configurations, the same on every machine and
Python version, so N jobs of a scheduler each run their own part.

The partition is balanced: the sweep's configurations are sorted by the SHA-256 of their key
(``config_id@backend``) and dealt out in turn, the i-th (from 0) to shard ``i mod N + 1``, so
shard sizes differ by at most one configuration. Every configuration of a sweep costs the same
in the plan's estimate (``--min-time`` per variant and environment), so equal counts are equal
estimated time. The partition depends on the whole sweep, not on the order of its grids:
the same sweep gives the same shards on every machine, and run.json records the sweep's
SHA-256 so that ``merge`` refuses shards of different sweeps. (A hash modulo N, as before,
was stable per configuration but unbalanced: 2, 4 and 6 configurations of 12.)

``--shard auto`` reads K and N from the scheduler:

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

    def to_json(self) -> dict[str, object]:
        return {"index": self.index, "count": self.count, "source": self.source}


PARTITION = "balanced: configurations sorted by SHA-256 of config_id@backend, dealt in turn"


def owners(keys: Iterable[str], count: int) -> dict[str, int]:
    """The shard (1..count) of every key: sorted by SHA-256 (then by the key itself), the i-th
    goes to shard ``i mod count + 1``."""
    order = sorted(set(keys), key=lambda k: (hashlib.sha256(k.encode("utf-8")).digest(), k))
    return {key: i % count + 1 for i, key in enumerate(order)}


def select(items: Iterable[T], key_of, shard: Shard | None) -> list[T]:
    """The items ``shard`` owns, in their order (all of them without a shard)."""
    items = list(items)
    if shard is None:
        return items
    owner = owners((key_of(item) for item in items), shard.count)
    return [item for item in items if owner[key_of(item)] == shard.index]


def parse(text: str | None, env: Mapping[str, str], shards: int | None = None) -> Shard | None:
    """``--shard K/N`` or ``--shard auto`` (with ``--shards N`` for Kubernetes) -> Shard."""
    if text is None:
        if shards is not None:
            raise SpecError("--shards N goes with --shard auto (Kubernetes Indexed Jobs)")
        return None
    text = text.strip().lower()
    if text == "auto":
        return _from_scheduler(env, shards)
    if shards is not None:
        raise SpecError(f"--shards {shards} goes with --shard auto; --shard {text} says N itself")
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
