"""Renderings of a Comparison: a rich table, markdown, JSON, github-action-benchmark.

Every renderer orders rows the same way (``Verdict.rank``): regressions first, then
inconclusive, faster, same, added, removed and other failures, so the line that fails a CI job
is the first one read.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from rich.console import Group
from rich.table import Table
from rich.text import Text

from dscbench.compare import MIN_ROWS_FOR_SPREAD, Change, Comparison, FailOn, Verdict
from dscbench.defaults import POWER
from dscbench.export.units import format_count, format_seconds
from dscbench.jsonsafe import json_safe


def percent(fraction: float) -> str:
    """0.95 -> '95%', 0.999999 -> '99.9999%', 0.025 -> '2.5%': never rounded to 100%."""
    return f"{fraction * 100:.6g}%"


def ordered(comparison: Comparison) -> list[Change]:
    return sorted(comparison.changes, key=lambda c: c.shown.rank)


# Terminal and markdown tables list every row up to these sizes; beyond, they keep the rows
# that are not "same" first and say how many were left out (JSON lists everything).
MAX_TABLE_ROWS = 60
MAX_MARKDOWN_ROWS = 200


def shown_rows(comparison: Comparison, limit: int) -> tuple[list[Change], str]:
    """The rows a human-readable table lists, and a line about the ones it leaves out."""
    rows = ordered(comparison)
    if len(rows) <= limit:
        return rows, ""
    kept = [c for c in rows if c.verdict != Verdict.SAME or c.kernel_changed][:limit]
    left = len(rows) - len(kept)
    same = comparison.count(Verdict.SAME) - sum(c.verdict == Verdict.SAME for c in kept)
    return kept, (
        f"... {left} more rows not listed ({same} of them same); --format json lists every row"
    )


def _several_backends(comparison: Comparison) -> bool:
    return len({c.backend for c in comparison.changes}) > 1


def _value(comparison: Comparison, value: float) -> str:
    if not math.isfinite(value):
        return "-"
    if comparison.metric == "latency":
        return format_seconds(value)
    if comparison.metric == "instructions":
        return format_count(value)
    return f"{value:.2f}x"


def _ratio(change: Change) -> str:
    if not math.isfinite(change.ratio):
        return "-"
    if change.ci_low == change.ci_high:  # instruction counts: exact, no interval
        return f"{change.ratio:.4f}"
    return f"{change.ratio:.3f} [{change.ci_low:.3f}, {change.ci_high:.3f}]"


def _row_name(comparison: Comparison, change: Change, several: bool) -> str:
    text = change.label
    if comparison.metric != "speedup":
        text += f" {change.variant}"
    if several:
        text += f" [{change.backend}]"
    if change.env:
        text += f" {{{change.env}}}"
    return text


def _intervals(comparison: Comparison) -> str:
    """What the ratios' brackets are: intervals at a confidence, or none (exact counts)."""
    if comparison.metric == "instructions":
        return "exact counts (no intervals)"
    return f"{percent(comparison.confidence)} intervals"


def title(comparison: Comparison) -> str:
    text = (
        f"dscbench compare: {comparison.metric}, threshold {comparison.threshold:.0%}, "
        f"{_intervals(comparison)}"
    )
    if comparison.design == "interleaved":
        base, cand = comparison.envs
        text += f"; environment {cand} against {base}, measured interleaved"
    return text


def summary(comparison: Comparison) -> str:
    counts = ", ".join(
        f"{comparison.count(v)} {v.value}" for v in Verdict.in_summaries() if comparison.count(v)
    )
    gm = comparison.geometric_mean_ratio()
    what = {"latency": "latency", "instructions": "instructions"}.get(
        comparison.metric, "separable speedup"
    )
    text = f"{len(comparison.changes)} rows: {counts}."
    if math.isfinite(gm):
        text += f" Geometric-mean {what} ratio candidate/baseline: {gm:.3f}."
    newly = sum(c.shown == Verdict.NEWLY_FAILING for c in comparison.changes)
    if newly:
        text += f" {newly} row(s) fail in the candidate only (counted as regressions)."
    kernels = len(comparison.kernel_changes)
    if kernels:
        text += f" {kernels} row(s) ran a different kernel (see their notes)."
    for shift in comparison.run_regressions:
        text += (
            f" {shift.backend}: every row slower together, net of the machine canary "
            f"(x{shift.beyond_low:.3f} to x{shift.beyond_high:.3f}; counted as a regression)."
        )
    return text


