"""`dscbench compare`: read two runs, decide per row, render, return the exit code.

Imports no torch: comparing runs must be quick on a CI runner that never measured anything.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from dscbench import compare, results
from dscbench.export import compare as render
from dscbench.export import write_output

FORMATS = ("table", *render.FORMATS)


def parse_fraction(flag: str, text: str) -> float:
    """'5%' or '0.05' -> 0.05; anything else is a one-line error naming the flag."""
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise compare.CompareError(f"{flag} {text!r}: not a number like 0.05 or 5%") from None
    if not raw.endswith("%") and value >= 1:
        raise compare.CompareError(f"{flag} {text!r}: give a fraction (0.05) or a percentage (5%)")
    return value


def execute(
    baseline: Path,
    candidate: Path,
    *,
    metric: str,
    threshold: str,
    confidence: str,
    fmt: str,
    output: str,
    fail_on_inconclusive: bool,
    allow_different_hardware: bool,
    console: Console,
) -> int:
    if fmt not in FORMATS:
        raise compare.CompareError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")
    base = results.load_results(baseline)
    cand = results.load_results(candidate)
    comparison = compare.compare_sets(
        base,
        cand,
        metric=metric,
        threshold=parse_fraction("--threshold", threshold),
        confidence=parse_fraction("--confidence", confidence),
        allow_different_hardware=allow_different_hardware,
    )
    if fmt == "table":
        if output == "-":
            console.print(render.rich_table(comparison, fail_on_inconclusive))
        else:
            write_output(output, table_text(comparison, fail_on_inconclusive))
    else:
        write_output(output, render.FORMATS[fmt](comparison, fail_on_inconclusive))
        if output != "-":  # the file has the format; the log gets the table
            console.print(render.rich_table(comparison, fail_on_inconclusive))
    return comparison.exit_code(fail_on_inconclusive)


def table_text(comparison: compare.Comparison, fail_on_inconclusive: bool) -> str:
    """The terminal table as plain text, 160 columns wide (for --output FILE)."""
    buffer = Console(width=160, file=io.StringIO(), record=True)
    buffer.print(render.rich_table(comparison, fail_on_inconclusive))
    return buffer.export_text()
