"""`dscbench report`: one or several runs as a document (markdown, HTML, CSV or LaTeX).

Every format holds the same content, built once by ``build``: the summary (geometric-mean
speedup against MAC reduction per backend), where separable wins and where it loses, the
break-even channel counts, the full table (one line per configuration, backend and
environment) and each run's environment. CSV holds the full table only, as numbers in SI units
(seconds, counts, bytes; one header, one line per configuration), for spreadsheets. The HTML
report is one self-contained file: inline CSS, the plots as inline SVG, and a table that sorts
when a header is clicked.

The Report itself is report_document.py; the HTML page is report_html.py.

Output depends only on the result files (no clock, no absolute paths), so it is reproducible
and the tests compare it with golden files.
"""

from __future__ import annotations

import io
import math
from typing import Any

import pandas as pd

from dscbench.analysis import (
    BackendSummary,
    backend_summaries,
    break_even,
    combine,
    machines,
    mixed_hardware_note,
    mixes_hardware,
    pairs,
    series_columns,
    series_of,
    wins_and_losses,
)
from dscbench.export.report_document import COLUMNS, Report, RunInfo
from dscbench.export.report_html import to_html
from dscbench.export.table import KERNEL_HEADER, kernel_rows
from dscbench.export.units import (
    format_bytes,
    format_count,
    format_latency,
    format_ratio,
    format_speedup,
)
from dscbench.labels import constant_axes, describe_constant, row_label

FORMATS = ("markdown", "html", "csv", "latex")
TOP = 5  # wins and losses listed


def _roofline(fraction: Any, bound: Any) -> str:
    if pd.isna(fraction) or not bound:
        return "-"
    return f"{fraction:.0%} {bound[:3]}"


def _number(value: Any) -> float:
    try:
        return float(value) if not pd.isna(value) else math.nan
    except (TypeError, ValueError):
        return math.nan


def _environment(meta: dict[str, Any]) -> list[tuple[str, str]]:
    env = meta.get("environment") or {}
    torch_info = env.get("torch") or {}
    items = [
        ("dscbench", str(env.get("dscbench", ""))),
        ("python", str(env.get("python", ""))),
        ("platform", str(env.get("platform", ""))),
        ("cpu", str(env.get("cpu_model", ""))),
        ("cores", str(env.get("cpu_count", ""))),
        ("torch", str(torch_info.get("version", ""))),
        ("git", str(env.get("git_sha") or "")),
    ]
    for name, info in (meta.get("backends") or {}).items():
        versions = ", ".join(f"{k} {v}" for k, v in (info.get("versions") or {}).items())
        items.append((f"backend {name}", f"{info.get('device_name', '')}; {versions}"))
    for c in meta.get("calibration") or []:
        peaks = ", ".join(
            f"{d} {v / 1e9:.0f} GFLOP/s" for d, v in (c.get("peak_flops_per_s") or {}).items()
        )
        where = f"{c['threads']} thread(s)" if c.get("device") == "cpu" else "GPU"
        items.append(
            (
                f"calibration {c.get('device')}, {where}",
                f"{peaks}; memory {c.get('peak_bytes_per_s', math.nan) / 1e9:.1f} GB/s",
            )
        )
    if mixes_hardware(meta):  # the CPU above is the first shard's: name every machine
        items = [(k, v) for k, v in items if k not in ("cpu", "cores")]
        items += [(f"machine {m.label}", m.details()) for m in machines(meta)]
    settings = meta.get("settings") or {}
    items.append(
        (
            "settings",
            f"min_time {settings.get('min_time')} s, rounds {settings.get('rounds')}, "
            f"round spread {_percent(meta.get('round_spread'))}",
        )
    )
    return [(k, v) for k, v in items if v]


def _percent(value: Any) -> str:
    number = _number(value)
    return "-" if math.isnan(number) else f"{number:.1%}"


def build(results_sets: list[Any], names: list[str]) -> Report:
    """The report of ``results_sets`` (results.ResultSet, one per run) named ``names`` (unique:
    analysis.run_labels). Several runs: every row says its run and every summary is per run;
    a run that mixes hardware: every row says its machine and every summary is per machine."""
    table = combine(results_sets, names)
    joined = pairs(table)
    series = series_columns(joined)
    records = joined.to_dict("records")
    constant = constant_axes(records)
    omit = {**constant, "backend": 1, "env": 1}  # said once in the title, not on every row
    labels = [row_label(r, omit) for r in records]
    described = describe_constant(constant)
    wins, losses = wins_and_losses(table)
    report = Report(
        title="dscbench report: standard vs depthwise-separable convolution"
        + (f" ({described})" if described else ""),
        runs=[_run_info(r, name) for r, name in zip(results_sets, names, strict=True)],
        summary=[_summary_line(s) for s in backend_summaries(table)],
        wins=_highlights(wins, omit),
        losses=_highlights(losses, omit),
        break_even=break_even(table),
        header=_header(series),
        notes=_mixed_hardware_notes(results_sets, names),
        text_columns=2 + len(series),
        numbers=_numbers(joined, labels),
        kernels=kernel_rows(joined, labels),
    )
    for row, label, record in zip(joined.itertuples(index=False), labels, records, strict=True):
        cells, keys = _cells(row, label), _sort_keys(row, label)
        for column, at in (("machine", 2), ("run", 0)):  # where _header puts them
            if column in series:
                cells.insert(at, str(record[column]))
                keys.insert(at, str(record[column]))
        report.rows.append(cells)
        report.sort_keys.append(keys)
    return report


