"""Efficiency columns: each row against the calibrated roofline (calibrate.py).

For an inference row, with P the calibrated peak FLOP/s of the row's dtype and B the
calibrated memory bandwidth of its device at its thread count:

- ``achieved_flops_per_s`` = step_flops / latency_median_s (conv and FC FLOPs per second);
- ``achieved_bytes_per_s`` = bytes / latency_median_s (the byte model of Columns);
- ``roofline_bound`` = ``memory`` where intensity x B < P, else ``compute``;
- ``roofline_fraction`` = achieved FLOP/s / min(P, intensity x B).

A memory-bound row whose tensors fit in a cache can exceed the DRAM roof (fraction above 1):
the STREAM-like bandwidth is DRAM's. A cold row (``--cache cold``, cold.py) reads its weights
and input from DRAM on every call (``cache_copy_bytes``; its output and a separable twin's
intermediate tensor may stay in cache), so a cold row that reads those bytes faster than B
gets the warning ``above_dram``: its copies did not all miss the caches (a last-level cache
larger than the one it was sized for). A row claiming more FLOP/s than P
itself is impossible, so it gets the warning ``above_roofline``: its count or its timing is
wrong. Training rows get
``achieved_flops_per_s`` only (the byte model covers the forward pass). Rows without a
calibration for their device, thread count and dtype leave the columns empty.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

# Slack before a row is said to beat the compute peak: the calibration's kernels are not the
# fastest code the machine can run (a 7x7 conv beat a 3x3 one by 6% here), and its best repeat
# and the row's median are both estimates. A counting or timing bug is off by far more.
ABOVE_ROOF_SLACK = 1.10


def roofs(calibrations: Iterable[Mapping[str, Any]]) -> dict[tuple[str, int], Mapping[str, Any]]:
    """(device, threads) -> a calibration's JSON (run.json's ``calibration`` entries)."""
    return {(c["device"], int(c["threads"])): c for c in calibrations}


def roof_of(roofs_: Mapping[tuple[str, int], Mapping[str, Any]], device: str, threads: int):
    return roofs_.get((device, 0 if device == "cuda" else int(threads)))


def add_efficiency(rows: pd.DataFrame, calibrations: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """``rows`` with EFFICIENCY_COLUMNS filled where a calibration applies, and the
    ``above_roofline`` warning appended where a row beats its compute peak."""
    rows = rows.copy()
    by_key = roofs(calibrations)
    flops_s = np.full(len(rows), math.nan)
    bytes_s = np.full(len(rows), math.nan)
    fraction = np.full(len(rows), math.nan)
    bound = np.full(len(rows), "", dtype=object)
    warnings = rows["warnings"].astype(str).tolist()
    for i, row in enumerate(rows.itertuples(index=False)):
        latency = row.latency_median_s
        if not (isinstance(latency, float) and latency > 0) or pd.isna(row.step_flops):
            continue
        roof = roof_of(by_key, row.device, row.threads)
        if roof is None:
            continue
        flops_s[i] = float(row.step_flops) / latency
        peak = roof["peak_flops_per_s"].get(row.dtype, math.nan)
        if math.isfinite(peak) and flops_s[i] > ABOVE_ROOF_SLACK * peak:
            note = (
                f"above_roofline: {flops_s[i]:.3g} FLOP/s measured, above the calibrated "
                f"{row.dtype} peak of {peak:.3g}: a count or a timing is wrong"
            )
            warnings[i] = f"{warnings[i]}; {note}" if warnings[i] else note
        if row.mode != "inference" or pd.isna(row.bytes):
            continue
        bandwidth = float(roof["peak_bytes_per_s"])
        bytes_s[i] = float(row.bytes) / latency
        cold_s = float(getattr(row, "cache_copy_bytes", math.nan)) / latency
        if cold_s > ABOVE_ROOF_SLACK * bandwidth:  # NaN (a warm row) never is
            note = (
                f"above_dram: a cold row read its weights and input at {cold_s:.3g} bytes/s, "
                f"above the calibrated DRAM bandwidth of {bandwidth:.3g}: its copies did not "
                "all miss the caches"
            )
            warnings[i] = f"{warnings[i]}; {note}" if warnings[i] else note
        if not math.isfinite(peak):
            continue
        intensity = float(row.flops) / float(row.bytes)
        attainable = min(peak, intensity * bandwidth)
        bound[i] = "memory" if intensity * bandwidth < peak else "compute"
        fraction[i] = float(row.flops) / latency / attainable
    rows["achieved_flops_per_s"] = flops_s
    rows["achieved_bytes_per_s"] = bytes_s
    rows["roofline_bound"] = bound
    rows["roofline_fraction"] = fraction
    rows["warnings"] = warnings
    return rows


def ridge_point(roof: Mapping[str, Any], dtype: str) -> float:
    """The intensity (FLOP/byte) where the memory roof meets the compute roof."""
    peak = roof["peak_flops_per_s"].get(dtype, math.nan)
    return peak / float(roof["peak_bytes_per_s"])
