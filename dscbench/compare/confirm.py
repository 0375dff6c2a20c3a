"""What an interleaved run recorded about re-measuring its slowdowns in fresh processes
(run.json's ``confirmation``, written by ``--decide``: extra_rounds.py), applied to the rows
compare judged ``slower``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from dscbench.compare.match import join
from dscbench.compare.model import Change, Verdict


def apply_confirmation(
    changes: list[Change], records: Iterable[Mapping[str, Any]] | None, candidate_env: str
) -> list[Change]:
    """A ``slower`` row the run re-measured: confirmed, it stays slower and says so; not
    confirmed, it becomes ``inconclusive`` (slower in this run, not in fresh processes). Rows
    without a record, or not slower here, are left as they are."""
    found = {
        (r["config_id"], r["backend"], r["variant"]): r
        for r in records or ()
        if r["env"] == candidate_env
    }
    out = []
    for c in changes:
        r = found.get((c.config_id, c.backend, c.variant))
        if r is None or c.verdict != Verdict.SLOWER:
            out.append(c)
            continue
        first, last = r.get("rounds") or (0, 0)
        ratio, low = r.get("ratio"), r.get("ci_low")
        level = (1 + r.get("confidence", 0.9)) / 2  # ci_low is a one-sided bound at this level
        shown = (
            f"x{ratio:.3f}, one-sided {level:.0%} lower bound {low:.3f}"
            if ratio is not None and low is not None
            else "no interval"
        )
        where = f"in {last - first} round(s) of fresh processes: {shown}"
        if r["confirmed"]:
            out.append(replace(c, note=join(f"confirmed {where}", c.note)))
        else:
            note = f"slower in this run but not confirmed {where}"
            out.append(replace(c, verdict=Verdict.INCONCLUSIVE, note=join(note, c.note)))
    return out