def _run_info(results: Any, name: str) -> RunInfo:
    meta = results.meta
    return RunInfo(
        name,
        " ".join(str(a) for a in (meta.get("command") or [])),
        str(meta.get("started_at", "")),
        str(meta.get("status", "")),
        _environment(meta),
    )


def _header(series: list[str]) -> tuple[str, ...]:
    """COLUMNS, with a machine column and a run column where the rows come from several."""
    header = list(COLUMNS)
    if "machine" in series:
        header.insert(2, "machine")
    if "run" in series:
        header.insert(0, "run")
    return tuple(header)


def _mixed_hardware_notes(results_sets: list[Any], names: list[str]) -> list[str]:
    several = len(results_sets) > 1
    return [
        mixed_hardware_note(machines(r.meta), f"Run `{name}`" if several else "This run")
        for r, name in zip(results_sets, names, strict=True)
        if mixes_hardware(r.meta)
    ]


def _summary_line(s: BackendSummary) -> str:
    """One backend's line of the summary."""
    return (
        f"{s.name}: geometric-mean speedup {s.speedup:.2f}x against a MAC reduction of "
        f"{s.mac_reduction:.2f}x (efficiency {s.efficiency:.0%}) over {s.configurations} "
        f"configurations; separable faster in {s.faster}, slower in {s.slower}, within "
        f"noise in {s.unclear}"
        + (f", no interval (one round, or no spread) in {s.no_interval}" if s.no_interval else "")
    )


def _highlights(rows: pd.DataFrame, omit: dict[str, Any]) -> list[str]:
    """The first TOP of ``rows`` (wins or losses, best first), and how many more there are."""
    lines = []
    for row in rows.head(TOP).itertuples(index=False):
        fields = row._asdict()
        speedup = format_speedup(row.speedup, row.speedup_ci_low, row.speedup_ci_high)
        lines.append(
            f"{row_label(fields, omit)} on {series_of(fields)}: {speedup} "
            f"(MACs {format_ratio(row.mac_reduction)} fewer)"
        )
    if len(rows) > TOP:
        lines.append(f"... and {len(rows) - TOP} more")
    return lines


def _cells(row: Any, label: str) -> list[str]:
    """One line of the results table, as COLUMNS has it (pairs() row)."""
    return [
        label,
        row.backend + (f" {{{row.env}}}" if row.env else ""),
        f"{format_count(row.params_std)}/{format_count(row.params_sep)}",
        f"{format_count(row.macs_std)}/{format_count(row.macs_sep)}",
        format_latency(row.latency_median_s_std, row.latency_iqr_s_std),
        format_latency(row.latency_median_s_sep, row.latency_iqr_s_sep),
        format_speedup(row.speedup, row.speedup_ci_low, row.speedup_ci_high),
        format_ratio(row.mac_reduction),
        "-" if pd.isna(row.efficiency) else f"{row.efficiency:.0%}",
        f"{_roofline(row.roofline_fraction_std, row.roofline_bound_std)}/"
        f"{_roofline(row.roofline_fraction_sep, row.roofline_bound_sep)}",
        f"{format_bytes(row.peak_memory_bytes_std)}/{format_bytes(row.peak_memory_bytes_sep)}",
        row.status if row.status == "ok" else f"{row.status}: {row.error}",
    ]


def _sort_keys(row: Any, label: str) -> list[float | str]:
    """What each of _cells sorts by in the HTML table (numbers, not their rendering)."""
    return [
        label,
        row.backend,
        _number(row.params_std),
        _number(row.macs_std),
        _number(row.latency_median_s_std),
        _number(row.latency_median_s_sep),
        _number(row.speedup),
        _number(row.mac_reduction),
        _number(row.efficiency),
        _number(row.roofline_fraction_sep),
        _number(row.peak_memory_bytes_sep),
        row.status,
    ]


NUMBER_COLUMNS = {  # CSV column -> pairs() column
    "config_id": "config_id",
    "backend": "backend",
    "env": "env",
    "params_standard": "params_std",
    "params_separable": "params_sep",
    "macs_standard": "macs_std",
    "macs_separable": "macs_sep",
    "latency_standard_s": "latency_median_s_std",
    "latency_separable_s": "latency_median_s_sep",
    "speedup": "speedup",
    "speedup_ci_low": "speedup_ci_low",
    "speedup_ci_high": "speedup_ci_high",
    "mac_reduction": "mac_reduction",
    "efficiency": "efficiency",
    "roofline_fraction_standard": "roofline_fraction_std",
    "roofline_fraction_separable": "roofline_fraction_sep",
    "roofline_bound_standard": "roofline_bound_std",
    "roofline_bound_separable": "roofline_bound_sep",
    "peak_memory_standard_bytes": "peak_memory_bytes_std",
    "peak_memory_separable_bytes": "peak_memory_bytes_sep",
    "status": "status",
}