def decision(comparison: Comparison, fail_on: FailOn) -> str:
    code = comparison.code(fail_on)
    if code == 1 and not (comparison.regressions or comparison.run_regressions):
        return (
            f"KERNEL CHANGE: {len(comparison.kernel_changes)} row(s) ran another kernel "
            "(exit 1, --fail-on-kernel-change)."
        )
    if code == 1:
        whole = len(comparison.run_regressions)
        return (
            f"REGRESSION: {len(comparison.regressions)} row(s) got worse"
            + (f", and every row of {whole} backend(s) together" if whole else "")
            + " (exit 1)."
        )
    if code == 3:
        return f"INCONCLUSIVE: {comparison.count(Verdict.INCONCLUSIVE)} row(s) (exit 3)."
    return "No regression (exit 0)."


def _canary_text(comparison: Comparison) -> str:
    c = comparison.canary
    if c is None or not c.available:
        return ""
    return f"x{c.ratio:.3f} [{c.ci_low:.3f}, {c.ci_high:.3f}]"


SHIFT_READINGS = {
    "machine": (
        ": the machine canary moved {canary} too, so the machine changed speed; rows that only "
        "moved with it are inconclusive. `--metric speedup` cancels machine speed"
    ),
    "machine-blind": (
        ": a shift this large is what a change of machine speed looks like, and without a "
        "canary on both sides a regression of every row looks the same; rows that only moved "
        "with it are inconclusive. `--metric speedup` cancels machine speed"
    ),
    "rows": (
        ": the machine canary moved only {canary}, so every row itself changed (a regression "
        "or improvement of the whole stack); each row is judged net of the canary"
    ),
    "undetermined": (
        ": the machine canary moved {canary}, so it cannot tell a machine that changed speed "
        "from code that did (rows and canary drift apart by {drift} (sd) on this machine "
        "alone, from these runs' rounds); rows that only moved with the shift are "
        "inconclusive (exit 3 with --fail-on-inconclusive). Measure both sides in one "
        "interleaved run (`dscbench gate`) to tell"
    ),
    "real": (
        ": the environments were measured interleaved, so this is the candidate environment, "
        "not the machine; each row is judged on its own"
    ),
}


def shift_lines(comparison: Comparison) -> list[str]:
    lines = []
    canary = _canary_text(comparison)
    for s in comparison.shifts:
        interval = (
            f"[{s.ci_low:.3f}, {s.ci_high:.3f}]"
            if s.rows >= MIN_ROWS_FOR_SPREAD
            else f"[interval n/a: {s.rows} rows are too few to estimate one]"
        )
        text = (
            f"{s.backend}: all {s.rows} rows together moved x{s.ratio:.3f} {interval} "
            "(median ratio over rows)"
        )
        if s.detected:
            reading = "machine-blind" if s.cause == "machine" and not canary else s.cause
            text += SHIFT_READINGS[reading].format(canary=canary, drift=f"{s.drift:.1%}")
            if s.verdict:
                text += (
                    f"; together, net of the canary, the run is {s.verdict} by more than the "
                    f"threshold: x{s.beyond_low:.3f} to x{s.beyond_high:.3f}"
                    + (" (a regression of every row: exit 1)" if s.verdict == "slower" else "")
                )
            if s.cause == "rows" and not _decided_rows(comparison, s.backend):
                text += (
                    f"; how much each row changed is uncertain by how far rows and canary "
                    f"drift apart ({s.drift:.1%} sd, from these runs' rounds), so no row is "
                    "decided on its own"
                    + ("" if s.verdict else ": inconclusive (exit 3 with --fail-on-inconclusive)")
                    + ". Measure both sides in one interleaved run (`dscbench gate`) to tell"
                )
        lines.append(text + ".")
    if canary:
        lines.append(f"Machine canary (a fixed workload timed every round): moved {canary}.")
    return lines


def _decided_rows(comparison: Comparison, backend: str) -> bool:
    """Whether any row of ``backend`` came out slower or faster."""
    return any(
        c.backend == backend and c.verdict in (Verdict.SLOWER, Verdict.FASTER)
        for c in comparison.changes
    )


