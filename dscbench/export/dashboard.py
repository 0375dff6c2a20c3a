"""`dscbench history report -o DIR`: the history as a static site, no server. ``index.html``
lists every series, those with the newest change first, with filters for backend, variant and
configuration; each series has a page (``series/KEY.html``) with its trend chart (every run's
value and 95% interval, change points marked with their size) and its points. Everything is
inline (CSS, SVG, the scripts): the files open from disk or any static host.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dscbench.export.report_html import PAGE_CSS, SORT_JS
from dscbench.export.units import format_seconds
from dscbench.history.changes import WHOLE_RUN
from dscbench.history.check import Report, summary_line

e = html.escape
EXTRA_CSS = """
.filters { margin: 1rem 0; display: flex; gap: 1rem; flex-wrap: wrap; }
.slower { color: #b00020; } .faster { color: #0a7d32; }
figure { margin: 1rem 0; } figure svg { max-width: 100%; height: auto; }
"""
# Rows whose data-* attributes do not match every filter are hidden.
FILTER_JS = """
(function () {
  var filters = document.querySelectorAll("[data-filter]");
  function apply() {
    document.querySelectorAll("tr[data-backend]").forEach(function (row) {
      var shown = true;
      filters.forEach(function (f) {
        var want = f.value.toLowerCase();
        var have = (row.dataset[f.dataset.filter] || "").toLowerCase();
        if (want && (f.tagName === "INPUT" ? have.indexOf(want) < 0 : have !== want)) shown = false;
      });
      row.style.display = shown ? "" : "none";
    });
  }
  filters.forEach(function (f) { f.addEventListener("input", apply); });
  apply();
  document.body.dataset.ready = "yes";
})();
"""


def value_text(x: float | None, metric: str) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:,.0f}" if metric == "instructions" else format_seconds(x)


def write(out: Path, points: pd.DataFrame, report: Report, title: str) -> list[Path]:
    """The site for ``points`` (queries.points) and its ``report`` (check.check) into ``out``;
    the files written."""
    (out / "series").mkdir(parents=True, exist_ok=True)
    changes_of: dict[str, list[dict[str, Any]]] = {}
    for c in report.changes:
        changes_of.setdefault(c["series"], []).append(c)
    written = []
    series = points.drop_duplicates("series").set_index("series")
    for key, one in points.groupby("series", sort=False):
        page = out / "series" / f"{key}.html"
        page.write_text(series_page(str(key), one, changes_of.get(str(key), []), title))
        written.append(page)
    index = out / "index.html"
    index.write_text(index_page(series, points, changes_of, report, title))
    return [index, *written]


def _page(title: str, body: list[str], scripts: str = "") -> str:
    return "".join([
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>',
        f"<style>{PAGE_CSS}{EXTRA_CSS}</style></head><body>",
        *body,
        f"<script>{scripts}</script></body></html>",
    ])  # fmt: skip


def _label(row: Any) -> str:
    env = f" {{{row['env']}}}" if row["env"] else ""
    return f"{row['config_id']} {row['variant']} {row['backend']}{env}"


def index_page(
    series: pd.DataFrame,
    points: pd.DataFrame,
    changes_of: dict[str, list[dict[str, Any]]],
    report: Report,
    title: str,
) -> str:
    """The summary: a row per series, the newest change first."""
    newest = points.groupby("series").tail(1).set_index("series")  # points: oldest first
    runs = points.groupby("series")["run_id"].nunique()
    lines = []
    for key, row in series.iterrows():
        found = sorted(changes_of.get(str(key), []), key=lambda c: c["after_started"])
        last = found[-1] if found else None
        lines.append((last["after_started"] if last else "", str(key), row, last))
    lines.sort(key=lambda t: t[0], reverse=True)
    body = [f"<h1>{e(title)}</h1>", f"<p>{e(summary_line(report))}</p>"]
    if any(c["series"] == WHOLE_RUN for c in report.changes):
        whole = [c for c in report.changes if c["series"] == WHOLE_RUN]
        moves = "; ".join(_change_text(c) for c in whole)
        body.append(
            "<p>Whole runs moved (every row at once: the machine, or a change that touched "
            f"everything): {moves}</p>"
        )
    selects = "".join(_select(name, sorted(set(series[name]))) for name in ("backend", "variant"))
    config = '<label>configuration <input data-filter="config" placeholder="e.g. c64"></label>'
    body.append(f'<div class="filters">{selects}{config}</div>')
    body.append(_header("series", "metric", "runs", "newest value", "newest change", "when"))
    for when, key, row, last in lines:
        latest = newest.loc[key]
        label = e(_label(row))
        cells = [
            _cell(label, f'<a href="series/{e(key)}.html">{label}</a>'),
            _cell(e(row["metric"]), e(row["metric"])),
            _cell(str(runs[key]), str(runs[key])),
            _cell(f"{latest['value']:.6g}", e(value_text(latest["value"], row["metric"]))),
            _cell(f"{last['ratio'] if last else 0:.6g}", _change_text(last) if last else "-"),
            _cell(e(when), e(when[:16]) or "-"),
        ]
        data = (f'data-backend="{e(row["backend"])}" data-variant="{e(row["variant"])}" '
                f'data-config="{e(row["config_id"])}"')  # fmt: skip
        body.append(f"<tr {data}>{''.join(cells)}</tr>")
    body.append("</tbody></table>")
    return _page(title, body, SORT_JS + FILTER_JS)


def _select(name: str, values: list[str]) -> str:
    options = '<option value="">all</option>' + "".join(
        f'<option value="{e(v)}">{e(v)}</option>' for v in values
    )
    return f'<label>{e(name)} <select data-filter="{e(name)}">{options}</select></label>'


def _change_text(c: dict[str, Any]) -> str:
    newest = " (newest runs)" if c["newest"] else ""
    size = f"x{c['ratio']:.3f} [{c['low']:.3f}, {c['high']:.3f}]"
    before, after = e(c["before_commit"][:12]), e(c["after_commit"][:12])
    return (
        f'<span class="{c["direction"]}">{c["direction"]} {size}</span>{newest} between '
        f"<code>{before}</code> and <code>{after}</code>"
    )


def _cell(sort: str, text: str) -> str:
    return f'<td data-sort="{sort}">{text}</td>'


def _header(*names: str) -> str:
    heads = "".join(f"<th>{e(n)}</th>" for n in names)
    return f'<table class="sortable"><thead><tr>{heads}</tr></thead><tbody>'


def series_page(key: str, one: pd.DataFrame, found: list[dict[str, Any]], title: str) -> str:
    """One series: its chart, its changes and its points."""
    # the order and the values change points were found in (changes.find_changes)
    one = one[(one["value"] > 0) & np.isfinite(one["value"].astype(float))]
    one = one.sort_values(["started_at", "run_id"], kind="stable").reset_index(drop=True)
    first = one.iloc[0]
    body = [f'<p><a href="../index.html">{e(title)}</a></p>', f"<h1>{e(_label(first))}</h1>",
            f"<figure>{chart(one, found)}</figure>"]  # fmt: skip
    if found:
        body.append("<h2>Changes</h2><ul>")
        body += [f"<li>{_change_text(c)} (from {e(c['after_started'][:16])}, {c['n_before']} "
                 f"runs before, {c['n_after']} after)</li>" for c in found]  # fmt: skip
        body.append("</ul>")
    body.append("<h2>Runs</h2>" + _header("started", "commit", "value", "95% interval"))
    metric = first["metric"]
    for _, p in one.iterrows():
        low, high = p.get("low"), p.get("high")
        interval = (f"{value_text(low, metric)} - {value_text(high, metric)}"
                    if _finite(low) and _finite(high) else "-")  # fmt: skip
        cells = [
            _cell(p["started_at"].isoformat(), f"{p['started_at']:%Y-%m-%d %H:%M}"),
            _cell(e(p["commit"]), f"<code>{e(p['commit'][:12])}</code>"),
            _cell(f"{p['value']:.6g}", e(value_text(p["value"], metric))),
            _cell(e(interval), e(interval)),
        ]
        body.append(f"<tr>{''.join(cells)}</tr>")
    body.append("</tbody></table>")
    return _page(f"{_label(first)}: {title}", body, SORT_JS + "document.body.dataset.ready='yes';")


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def chart(one: pd.DataFrame, found: list[dict[str, Any]]) -> str:
    """The trend as inline SVG: each run's value with its interval, oldest left, change points
    as dashed lines labelled with their size."""

    from dscbench.plot import matplotlib_pyplot, to_bytes

    plt = matplotlib_pyplot()
    metric = one["metric"].iloc[0]
    scale, unit = (1e-6, "M instructions") if metric == "instructions" else _time_unit(one["value"])
    x = np.arange(len(one))
    y = one["value"].to_numpy(dtype=float) / scale
    fig, ax = plt.subplots(figsize=(10, 3.6))
    low = pd.to_numeric(one.get("low"), errors="coerce").to_numpy(dtype=float) / scale
    high = pd.to_numeric(one.get("high"), errors="coerce").to_numpy(dtype=float) / scale
    has = np.isfinite(low) & np.isfinite(high)
    ax.plot(x, y, "-", color="#9bb", linewidth=1, zorder=1)
    ax.errorbar(x[has], y[has], yerr=[y[has] - low[has], high[has] - y[has]], fmt="o",
                color="#245", markersize=3, elinewidth=1, capsize=2, zorder=2)  # fmt: skip
    ax.plot(x[~has], y[~has], "o", color="#245", markersize=3, zorder=2)
    for c in found:
        at = c["position"] - 0.5
        colour = "#b00020" if c["direction"] == "slower" else "#0a7d32"
        ax.axvline(at, color=colour, linestyle="--", linewidth=1.2)
        ax.annotate(f"x{c['ratio']:.2f}", (at, 1.0), xycoords=("data", "axes fraction"),
                    ha="left", va="top", color=colour, fontsize=9)  # fmt: skip
    step = max(1, len(one) // 12)
    ax.set_xticks(x[::step])
    ax.set_xticklabels([c[:7] for c in one["commit"].iloc[::step]], rotation=30, fontsize=8)
    ax.set_ylabel(unit)
    ax.set_xlabel("commit (oldest run left)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_bytes(fig, "svg").decode()


def _time_unit(values: pd.Series) -> tuple[float, str]:
    median = float(values.median())
    for scale, unit in ((1.0, "s"), (1e-3, "ms"), (1e-6, "us")):
        if median >= scale:
            return scale, f"latency ({unit})"
    return 1e-9, "latency (ns)"