def _numbers(joined: pd.DataFrame, labels: list[str]) -> pd.DataFrame:
    out = pd.DataFrame({name: joined[source] for name, source in NUMBER_COLUMNS.items()})
    out.insert(1, "configuration", labels)
    series = series_columns(joined)
    if "machine" in series:
        out.insert(list(out.columns).index("env") + 1, "machine", joined["machine"])
    if "run" in series:
        out.insert(0, "run", joined["run"])
    return out


# ---------------------------------------------------------------------------------------------
# Renderers
# ---------------------------------------------------------------------------------------------


def to_markdown(report: Report) -> str:
    def table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
        out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
        return out

    lines = [f"# {report.title}", ""]
    for run in report.runs:
        lines.append(f"- run `{run.name}`: {run.status}, started {run.started_at}")
    lines += [f"- **Mixed hardware.** {note}" for note in report.notes]
    lines += ["", "## Summary", ""]
    lines += [f"- {s}" for s in report.summary] or ["- no configuration was measured"]
    lines += ["", "## Where separable wins", ""]
    lines += [f"- {w}" for w in report.wins] or ["- nowhere (no interval above 1)"]
    lines += ["", "## Where separable loses", ""]
    lines += [f"- {w}" for w in report.losses] or ["- nowhere (no interval below 1)"]
    if report.break_even:
        lines += ["", "## Break-even channel counts", ""]
        lines += table(["backend", "kernel", "separable wins"], report.break_even_rows())
    lines += ["", "## Results", ""]
    lines += table(report.header, report.rows)
    if report.kernels:
        lines += ["", "## Kernels", "", "Which kernel each conv ran, in call order (the "
                  "`kernels` column; `dscbench show --kernels`).", ""]  # fmt: skip
        lines += table(KERNEL_HEADER, report.kernels)
    for name, rows, note in report.accuracy:
        lines += ["", f"## Accuracy ({name})", ""]
        lines += table(rows[0], rows[1:])
        lines += ["", note]
    lines += ["", "## Environment", ""]
    for run in report.runs:
        lines += [f"### {run.name}", "", f"- command: `{run.command}`"]
        lines += [f"- {k}: {v}" for k, v in run.environment]
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def to_csv(report: Report) -> str:
    buffer = io.StringIO()
    assert report.numbers is not None
    report.numbers.to_csv(buffer, index=False, lineterminator="\n", float_format="%.10g")
    return buffer.getvalue()


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "→": r"$\rightarrow$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text).replace("->", r"$\to$")


def to_latex(report: Report) -> str:
    """A LaTeX fragment (booktabs tables, itemize lists) to \\input into a document."""
    e = latex_escape
    lines = [f"% {e(report.title)}", r"\section*{" + e(report.title) + "}"]
    lines += [r"\paragraph{Mixed hardware.} " + e(note.replace("`", "")) for note in report.notes]
    lines += [r"\subsection*{Summary}", r"\begin{itemize}"]
    lines += [rf"  \item {e(s)}" for s in report.summary] or [r"  \item nothing measured"]
    lines += [r"\end{itemize}", r"\subsection*{Where separable wins}", r"\begin{itemize}"]
    lines += [rf"  \item {e(s)}" for s in report.wins] or [r"  \item nowhere"]
    lines += [r"\end{itemize}", r"\subsection*{Where separable loses}", r"\begin{itemize}"]
    lines += [rf"  \item {e(s)}" for s in report.losses] or [r"  \item nowhere"]
    lines.append(r"\end{itemize}")
    if report.break_even:
        lines += [r"\subsection*{Break-even channel counts}", r"\begin{tabular}{lll}", r"\toprule"]
        lines.append(r"backend & kernel & separable wins \\ \midrule")
        lines += [" & ".join(e(c) for c in row) + r" \\" for row in report.break_even_rows()]
        lines += [r"\bottomrule", r"\end{tabular}"]
    lines += [
        r"\subsection*{Results}",
        r"\begin{tabular}{"
        + "l" * report.text_columns
        + "r" * (len(report.header) - report.text_columns)
        + "}",
        r"\toprule",
        " & ".join(e(h) for h in report.header) + r" \\ \midrule",
    ]
    lines += [" & ".join(e(c) for c in row) + r" \\" for row in report.rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\subsection*{Environment}"]
    for run in report.runs:
        lines += [r"\paragraph{" + e(run.name) + "}", r"\begin{itemize}"]
        lines.append(rf"  \item command: \texttt{{{e(run.command)}}}")
        lines += [rf"  \item {e(k)}: {e(v)}" for k, v in run.environment]
        lines.append(r"\end{itemize}")
    return "\n".join(lines) + "\n"


def render(report: Report, fmt: str) -> str:
    return {"markdown": to_markdown, "html": to_html, "csv": to_csv, "latex": to_latex}[fmt](report)
