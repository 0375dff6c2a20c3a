"""The terminal table of a run, built from the result table alone (so it renders old runs too)."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table
from rich.text import Text

from dscbench.analysis import (
    interval_counts,
    mixed_hardware_note,
    pairs,
    row_machines,
    series_columns,
    series_of,
)
from dscbench.export.units import (
    format_bytes,
    format_count,
    format_latency,
    format_ratio,
    format_speedup,
)
from dscbench.labels import constant_axes, describe_constant, table_label
from dscbench.stats import geometric_mean


def _speedup(row: tuple) -> Text:
    """The speedup with its interval, green above 1, red below, yellow holding 1 or none."""
    text = format_speedup(row.speedup, row.speedup_ci_low, row.speedup_ci_high)
    if not math.isfinite(row.speedup):
        return Text(text)
    if not math.isfinite(row.speedup_ci_low):  # one round: no interval
        return Text(text, style="yellow")
    if row.speedup_ci_low > 1:
        style = "green"
    elif row.speedup_ci_high < 1:
        style = "red"
    else:
        style = "yellow"
    return Text(text, style=style)


def results_table(results: pd.DataFrame, title: str | None = None) -> Table:
    """Rich table: one line per configuration and backend, standard vs separable."""
    joined = pairs(results)
    constant = constant_axes(joined.to_dict("records"))
    series = series_columns(joined)  # run, machine: leading columns, where the table has them
    if title is None:
        title = f"standard vs separable conv: {describe_constant(constant)}"
        if "machine" in series:
            title += f" (mixed hardware: {joined.machine.nunique()} machines)"
    table = Table(title=title, header_style="bold", show_lines=False)
    models = bool(joined.model.astype(str).str.len().gt(0).any())
    memory = bool(joined.peak_memory_bytes_sep.notna().any())
    for column in series:
        table.add_column(column)
    table.add_column("model" if models else "Cin->Cout @HxW k s")
    table.add_column("params std/sep", justify="right")
    table.add_column("MACs std/sep", justify="right")
    counted = counts_instructions(joined)
    table.add_column("standard" + (" instr." if counted else ""), justify="right")
    table.add_column("separable" + (" instr." if counted else ""), justify="right")
    table.add_column("instr. red." if counted else "speedup [95% CI]", justify="right")
    table.add_column("MAC red.", justify="right")
    table.add_column("eff.", justify="right")
    if memory:
        table.add_column("peak mem std/sep", justify="right")
    for row in joined.itertuples(index=False):
        fields = row._asdict()
        cells: list[str | Text] = [str(fields[c]) for c in series]
        cells.append(table_label(fields, constant))
        cells += [
            f"{format_count(row.params_std)}/{format_count(row.params_sep)}",
            f"{format_count(row.macs_std)}/{format_count(row.macs_sep)}",
        ]
        if counted and row.status == "ok" and math.isfinite(row.instructions_sep):
            reduction = row.instructions_std / row.instructions_sep
            cells += [
                format_count(row.instructions_std),
                format_count(row.instructions_sep),
                format_ratio(reduction),
                format_ratio(row.mac_reduction),
                f"{reduction / row.mac_reduction:.0%}",
            ]
        elif row.status in ("ok", "count_mismatch") and math.isfinite(row.speedup):
            cells += [
                format_latency(row.latency_median_s_std, row.latency_iqr_s_std),
                format_latency(row.latency_median_s_sep, row.latency_iqr_s_sep),
                _speedup(row),
                format_ratio(row.mac_reduction),
                f"{row.efficiency:.0%}",
            ]
        else:
            style = "yellow" if row.status == "skipped" else "red"
            cells += [
                Text(row.status, style=style),
                Text(row.error or "", style=style),
                "-",
                format_ratio(row.mac_reduction),
                "-",
            ]
        if memory:
            cells.append(
                f"{format_bytes(row.peak_memory_bytes_std)}/{format_bytes(row.peak_memory_bytes_sep)}"
            )
        table.add_row(*cells)
    return table


KERNEL_HEADER = ("configuration", "backend", "standard kernels", "separable kernels", "flag")


def kernel_rows(joined: pd.DataFrame, labels: list[str]) -> list[list[str]]:
    """What each pair ran (the ``kernels`` columns of ``joined``, analysis.pairs): one line
    per configuration labelled by ``labels``, flagged where a reference kernel was a fallback
    (the ``reference_kernel`` warning). Empty when no row named its kernels."""
    if not joined.kernels_std.fillna("").astype(bool).any():
        return []
    out = []
    for row, label in zip(joined.itertuples(index=False), labels, strict=True):
        warned = [
            variant
            for variant, warnings in (
                ("standard", row.warnings_std),
                ("separable", row.warnings_sep),
            )
            if "reference_kernel:" in str(warnings)
        ]
        backend = row.backend + (f" {{{row.env}}}" if row.env else "")
        out.append([
            label, backend, str(row.kernels_std or "-"), str(row.kernels_sep or "-"),
            f"reference kernel in {' and '.join(warned)}" if warned else "",
        ])  # fmt: skip
    return out


def kernels_table(results: pd.DataFrame) -> Table:
    """``dscbench show --kernels``: which kernel each conv of each pair ran."""
    joined = pairs(results)
    records = joined.to_dict("records")
    constant = constant_axes(records)
    table = Table(title=f"kernels that ran: {describe_constant(constant)}", header_style="bold")
    for column in KERNEL_HEADER:
        table.add_column(column)
    labels = [table_label(r, {**constant, "backend": 1, "env": 1}) for r in records]
    rows = kernel_rows(joined, labels)
    for cells in rows:
        table.add_row(*cells[:-1], Text(cells[-1], style="yellow"))
    if not rows:
        table.caption = (
            "no row names its kernels (a run from before schema 7, or a backend that cannot say)"
        )
    return table


def counts_instructions(joined: pd.DataFrame) -> bool:
    """Whether the pairs of ``joined`` were counted in instructions (--measure instructions)."""
    return "instructions_sep" in joined.columns and bool(joined.instructions_sep.notna().any())


def _instructions_summary(ok: pd.DataFrame) -> str:
    reduction = geometric_mean(ok.instructions_std / ok.instructions_sep)
    gm_macs = geometric_mean(ok.mac_reduction)
    fewer = int((ok.instructions_sep < ok.instructions_std).sum())
    return (
        f"geometric-mean instruction reduction {reduction:.2f}x against a geometric-mean MAC "
        f"reduction of {gm_macs:.2f}x ({reduction / gm_macs:.0%}); separable executes fewer "
        f"instructions in {fewer} (counted under valgrind: deterministic, blind to memory "
        "stalls)."
    )


def _speedup_summary(ok: pd.DataFrame) -> str:
    gm_speed = geometric_mean(ok.speedup)
    gm_macs = geometric_mean(ok.mac_reduction)
    faster, slower, within, no_interval = interval_counts(ok)
    text = (
        f"geometric-mean speedup {gm_speed:.2f}x against a geometric-mean MAC reduction of "
        f"{gm_macs:.2f}x (efficiency {gm_speed / gm_macs:.0%}); separable faster in {faster}, "
        f"slower in {slower}, within noise in {within}"
    )
    if no_interval:
        text += f", no interval (one round, or no spread) in {no_interval}"
    text += " (95% intervals over processes, or over rounds in a one-process run)."
    rerun = ok[["speedup_rerun_low", "speedup_rerun_high"]].div(ok.speedup, axis=0).dropna()
    if len(rerun):
        text += (
            f" A rerun here should land within x{rerun.speedup_rerun_low.median():.2f} to "
            f"x{rerun.speedup_rerun_high.median():.2f} of each speedup (median 95% rerun "
            "interval: speedup_rerun_low/high)."
        )
    return text


def summary_lines(results: pd.DataFrame) -> list[str]:
    """Geometric-mean speedup vs MAC reduction over the measured pairs, one line per backend
    when there are several (and per run and machine, where the table has those columns: a
    run that mixes hardware first says so and names its machines); then compile time and
    parity, where they apply. Rows that are not ``ok`` (parity failures included) never enter
    a mean."""
    joined = pairs(results)
    lines = []
    if "machine" in joined.columns:
        lines.append(mixed_hardware_note(row_machines(results)))
    series = series_columns(joined)
    key = [*series, "backend", "env"]
    groups = list(dict.fromkeys(zip(*(joined[c] for c in key), strict=True)))
    for group in groups:
        mask = pd.Series(True, index=joined.index)
        for column, value in zip(key, group, strict=True):
            mask &= joined[column] == value
        rows = joined[mask]
        counted = counts_instructions(rows)
        measured = rows.instructions_sep.notna() if counted else rows.speedup.notna()
        ok = rows[(rows.status == "ok") & measured]
        skipped = int((rows.status == "skipped").sum())
        failed = len(rows) - len(ok) - skipped
        name = series_of(dict(zip(key, group, strict=True)))
        who = f"{name}: s" if len(groups) > 1 or series else "S"
        if ok.empty:
            text = f"{who}eparable vs standard: no configuration was measured."
        else:
            text = f"{who}eparable vs standard over {len(ok)} configurations: " + (
                _instructions_summary(ok) if counted else _speedup_summary(ok)
            )
        if failed:
            text += f" {failed} configuration(s) failed or were not measured."
        if skipped:
            text += f" {skipped} skipped."
        lines.append(text)
    compiled = results[results.compile_s.notna()]
    for backend, rows in compiled.groupby("backend", sort=False):
        lines.append(
            f"{backend}: compiled {len(rows)} models in {rows.compile_s.sum():.1f} s "
            f"(median {rows.compile_s.median():.2f} s each), not included in any latency."
        )
    checked = results[results.parity_max_rel_err.notna()]
    if not checked.empty:
        worst = checked.loc[(checked.parity_max_rel_err / checked.parity_tolerance).idxmax()]
        bad = int((checked.parity_max_rel_err > checked.parity_tolerance).sum())
        lines.append(
            f"Parity with a float64 reference: {len(checked)} outputs checked, {bad} out of "
            f"tolerance; closest to its limit: {worst.parity_max_rel_err:.2g} relative error "
            f"({worst['dtype']} tolerance {worst['parity_tolerance']:g}, {worst['backend']})."
        )
    return lines


def warning_lines(results: pd.DataFrame) -> list[str]:
    lines = []
    for row in results.itertuples(index=False):
        if row.warnings:
            lines.append(f"{row.config_id} {row.variant} ({row.backend}): {row.warnings}")
    return lines


LAYER_TYPE_NAMES = {
    "conv1x1": "conv 1x1",
    "depthwise": "depthwise conv",
    "dense": "dense conv (KxK)",
    "grouped": "grouped conv",
    "fc": "fully connected",
    "norm": "batch norm",
    "other": "other",
}


def breakdown_tables(breakdown: pd.DataFrame, labels: dict[str, str]) -> list[Table]:
    """One table per model configuration: MACs and params by layer type, standard next to
    separable, with each type's share of its variant's total (MobileNetV1's Table 2)."""
    tables = []
    for config_id, rows in breakdown.groupby("config_id", sort=False):
        table = Table(
            title=f"MACs and params by layer type: {labels.get(str(config_id), config_id)}",
            header_style="bold",
        )
        table.add_column("layer type")
        for head in ("MACs std", "params std", "MACs sep", "params sep"):
            table.add_column(head, justify="right")
        by_variant = {v: r.set_index("layer_type") for v, r in rows.groupby("variant")}
        types = [t for t in LAYER_TYPE_NAMES if any(t in r.index for r in by_variant.values())]
        for layer_type in types:
            cells = [LAYER_TYPE_NAMES[layer_type]]
            for v in ("standard", "separable"):
                r = by_variant.get(v)
                if r is None or layer_type not in r.index:
                    cells += ["-", "-"]
                    continue
                one = r.loc[layer_type]
                cells += [
                    f"{format_count(one.macs)} ({one.macs_share:.1%})",
                    f"{format_count(one.params)} ({one.params_share:.1%})",
                ]
            table.add_row(*cells)
        tables.append(table)
    return tables
