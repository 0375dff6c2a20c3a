"""Result tables of a runner state, as a run would write them (results.build_tables from the
runner's records, with the run.json facts it reads)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from dscbench import results


def tables_of(
    state: Any,
    devices: Mapping[str, tuple[str, str]],
    overheads: Mapping[str, float] | None = None,
    calibrations: Iterable[Mapping[str, Any]] = (),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    meta = {
        "backends": {n: {"device": d, "device_name": name} for n, (d, name) in devices.items()},
        "timings": {"timer_overhead_s": dict(overheads or {})},
        "calibration": list(calibrations),
        "settings": {"seed": state.settings.seed},
    }
    return results.build_tables(state.records(), state.samples_frame(), meta)
