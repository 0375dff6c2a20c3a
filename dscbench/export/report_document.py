"""The report as data: what report.build fills in and every format (report.py for markdown,
CSV and LaTeX, report_html.py for the page) renders."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from dscbench.analysis import BreakEven

COLUMNS = (
    "configuration",
    "backend",
    "params std/sep",
    "MACs std/sep",
    "standard",
    "separable",
    "speedup [95% CI]",
    "MAC red.",
    "eff.",
    "roofline std/sep",
    "peak mem std/sep",
    "status",
)


@dataclass
class RunInfo:
    name: str
    command: str
    started_at: str
    status: str
    environment: list[tuple[str, str]]


@dataclass
class Report:
    title: str
    runs: list[RunInfo]
    summary: list[str]
    wins: list[str]
    losses: list[str]
    break_even: list[BreakEven]
    header: tuple[str, ...] = COLUMNS
    notes: list[str] = field(default_factory=list)  # runs that mix hardware
    text_columns: int = 2  # leading columns of text (left-aligned)
    rows: list[list[str]] = field(default_factory=list)
    sort_keys: list[list[float | str]] = field(default_factory=list)  # HTML sorting
    figures: dict[str, str] = field(default_factory=dict)  # kind -> inline SVG (HTML only)
    numbers: pd.DataFrame | None = None  # the table in SI units (CSV)
    kernels: list[list[str]] = field(default_factory=list)  # table.kernel_rows
    # per run `dscbench accuracy` wrote: (run name, table lines with the header first, note)
    accuracy: list[tuple[str, list[list[str]], str]] = field(default_factory=list)

    def break_even_rows(self) -> list[list[str]]:
        """The break-even table's lines: backend, kernel, where separable wins."""
        return [[b.name, b.shape, b.describe()] for b in self.break_even]
