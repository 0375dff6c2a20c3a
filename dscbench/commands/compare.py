"""`dscbench compare`: read the runs, decide per row, render, return the exit code.

Imports no torch: comparing runs must be quick on a CI runner that never measured anything.
"""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from dscbench import compare, results
from dscbench.defaults import CONFIDENCE
from dscbench.export import write_output
from dscbench.export.comparison import FORMATS as RENDERERS
from dscbench.export.comparison import rich_table
from dscbench.spec import parse_fraction

FORMATS = ("table", *RENDERERS)


def execute(
    baseline: Path,
    candidate: Path | None,
    *,
    baseline_env: str | None = None,
    candidate_env: str | None = None,
    metric: str,
    threshold: str,
    confidence: str,
    fmt: str,
    output: str,
    fail_on_inconclusive: bool,
    allow_different_hardware: bool,
    console: Console,
) -> int:
    """Two runs (sequential design), or one run's two environments (interleaved design)."""
    if fmt not in FORMATS:
        raise compare.CompareError(f"--format {fmt!r}: not one of {', '.join(FORMATS)}")
    settings = dict(
        metric=metric,
        threshold=parse_fraction("--threshold", threshold),
        confidence=parse_fraction("--confidence", confidence, example=CONFIDENCE),
        baseline_env=baseline_env,
        candidate_env=candidate_env,
    )
    base = results.load_results(baseline)
    if candidate is None:
        comparison = compare.compare_envs(base, **settings)
        a, b = comparison.envs
        sides = (base.results[base.results.env == a], base.results[base.results.env == b])
        names = (f"environment {a}", f"environment {b}")
    else:
        cand = results.load_results(candidate)
        for path, rs in ((baseline, base), (candidate, cand)):
            if rs.meta.get("mixed_hardware") and not allow_different_hardware:
                raise compare.CompareError(
                    f"{path} merges shards measured on different hardware; compare it with "
                    "--allow-different-hardware"
                )
        comparison = compare.compare_sets(
            base, cand, allow_different_hardware=allow_different_hardware, **settings
        )
        sides, names = (base.results, cand.results), ("baseline", "candidate")
    if not comparison.comparable and not comparison.regressions:
        # Nothing measured on both sides is not a pass (a gate that cannot judge must say so).
        raise compare.CompareError(compare.why_nothing_comparable(*sides, names))
    inputs = [baseline] if candidate is None else [baseline, candidate]
    show(comparison, fmt, output, fail_on_inconclusive, console, inputs)
    return comparison.exit_code(fail_on_inconclusive)


def show(
    comparison: compare.Comparison,
    fmt: str,
    output: str,
    fail_on_inconclusive: bool,
    console: Console,
    inputs: list[Path] | None = None,
) -> None:
    """The chosen format to ``output`` (- is stdout); a file gets the format and the log the
    terminal table. ``output`` may not overwrite the ``inputs``."""
    if fmt == "table":
        if output == "-":
            console.print(rich_table(comparison, fail_on_inconclusive))
        else:
            write_output(output, table_text(comparison, fail_on_inconclusive), inputs or ())
        return
    write_output(output, RENDERERS[fmt](comparison, fail_on_inconclusive), inputs or ())
    if output != "-":
        console.print(rich_table(comparison, fail_on_inconclusive))


def table_text(comparison: compare.Comparison, fail_on_inconclusive: bool) -> str:
    """The terminal table as plain text, 160 columns wide (for --output FILE)."""
    buffer = Console(width=160, file=io.StringIO(), record=True)
    buffer.print(rich_table(comparison, fail_on_inconclusive))
    return buffer.export_text()
