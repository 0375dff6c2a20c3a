"""The one NaN-to-null guard: what dscbench writes as JSON (run.json, the journal, exports,
compare's JSON) has null where a number is missing, never a bare NaN or Infinity, which strict
JSON parsers reject. numpy only, so every layer may import it."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def json_safe(value: Any) -> Any:
    """``value`` with NaN and infinities as null and numpy scalars as Python ones, recursively
    through dicts, lists and tuples (run.json after one round, for instance, has no round
    spread)."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
