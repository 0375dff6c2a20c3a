"""The one human label of a result row, used by every table, comparison and progress line.

``n1 32->64 @56 k3s1 float32 t2 channels_last cold onnxruntime-cpu {env}``: batch, shape,
dtype, threads, memory format, a cold cache, backend and environment. Tables leave out the
axes that are the same on every row (``constant_axes``) and say them once in the title
instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# Axes a label may leave out because they are constant across a table, in label order.
OPTIONAL_AXES = ("batch", "dtype", "threads", "memory_format", "backend", "env")
DEFAULT_MEMORY_FORMAT = "contiguous"


def _present(value: Any) -> bool:
    """Not missing: None, NaN and pandas' NA are missing (model rows lack conv columns)."""
    try:
        return value is not None and value == value and str(value) != "<NA>"
    except (TypeError, ValueError):  # pandas.NA refuses comparisons
        return False


def model_label(row: Mapping[str, Any]) -> str:
    """'mobilenet-v1 0.5/160', 'xception-middle d8', 'my.models:build 3x32x32 twin dense'."""
    name = str(row["model"])
    shape = row.get("input_shape")
    if isinstance(shape, (list, tuple)):
        shape = "x".join(str(d) for d in shape)
    if name.startswith("mobilenet"):
        side = str(shape).split("x")[1] if shape else row.get("resolution")
        mult = row.get("width_mult")
        value = float(mult) if _present(mult) else 1.0
        return f"{name} {value:.1f}/{side}" if value.is_integer() else f"{name} {value:g}/{side}"
    if _present(row.get("depth")) and int(row["depth"]) > 0:
        return f"{name} d{int(row['depth'])}"
    if ":" in name:
        twin = row.get("twin") or ""
        return f"{name} {shape}" + (f" twin {twin}" if twin else "")
    return name


def shape_label(row: Mapping[str, Any]) -> str:
    """'32->64 @56 k3s1' (or '@56x48' for a non-square input, '@L16000' for a 1-D one and
    '@8x56x56' for a 3-D one; 'k3s1d2' at dilation 2, 'dm2' for a depth multiplier of 2); a
    model's name and knobs."""
    if row.get("model"):
        return model_label(row)
    h, w, d = row.get("height"), row["width"], row.get("frames")
    if _present(d):
        size = f"{int(d)}x{int(h)}x{int(w)}"
    elif not _present(h):
        size = f"L{int(w)}"
    else:
        size = f"{h}" if h == w else f"{h}x{w}"
    kernel = f"k{row['kernel']}s{row['stride']}"
    dilation, multiplier = row.get("dilation"), row.get("depth_multiplier")
    if _present(dilation) and int(dilation) != 1:
        kernel += f"d{int(dilation)}"
    if _present(multiplier) and int(multiplier) != 1:
        kernel += f" dm{int(multiplier)}"
    return f"{row['in_channels']}->{row['out_channels']} @{size} {kernel}"


def row_label(
    row: Mapping[str, Any], omit: Iterable[str] = (), *, spell_memory_format: bool = False
) -> str:
    """The label of one configuration (a dict or a pandas row's fields).

    Axes in ``omit`` are left out, and so are an empty backend or environment. The default
    (contiguous) memory format is spelled out only with ``spell_memory_format`` (tables where
    the memory format varies)."""
    omit = set(omit)
    parts = []
    if "batch" not in omit:
        parts.append(f"n{row['batch']}")
    parts.append(shape_label(row))
    if "mode" not in omit and row.get("mode") == "training":
        optimizer = row.get("optimizer") or ""
        parts.append(f"train-{optimizer}" if optimizer else "train")
    if "dtype" not in omit:
        parts.append(str(row["dtype"]))
    if "threads" not in omit:
        parts.append(f"t{row['threads']}")
    fmt = row.get("memory_format", DEFAULT_MEMORY_FORMAT)
    if "memory_format" not in omit and (fmt != DEFAULT_MEMORY_FORMAT or spell_memory_format):
        parts.append(str(fmt))
    if "cache" not in omit and row.get("cache") == "cold":
        parts.append("cold")
    backend = row.get("backend") or ""
    if "backend" not in omit and backend:
        parts.append(str(backend))
    env = row.get("env") or ""
    if "env" not in omit and env:
        parts.append(f"{{{env}}}")
    return " ".join(parts)


def constant_axes(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The optional axes that have one value over ``rows`` (axis -> that value)."""
    seen: dict[str, set[Any]] = {axis: set() for axis in OPTIONAL_AXES}
    for row in rows:
        for axis in OPTIONAL_AXES:
            seen[axis].add(row.get(axis, "") if axis in ("backend", "env") else row[axis])
    return {axis: next(iter(v)) for axis, v in seen.items() if len(v) == 1}


def table_label(row: Mapping[str, Any], constant: Mapping[str, Any]) -> str:
    """``row_label`` for a table whose constant axes (said once in its title) are ``constant``;
    where the memory format varies, even the default one is spelled out."""
    return row_label(row, constant, spell_memory_format="memory_format" not in constant)


def describe_constant(constant: Mapping[str, Any]) -> str:
    """'batch 1, float32, 2 thread(s), torch-cpu': a table title's account of its constant axes."""
    parts = []
    if "batch" in constant:
        parts.append(f"batch {constant['batch']}")
    if "dtype" in constant:
        parts.append(str(constant["dtype"]))
    if "threads" in constant:
        parts.append(f"{constant['threads']} thread(s)")
    if constant.get("memory_format", DEFAULT_MEMORY_FORMAT) != DEFAULT_MEMORY_FORMAT:
        parts.append(str(constant["memory_format"]))
    if constant.get("backend"):
        parts.append(str(constant["backend"]))
    if constant.get("env"):
        parts.append(f"env {constant['env']}")
    return ", ".join(parts)