def resolution_lines(comparison: Comparison, named: int = 3) -> list[str]:
    """What changes the comparison can see: how many rows resolve the threshold (their minimum
    detectable change at the comparison's confidence and POWER is within it), the median row's,
    and the coarsest rows with why (few units, or a wide spread between them)."""
    rows = [c for c in comparison.changes if c.verdict.comparable and math.isfinite(c.detectable)]
    if not rows:
        return []
    fine = sum(c.detectable <= comparison.threshold for c in rows)
    median = float(np.median([c.detectable for c in rows]))
    line = (
        f"Resolution: this comparison can tell changes of {percent(comparison.threshold)} or "
        f"more apart in {fine} of {len(rows)} rows (minimum detectable change at "
        f"{percent(comparison.confidence)} confidence and {percent(POWER)} power; median row "
        f"{median:.1%})."
    )
    coarse = sorted((c for c in rows if c.detectable > comparison.threshold),
                    key=lambda c: -c.detectable)  # fmt: skip
    if not coarse:
        return [line]
    several = _several_backends(comparison)
    shown = "; ".join(
        f"{_row_name(comparison, c, several)} {c.detectable:.1%} ({c.units} {c.unit}s, "
        f"interval ±{c.ci_high / c.ratio - 1:.1%})"
        for c in coarse[:named]
    )
    more = f" and {len(coarse) - named} more" if len(coarse) > named else ""
    return [
        line,
        f"Coarser than the threshold: {shown}{more}; more processes narrow them (run "
        "--decide adds them where needed).",
    ]


def notes(comparison: Comparison) -> list[str]:
    lines = list(comparison.notes)
    if comparison.hardware_differs:
        lines.append("the runs were measured on different hardware (--allow-different-hardware)")
    return lines


