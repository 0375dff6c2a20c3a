"""The axes of a grid and their defaults, and parsing one axis from a flag (``"1,2,4"``) or a
spec-file value (a scalar or a list) into checked values."""

from __future__ import annotations

import math
from typing import Any

from dscbench.errors import SpecError
from dscbench.spec.specs import CACHES, DTYPE_ALIASES, MEMORY_FORMATS, OPTIMIZERS, TWINS

_DTYPE_LOOKUP = {alias: name for name, aliases in DTYPE_ALIASES.items() for alias in aliases}
_MEMORY_FORMAT_ALIASES = {
    "contiguous": "contiguous",
    "nchw": "contiguous",
    "channels_last": "channels_last",
    "channels-last": "channels_last",
    "nhwc": "channels_last",
}

# Axis name -> default value when neither the grid nor a flag gives one.
# out_channels None means "equal to in_channels"; threads None means "what torch uses".
AXIS_DEFAULTS: dict[str, Any] = {
    "batch": [1],
    "in_channels": None,  # required
    "out_channels": None,
    "size": None,  # required
    "dims": [None],  # None: as the size says (2 for a single number like 56)
    "kernel": [3],
    "stride": [1],
    "dilation": [1],
    "depth_multiplier": [1],
    "dtype": ["float32"],
    "mode": ["inference"],
    "backend": ["torch-cpu"],
    "threads": [None],
    "memory_format": ["contiguous"],
    "cache": ["warm"],
    "bias": [False],
    "optimizer": ["sgd"],
    # Model twins (a grid with ``model`` expands to ModelSpecs; the conv axes do not apply).
    "model": None,
    "width_mult": [1.0],
    "resolution": [None],  # None: the model's own default (224 for the MobileNets)
    "depth": [None],  # None: the model's own default (8 middle-flow blocks for Xception)
    "input_shape": [None],  # C,H,W: required by user models, fixed for the built-in ones
    "twin": ["separable"],
}
AXES = tuple(AXIS_DEFAULTS)
CONV_AXES = ("in_channels", "out_channels", "size", "dims", "kernel", "stride", "dilation",
             "depth_multiplier", "bias")  # fmt: skip
DIMS = (1, 2, 3)  # Conv1d, Conv2d, Conv3d
MODEL_AXES = ("model", "width_mult", "resolution", "depth", "input_shape", "twin")
ALL_BACKENDS = "all"  # in the backend axis: every backend available on this machine


def parse_dtype(text: str) -> str:
    name = _DTYPE_LOOKUP.get(str(text).strip().lower())
    if name is None:
        known = ", ".join(DTYPE_ALIASES)
        raise SpecError(f"unknown dtype {text!r} (known: {known})")
    return name


def parse_size(value: Any) -> int | tuple[int, ...]:
    """``56`` -> 56 (that size in every spatial dimension, as many as --dims says, 2 unless
    told); ``"56x48"`` -> (56, 48) (height, width); ``"8x56x56"`` -> (8, 56, 56) (frames,
    height, width: a Conv3d's input)."""
    example = "a size like 56, 56x48 (HxW) or 8x56x56 (DxHxW)"
    if isinstance(value, bool):
        raise SpecError(f"size {value!r} is not {example}")
    if isinstance(value, int):
        return value
    if isinstance(value, (list, tuple)):
        parts = list(value)
    else:
        parts = [p.strip() for p in str(value).strip().lower().split("x")]
    if not 1 <= len(parts) <= 3:
        raise SpecError(f"size {value!r} is not {example}")
    sizes = tuple(_int(p, "size") for p in parts)
    return sizes[0] if len(sizes) == 1 else sizes


def spatial_of(size: int | tuple[int, ...], dims: int | None, where: str) -> tuple[int, ...]:
    """A parsed size laid over ``dims`` spatial dimensions (None: the size's own, 2 for a
    single number); a size with another number of dimensions than ``dims`` is refused."""
    if isinstance(size, int):
        return (size,) * (2 if dims is None else dims)
    if dims is not None and len(size) != dims:
        shown = "x".join(map(str, size))
        raise SpecError(
            f"{where}: size {shown} has {len(size)} dimensions, not the {dims} of dims {dims} "
            "(one number, like 56, is used in every dimension)"
        )
    return size


def parse_memory_format(text: Any) -> str:
    name = _MEMORY_FORMAT_ALIASES.get(str(text).strip().lower())
    if name is None:
        raise SpecError(f"unknown memory format {text!r} (known: {', '.join(MEMORY_FORMATS)})")
    return name


