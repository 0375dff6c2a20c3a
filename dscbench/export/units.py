"""Human units, chosen only when rendering: results store seconds, counts and bytes."""

from __future__ import annotations

import math

_TIME_UNITS = ((1.0, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns"))
_COUNT_UNITS = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K"))


def _missing(value: object) -> bool:
    """None, NaN, infinities and pandas' NA (a nullable column's empty cell)."""
    try:
        return value is None or not math.isfinite(value)  # type: ignore[arg-type]
    except TypeError:
        return True


def format_bytes(n: float) -> str:
    """25_645_944 -> '24.5 MiB'; missing -> '-'."""
    if _missing(n):
        return "-"
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if abs(n) >= scale:
            return f"{_three_significant(n / scale)} {unit}"
    return f"{int(n)} B"


def _three_significant(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def format_seconds(seconds: float) -> str:
    """1.234e-3 -> '1.23 ms'; NaN -> '-'."""
    if _missing(seconds):
        return "-"
    for scale, unit in _TIME_UNITS:
        if abs(seconds) >= scale:
            return f"{_three_significant(seconds / scale)} {unit}"
    return f"{_three_significant(seconds / 1e-9)} ns"


def format_count(n: float) -> str:
    """1_234_567 -> '1.23M'; small numbers stay exact."""
    if _missing(n):
        return "-"
    for scale, unit in _COUNT_UNITS:
        if abs(n) >= scale:
            return f"{_three_significant(n / scale)}{unit}"
    return f"{int(n)}"


def format_rate(value: float, unit: str) -> str:
    """2.07e11, "FLOP/s" -> '207 GFLOP/s'; 4.2e10, "B/s" -> '42.0 GB/s' (decimal prefixes)."""
    if _missing(value):
        return "-"
    text = format_count(value)
    number, prefix = (text[:-1], text[-1]) if text[-1].isalpha() else (text, "")
    return f"{number} {prefix}{unit}"


def format_ratio(x: float) -> str:
    if _missing(x):
        return "-"
    return f"{x:.2f}x"


def format_latency(median: float, iqr: float) -> str:
    """'1.23 ms ±4%': the median (seconds) and the IQR as a share of it; '-' when there is no
    median."""
    if median is None or not math.isfinite(median) or median <= 0:
        return "-"
    return f"{format_seconds(median)} ±{iqr / median:.0%}"


def format_speedup(speedup: float, low: float, high: float) -> str:
    """'1.72x [1.65, 1.80]' (the interval), '1.72x [no interval]' (one round), or '-'."""
    if speedup is None or not math.isfinite(speedup):
        return "-"
    if low is None or not math.isfinite(low):
        return f"{speedup:.2f}x [no interval]"
    return f"{speedup:.2f}x [{low:.2f}, {high:.2f}]"
