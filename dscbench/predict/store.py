"""The predictor kept with the run it came from: ``predictor.json`` in the run directory, per
backend, thread count and dtype and per variant: the method chosen, every method's held-out
score, how many layers, the fingerprint of the machine and a digest of the rows (which
measurements it saw). The fit itself is refitted from the run on every ``predict``: it is
seeded, so the same rows give the same predictor, and a run whose rows changed (resumed,
merged) cannot be predicted from a stale one. Only numbers and names are stored: nothing in the
file is ever run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dscbench.errors import ResultsError

PREDICTOR_JSON = "predictor.json"
PREDICTOR_VERSION = 1


def group_key(backend: str, threads: int, dtype: str) -> str:
    return f"{backend}/t{threads}/{dtype}"


def read(directory: Path) -> dict[str, Any]:
    """predictor.json's groups ({} when there is none); a damaged or newer one is refused."""
    path = directory / PREDICTOR_JSON
    if not path.exists():
        return {}
    from dscbench.results.files import read_versioned_json

    doc = read_versioned_json(path, "a dscbench predictor", PREDICTOR_VERSION)
    groups = doc.get("groups")
    return groups if isinstance(groups, dict) else {}


def write(directory: Path, groups: dict[str, Any], fingerprint: dict[str, str]) -> str:
    """predictor.json rewritten with ``groups`` (atomically, under the run's lock); '' or why
    it could not be written (a read-only run is still predicted from)."""
    from dscbench import lock
    from dscbench.results.files import write_json

    try:
        with lock.hold(directory, what="the run"):
            write_json(
                directory / PREDICTOR_JSON,
                {"version": PREDICTOR_VERSION, "fingerprint": fingerprint, "groups": groups},
            )
    except (OSError, ResultsError) as exc:
        return f"not stored in {directory} ({exc})"
    return ""