def parse_fraction(flag: str, text: str, example: float = 0.05) -> float:
    """'5%' or '0.05' -> 0.05; anything else is a one-line error naming the flag, with an
    ``example`` of a good value for that flag."""
    raw = text.strip()
    good = f"{example:g}", f"{example:.0%}"
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise SpecError(f"{flag} {text!r}: not a number like {good[0]} or {good[1]}") from None
    if not math.isfinite(value):
        raise SpecError(f"{flag} {text!r}: not a finite number")
    if not raw.endswith("%") and value >= 1:
        raise SpecError(
            f"{flag} {text!r}: give a fraction ({good[0]}) or a percentage ({good[1]}), "
            "below 1 (100%)"
        )
    return value


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool):
        raise SpecError(f"{what} {value!r} is not an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"{what} {value!r} is not an integer") from None


def _bool(value: Any, what: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1", "on"):
        return True
    if text in ("false", "no", "0", "off"):
        return False
    raise SpecError(f"{what} {value!r} is not true or false")


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise SpecError(f"{what} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpecError(f"{what} {value!r} is not a number") from None
    if not math.isfinite(number):
        raise SpecError(f"{what} {value!r} is not a finite number")
    return number


def _optional_int(value: Any, what: str) -> int | None:
    """An integer, or None for "default" (threads: what torch uses; depth: the model's own)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "default"):
        return None
    return _int(value, what)


def parse_input_shape(value: Any, what: str = "input-shape") -> tuple[int, int, int] | None:
    """``"3,224,224"``, ``"3x224x224"`` or ``[3, 224, 224]`` -> (C, H, W)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [p for p in str(value).replace("x", ",").split(",")]
    if len(items) != 3:
        raise SpecError(f"{what} {value!r} is not C,H,W (like 3,224,224)")
    c, h, w = (_int(item, what) for item in items)
    return (c, h, w)


def _int_choice(value: Any, what: str, known: tuple[int, ...]) -> int | None:
    number = _optional_int(value, what)
    if number is not None and number not in known:
        raise SpecError(f"{what} {value!r}: not one of {', '.join(map(str, known))}")
    return number


def _choice(known: tuple[str, ...]) -> Any:
    def parse(value: Any, what: str) -> str:
        text = str(value).strip().lower()
        if text not in known:
            raise SpecError(f"{what} {value!r}: not one of {', '.join(known)}")
        return text

    return parse


_ITEM_PARSERS = {
    "batch": _int,
    "in_channels": _int,
    "out_channels": _int,
    "kernel": _int,
    "stride": _int,
    "dims": lambda v, what: _int_choice(v, what, DIMS),
    "dilation": _int,
    "depth_multiplier": _int,
    "threads": _optional_int,
    "size": lambda v, _what: parse_size(v),
    "dtype": lambda v, _what: parse_dtype(v),
    "mode": lambda v, _what: str(v).strip().lower(),
    "backend": lambda v, _what: str(v).strip().lower(),
    "memory_format": lambda v, _what: parse_memory_format(v),
    "cache": _choice(CACHES),
    "bias": _bool,
    "optimizer": _choice(OPTIMIZERS),
    "model": lambda v, _what: str(v).strip(),
    "width_mult": _float,
    "resolution": _optional_int,
    "depth": _optional_int,
    "input_shape": parse_input_shape,
    "twin": _choice(TWINS),
}


def parse_axis(axis: str, raw: Any, where: str) -> list[Any]:
    """Parse one axis from a flag (``"1,2,4"``) or a spec-file value (scalar or list).

    ``where`` names the source in error messages (``--batch`` or ``spec.toml [[grid]] 2``).
    An input shape is one C,H,W value (commas belong to it); a list of them separates shapes
    with ``;`` on a flag.
    """
    if axis == "input_shape" and isinstance(raw, str):
        raw = [item.strip() for item in raw.split(";")]
    elif axis == "input_shape" and isinstance(raw, list) and raw and isinstance(raw[0], int):
        raw = [raw]  # one shape written as a TOML list of three integers
    if isinstance(raw, str):
        items: list[Any] = [item.strip() for item in raw.split(",")]
        if any(item == "" for item in items):
            raise SpecError(f"{where}: {raw!r} is not a comma-separated list (empty item)")
    elif isinstance(raw, list):
        items = list(raw)
    else:
        items = [raw]
    if not items:
        raise SpecError(f"{where}: empty list")
    parse = _ITEM_PARSERS[axis]
    out = []
    for item in items:
        try:
            out.append(parse(item, axis.replace("_", "-")))
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
    return out
