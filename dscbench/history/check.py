"""`dscbench history check`: every series' change points (changes.py), what each series is,
and the verdict a CI job needs: exit 1 when the newest commit starts a slowdown beyond the
threshold.

Latency series are checked with each run's common shift taken out (changes.py); instruction
counts do not move with the machine, so they are checked as they are, with a noise floor of
``COUNT_NOISE`` (counts repeat within 0.003%, benchmarks/REPORT-kernels.md).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from dscbench.history import changes

COUNT_NOISE = 1e-4  # log units: 0.01%
DESCRIBED = ("config_id", "variant", "backend", "env", "metric")


@dataclass
class Report:
    """The changes found, each with its series described; the newest commit and its runs."""

    changes: list[dict[str, Any]]
    newest_commit: str
    runs: int
    series: int
    threshold: float

    @property
    def regressions(self) -> list[dict[str, Any]]:
        """Slowdowns beyond the threshold that the newest commit starts."""
        return [c for c in self.changes if c["after_commit"] == self.newest_commit
                and changes.regression(c["ratio"], c["low"], self.threshold)]  # fmt: skip

    def exit_code(self) -> int:
        return 1 if self.regressions else 0


def check(points: pd.DataFrame, threshold: float) -> Report:
    """The Report of ``points`` (queries.points)."""
    if points.empty:
        return Report([], "", 0, 0, threshold)
    described = points.drop_duplicates("series").set_index("series")[list(DESCRIBED)]
    found: list[changes.Change] = []
    for metric, part in points.groupby("metric", sort=True):
        counted = metric == "instructions"
        found += changes.find_changes(
            part, sigma_floor=COUNT_NOISE if counted else 0.0, whole_runs=not counted
        )
    rows = []
    for c in sorted(found, key=lambda c: (c.after_started, c.series), reverse=True):
        what = (
            described.loc[c.series].to_dict()
            if c.series in described.index
            else dict.fromkeys(DESCRIBED, "") | {"config_id": changes.WHOLE_RUN}
        )
        rows.append({"series": c.series, **what, **_change_fields(c)})
    newest = points.iloc[-1]["commit"]  # queries.points orders by start time, then run
    return Report(rows, str(newest), points["run_id"].nunique(), len(described), threshold)


def _change_fields(c: changes.Change) -> dict[str, Any]:
    fields = asdict(c)
    fields.pop("series")
    fields["after_started"] = c.after_started.isoformat()
    fields["direction"] = c.direction
    return fields


def _ratio(c: dict[str, Any]) -> str:
    return f"x{c['ratio']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"


def _what(c: dict[str, Any]) -> str:
    env = f" {{{c['env']}}}" if c.get("env") else ""
    variant = f" {c['variant']}" if c.get("variant") else ""
    backend = f" {c['backend']}" if c.get("backend") else ""
    return f"{c['config_id']}{variant}{backend}{env}"


def summary_line(report: Report) -> str:
    regressions = report.regressions
    head = (f"{len(report.changes)} change(s) in {report.series} series over {report.runs} "
            f"run(s); newest commit {report.newest_commit[:12] or '-'}")  # fmt: skip
    if regressions:
        return (f"{head}: REGRESSION: it starts {len(regressions)} slowdown(s) beyond "
                f"{report.threshold:.0%}")  # fmt: skip
    return f"{head}: no slowdown beyond {report.threshold:.0%} starts there"


def markdown(report: Report) -> str:
    lines = [f"**{summary_line(report)}**", ""]
    if report.changes:
        lines += ["| series | change | size (95% interval) | between | runs before / after |",
                  "|---|---|---:|---|---:|"]  # fmt: skip
        for c in report.changes:
            newest = " (newest runs)" if c["newest"] else ""
            lines.append(
                f"| {_what(c)} | {c['direction']}{newest} | {_ratio(c)} | "
                f"{c['before_commit'][:12]}..{c['after_commit'][:12]} | "
                f"{c['n_before']} / {c['n_after']} |"
            )
    return "\n".join(lines) + "\n"


def to_json(report: Report) -> str:
    def clean(x: Any) -> Any:
        return None if isinstance(x, float) and not math.isfinite(x) else x

    doc = {
        "newest_commit": report.newest_commit,
        "runs": report.runs,
        "series": report.series,
        "threshold": report.threshold,
        "exit_code": report.exit_code(),
        "regressions": len(report.regressions),
        "changes": [{k: clean(v) for k, v in c.items()} for c in report.changes],
    }
    return json.dumps(doc, indent=2)


def table(report: Report) -> Any:
    from rich.table import Table

    out = Table(title=summary_line(report), title_justify="left")
    for column in ("series", "change", "size [95% interval]", "commits", "from", "runs"):
        out.add_column(column)
    for c in report.changes:
        style = "red" if c["direction"] == "slower" else "green"
        change = f"[{style}]{c['direction']}[/]" + (" (newest)" if c["newest"] else "")
        commits = f"{c['before_commit'][:12]}..{c['after_commit'][:12]}"
        runs = f"{c['n_before']}/{c['n_after']}"
        out.add_row(_what(c), change, _ratio(c), commits, c["after_started"][:16], runs)
    return out
