"""The terminal table of a run, built from the result table alone (so it renders old runs too)."""

from __future__ import annotations

import math

import pandas as pd
from rich.table import Table
from rich.text import Text

from dscbench.export.units import format_count, format_ratio, format_seconds
from dscbench.results import LABEL_COLUMNS, PAIR_COLUMNS
from dscbench.stats import geometric_mean


def _latency(median: float, iqr: float) -> str:
    """'1.23 ms ±4%': the median, and the IQR as a share of it."""
    if not math.isfinite(median) or median <= 0:
        return "-"
    return f"{format_seconds(median)} ±{iqr / median:.0%}"


def _speedup(row: tuple) -> Text:
    if not math.isfinite(row.speedup):
        return Text("-")
    text = f"{row.speedup:.2f}x [{row.speedup_ci_low:.2f}, {row.speedup_ci_high:.2f}]"
    if row.speedup_ci_low > 1:
        style = "green"
    elif row.speedup_ci_high < 1:
        style = "red"
    else:
        style = "yellow"
    return Text(text, style=style)


SHARED_COLUMNS = (*LABEL_COLUMNS, "status", "error")


def pairs(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, backend): the standard row's columns suffixed ``_std`` next to the
    separable row's suffixed ``_sep``; pair and configuration columns also appear unsuffixed."""
    key = ["config_id", "backend"]
    std = results[results.variant == "standard"].set_index(key)
    sep = results[results.variant == "separable"].set_index(key)
    joined = std.merge(
        sep, left_index=True, right_index=True, how="outer", suffixes=("_std", "_sep")
    )
    shared = joined[[f"{c}_sep" for c in (*PAIR_COLUMNS, *SHARED_COLUMNS)]]
    shared.columns = [*PAIR_COLUMNS, *SHARED_COLUMNS]
    joined = pd.concat([joined, shared], axis=1)
    order = list(
        dict.fromkeys(zip(results.config_id, results.backend, strict=True))
    )  # the sweep's order
    return joined.reindex(pd.MultiIndex.from_tuples(order, names=key)).reset_index()


# Axes shown in each row's label only when they vary across the table; constant ones go in
# the title, which keeps the table inside an 80-column terminal.
_LABEL_AXES = ("batch", "dtype", "threads", "memory_format", "backend")


def _constant_axes(joined: pd.DataFrame) -> dict[str, object]:
    return {a: joined[a].iloc[0] for a in _LABEL_AXES if joined[a].nunique() == 1}


def _label(row: tuple, constant: dict[str, object]) -> str:
    size = f"{row.height}" if row.height == row.width else f"{row.height}x{row.width}"
    text = f"{row.in_channels}->{row.out_channels} @{size} k{row.kernel}s{row.stride}"
    if "batch" not in constant:
        text = f"n{row.batch} " + text
    if "dtype" not in constant:
        text += f" {row.dtype}"
    if "threads" not in constant:
        text += f" t{row.threads}"
    if "memory_format" not in constant:
        text += f" {row.memory_format}"
    if "backend" not in constant:
        text += f" {row.backend}"
    return text


def describe_constant(constant: dict[str, object]) -> str:
    parts = []
    if "batch" in constant:
        parts.append(f"batch {constant['batch']}")
    if "dtype" in constant:
        parts.append(str(constant["dtype"]))
    if "threads" in constant:
        parts.append(f"{constant['threads']} thread(s)")
    if constant.get("memory_format") == "channels_last":
        parts.append("channels_last")
    if "backend" in constant:
        parts.append(str(constant["backend"]))
    return ", ".join(parts)


def results_table(results: pd.DataFrame, title: str | None = None) -> Table:
    """Rich table: one line per configuration and backend, standard vs separable."""
    joined = pairs(results)
    constant = _constant_axes(joined)
    if title is None:
        title = f"standard vs separable conv: {describe_constant(constant)}"
    table = Table(title=title, header_style="bold", show_lines=False)
    table.add_column("Cin->Cout @HxW k s")
    table.add_column("params std/sep", justify="right")
    table.add_column("MACs std/sep", justify="right")
    table.add_column("standard", justify="right")
    table.add_column("separable", justify="right")
    table.add_column("speedup [95% CI]", justify="right")
    table.add_column("MAC red.", justify="right")
    table.add_column("eff.", justify="right")
    for row in joined.itertuples(index=False):
        cells: list[str | Text] = [_label(row, constant)]
        cells += [
            f"{format_count(row.params_std)}/{format_count(row.params_sep)}",
            f"{format_count(row.macs_std)}/{format_count(row.macs_sep)}",
        ]
        if row.status in ("ok", "count_mismatch") and math.isfinite(row.speedup):
            cells += [
                _latency(row.latency_median_s_std, row.latency_iqr_s_std),
                _latency(row.latency_median_s_sep, row.latency_iqr_s_sep),
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
        table.add_row(*cells)
    return table


def _speedup_summary(ok: pd.DataFrame) -> str:
    gm_speed = geometric_mean(ok.speedup)
    gm_macs = geometric_mean(ok.mac_reduction)
    slower = int((ok.speedup_ci_high < 1).sum())
    faster = int((ok.speedup_ci_low > 1).sum())
    return (
        f"geometric-mean speedup {gm_speed:.2f}x against a geometric-mean MAC reduction of "
        f"{gm_macs:.2f}x (efficiency {gm_speed / gm_macs:.0%}); separable faster in {faster}, "
        f"slower in {slower}, within noise in {len(ok) - faster - slower}."
    )


def summary_lines(results: pd.DataFrame) -> list[str]:
    """Geometric-mean speedup vs MAC reduction over the measured pairs, one line per backend
    when there are several; then compile time and parity, where they apply. Rows that are not
    ``ok`` (parity failures included) never enter a mean."""
    joined = pairs(results)
    lines = []
    backends = list(dict.fromkeys(joined.backend))
    for backend in backends:
        rows = joined[joined.backend == backend]
        ok = rows[(rows.status == "ok") & rows.speedup.notna()]
        skipped = int((rows.status == "skipped").sum())
        failed = len(rows) - len(ok) - skipped
        who = f"{backend}: s" if len(backends) > 1 else "S"
        if ok.empty:
            text = f"{who}eparable vs standard: no configuration was measured."
        else:
            text = f"{who}eparable vs standard over {len(ok)} configurations: " + _speedup_summary(
                ok
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
