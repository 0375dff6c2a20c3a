"""The build cache: a case's prepared variants kept between visits while their tensors fit a
byte budget; an evicted case is rebuilt (same seed, same weights) on its next visit."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING

from dscbench import counting
from dscbench.spec import VARIANTS

if TYPE_CHECKING:
    from dscbench.backends.base import Prepared
    from dscbench.spec import Spec


class PreparedCache:
    """Prepared variants by case key, least recently used evicted first, while the bytes they
    hold stay within ``budget_bytes``."""

    def __init__(self, budget_bytes: int):
        self.budget = budget_bytes
        self.items: OrderedDict[str, tuple[dict[str, Prepared], int]] = OrderedDict()
        self.used = 0

    def get(self, key: str) -> dict[str, Prepared] | None:
        hit = self.items.get(key)
        if hit is None:
            return None
        self.items.move_to_end(key)
        return hit[0]

    def drop(self, key: str) -> None:
        hit = self.items.pop(key, None)
        if hit is not None:
            self.used -= hit[1]

    def put(self, key: str, prepared: dict[str, Prepared], size: int) -> None:
        if size > self.budget:  # never kept: keep what is there (a cold case's copies)
            return
        while self.items and self.used + size > self.budget:
            _, (_, old) = self.items.popitem(last=False)
            self.used -= old
        if size <= self.budget:
            self.items[key] = (prepared, size)
            self.used += size


def held_bytes(spec: Spec, prepared: Mapping[str, Prepared], counted: int = 0) -> int:
    """Bytes a case's variants hold (the budget's estimate): a conv layer's closed form, a
    network's ``counted`` bytes when its first build counted them, else what its weights and
    input take; for a cold case, the copies it rotates through (cold.py: the first of them
    is the weights and input themselves)."""
    rotated = sum(int(p.cache.get("rotated_bytes", 0)) for p in prepared.values())
    if rotated:
        return rotated
    if spec.kind == "conv":
        return sum(counting.closed_form(spec, v).bytes for v in VARIANTS)
    return counted or _resident_bytes(prepared)


def _resident_bytes(prepared: Mapping[str, Prepared]) -> int:
    from dscbench.memory import resident_bytes

    held = []
    for p in prepared.values():
        if p.module is not None:
            held += [*p.module.parameters(), p.example_input]
    return resident_bytes(held)