def rich_table(comparison: Comparison, fail_on: FailOn = FailOn()) -> Group:
    table = Table(title=title(comparison), header_style="bold")
    for column, justify in (
        ("verdict", "left"),
        ("configuration", "left"),
        ("baseline", "right"),
        ("candidate", "right"),
        ("ratio [CI]", "right"),
        ("note", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    rows, left_out = shown_rows(comparison, MAX_TABLE_ROWS)
    several = _several_backends(comparison)
    for change in rows:
        verdict = change.shown
        table.add_row(
            Text(verdict.value, style=verdict.style),
            _row_name(comparison, change, several),
            _value(comparison, change.baseline),
            _value(comparison, change.candidate),
            Text(_ratio(change), style=verdict.style),
            change.note,
        )
    parts: list[Any] = [table]
    if left_out:
        parts.append(Text(left_out))
    parts.append(Text(summary(comparison)))
    parts += [Text(line) for line in resolution_lines(comparison)]
    parts += [
        Text(line, style="yellow" if "inconclusive" in line else "")
        for line in shift_lines(comparison)
    ]
    parts += [Text(f"note: {line}", style="yellow") for line in notes(comparison)]
    if comparison.environment:
        parts.append(Text(f"{_differences_title(comparison)} (baseline -> candidate):"))
        parts += [Text(f"  {what}: {b} -> {c}") for what, b, c in comparison.environment]
    code = comparison.code(fail_on)
    parts.append(Text(decision(comparison, fail_on), style="bold red" if code else "bold green"))
    return Group(*parts)


def _differences_title(comparison: Comparison) -> str:
    if comparison.design == "interleaved":
        return "Differences between the environments"
    return "Environment differences"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(comparison: Comparison, fail_on: FailOn = FailOn()) -> str:
    """GitHub-flavoured markdown for $GITHUB_STEP_SUMMARY or a PR comment."""
    heading = f"## dscbench compare: {comparison.metric}"
    if comparison.design == "interleaved":
        heading += f", {comparison.envs[1]} against {comparison.envs[0]} (interleaved)"
    lines = [
        heading,
        "",
        f"**{decision(comparison, fail_on)}** {summary(comparison)} "
        f"Threshold {percent(comparison.threshold)}, {_intervals(comparison)}.",
        "",
        "| verdict | configuration | baseline | candidate | ratio [CI] | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    rows, left_out = shown_rows(comparison, MAX_MARKDOWN_ROWS)
    several = _several_backends(comparison)
    for change in rows:
        verdict = change.shown
        shown = f"**{verdict.value}**" if verdict.regression else verdict.value
        lines.append(
            f"| {shown} | {_md_escape(_row_name(comparison, change, several))} | "
            f"{_value(comparison, change.baseline)} | {_value(comparison, change.candidate)} | "
            f"{_ratio(change)} | {_md_escape(change.note)} |"
        )
    if left_out:
        lines += ["", left_out]
    extra = (
        resolution_lines(comparison)
        + shift_lines(comparison)
        + [f"Note: {n}" for n in notes(comparison)]
    )
    if extra:
        lines += ["", *[f"- {_md_escape(line)}" for line in extra]]
    if comparison.environment:
        lines += [
            "",
            f"<details><summary>{_differences_title(comparison)}</summary>",
            "",
            "| what | baseline | candidate |",
            "|---|---|---|",
            *[f"| {w} | {_md_escape(b)} | {_md_escape(c)} |" for w, b, c in comparison.environment],
            "",
            "</details>",
        ]
    return "\n".join(lines) + "\n"


def as_json(comparison: Comparison, fail_on: FailOn = FailOn()) -> str:
    canary = comparison.canary
    doc = {
        "design": comparison.design,
        "environments": list(comparison.envs) if comparison.design == "interleaved" else None,
        "metric": comparison.metric,
        "threshold": comparison.threshold,
        "confidence": comparison.confidence,
        "exit_code": comparison.code(fail_on),
        "summary": {
            **{v.value: comparison.count(v) for v in Verdict.in_summaries()},
            "regressions": len(comparison.regressions),
            "kernel_changes": len(comparison.kernel_changes),
            "run_regressions": [s.backend for s in comparison.run_regressions],
            "geometric_mean_ratio": json_safe(comparison.geometric_mean_ratio()),
            "power": POWER,
            "resolved_rows": sum(
                c.verdict.comparable and c.detectable <= comparison.threshold
                for c in comparison.changes
            ),
        },
        "shifts": [
            {
                "backend": s.backend,
                "ratio": s.ratio,
                "ci_low": s.ci_low if s.rows >= MIN_ROWS_FOR_SPREAD else None,
                "ci_high": s.ci_high if s.rows >= MIN_ROWS_FOR_SPREAD else None,
                "rows": s.rows,
                "detected": s.detected,
                "cause": s.cause,
                "drift": json_safe(s.drift),
                "verdict": s.verdict,
                "beyond_low": json_safe(s.beyond_low),
                "beyond_high": json_safe(s.beyond_high),
            }
            for s in comparison.shifts
        ],
        "canary": None
        if canary is None
        else {
            "available": canary.available,
            "reason": canary.reason,
            "ratio": json_safe(canary.ratio),
            "ci_low": json_safe(canary.ci_low),
            "ci_high": json_safe(canary.ci_high),
        },
        "environment_differences": [
            {"what": w, "baseline": b, "candidate": c} for w, b, c in comparison.environment
        ],
        "notes": notes(comparison),
        "round_spread": {k: json_safe(v) for k, v in comparison.round_spread.items()},
        "changes": [
            {
                "config_id": c.config_id,
                "backend": c.backend,
                "env": c.env,
                "variant": c.variant,
                "label": c.label,
                "verdict": c.shown.value,
                "baseline": json_safe(c.baseline),
                "candidate": json_safe(c.candidate),
                "ratio": json_safe(c.ratio),
                "ci_low": json_safe(c.ci_low),
                "ci_high": json_safe(c.ci_high),
                "rounds_baseline": c.rounds[0],
                "rounds_candidate": c.rounds[1],
                "units": c.units,
                "detectable": json_safe(c.detectable),
                "kernels_baseline": c.kernels_before,
                "kernels_candidate": c.kernels_after,
                "kernel_changed": c.kernel_changed,
                "note": c.note,
            }
            for c in ordered(comparison)
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def github_benchmark(comparison: Comparison, fail_on: FailOn = FailOn()) -> str:
    """github-action-benchmark's ``customSmallerIsBetter`` input: one entry per row measured in
    the candidate. Latency in microseconds; for ``--metric speedup`` the separable/standard time
    ratio (1 / speedup), so that smaller is better there too."""
    entries = []
    for c in ordered(comparison):
        if not math.isfinite(c.candidate):
            continue
        if comparison.metric == "latency":
            name, unit, value = f"{c.label} {c.variant} [{c.backend}]", "us", c.candidate * 1e6
        elif comparison.metric == "instructions":
            name, unit, value = f"{c.label} {c.variant} [{c.backend}]", "instr", c.candidate
        else:
            name, unit, value = f"{c.label} sep/std time [{c.backend}]", "ratio", 1 / c.candidate
        if c.env:
            name += f" {{{c.env}}}"
        extra = f"verdict: {c.shown.value}"
        if math.isfinite(c.ratio):
            extra += f"; candidate/baseline {_ratio(c)}"
        if c.note:
            extra += f"; {c.note}"
        entry: dict[str, Any] = {"name": name, "unit": unit, "value": round(value, 6)}
        if math.isfinite(c.spread):
            entry["range"] = f"± {c.spread:.1%}"
        entry["extra"] = extra
        entries.append(entry)
    return json.dumps(entries, indent=2, ensure_ascii=False) + "\n"


FORMATS = {"markdown": markdown, "json": as_json, "github-benchmark": github_benchmark}
