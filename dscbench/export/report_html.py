"""The HTML report page: one self-contained file, with inline CSS, the plots as inline SVG
(or PNG for large runs) and a results table that sorts when a header is clicked."""

from __future__ import annotations

import html
import math

from dscbench.export.report_document import Report
from dscbench.export.table import KERNEL_HEADER

PAGE_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { padding: 0.25rem 0.6rem; border-bottom: 1px solid #ddd; text-align: right; }
th { background: #f3f3f3; cursor: pointer; user-select: none; position: sticky; top: 0; }
td:first-child, th:first-child, td:nth-child(2), th:nth-child(2) { text-align: left; }
th.sorted-asc::after { content: " \\25B2"; } th.sorted-desc::after { content: " \\25BC"; }
.figures { display: flex; flex-wrap: wrap; gap: 1rem; }
.figures figure { margin: 0; max-width: 100%; } .figures svg { max-width: 100%; height: auto; }
code { background: #f3f3f3; padding: 0 0.2rem; }
"""

# Click a header to sort by it (numbers by value, text alphabetically; click again to reverse).
SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.querySelectorAll("th");
  headers.forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = !th.classList.contains("sorted-asc");
      headers.forEach(function (h) { h.classList.remove("sorted-asc", "sorted-desc"); });
      th.classList.add(ascending ? "sorted-asc" : "sorted-desc");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = a.cells[column].dataset.sort, y = b.cells[column].dataset.sort;
        var nx = parseFloat(x), ny = parseFloat(y);
        var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
  table.dataset.sortable = "ready";
});
"""


def to_html(report: Report) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(report.title)}</title><style>{PAGE_CSS}</style></head><body>",
        f"<h1>{e(report.title)}</h1>",
        "<ul>"
        + "".join(
            f"<li>run <code>{e(r.name)}</code>: {e(r.status)}, started {e(r.started_at)}</li>"
            for r in report.runs
        )
        + "".join(f"<li><strong>Mixed hardware.</strong> {_code(n)}</li>" for n in report.notes)
        + "</ul>",
        "<h2>Summary</h2><ul>"
        + "".join(f"<li>{e(s)}</li>" for s in report.summary or ["no configuration measured"])
        + "</ul>",
    ]
    if report.figures:
        parts.append('<h2>Plots</h2><div class="figures">')
        for kind, svg in report.figures.items():
            parts.append(f'<figure id="plot-{e(kind)}">{svg}</figure>')
        parts.append("</div>")
    for heading, items, empty in (
        ("Where separable wins", report.wins, "nowhere (no interval above 1)"),
        ("Where separable loses", report.losses, "nowhere (no interval below 1)"),
    ):
        parts.append(
            f"<h2>{heading}</h2><ul>"
            + "".join(f"<li>{e(i)}</li>" for i in items or [empty])
            + "</ul>"
        )
    if report.break_even:
        parts.append(
            "<h2>Break-even channel counts</h2><table><thead><tr><th>backend</th>"
            "<th>kernel</th><th>separable wins</th></tr></thead><tbody>"
            + "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>"
                for row in report.break_even_rows()
            )
            + "</tbody></table>"
        )
    parts.append(
        '<h2>Results</h2><p>Click a column to sort.</p><table class="sortable" id="results">'
        "<thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in report.header) + "</tr></thead>"
        "<tbody>"
    )
    left = ' style="text-align: left"'  # text columns beyond the two the CSS aligns
    for row, keys in zip(report.rows, report.sort_keys, strict=True):
        cells = "".join(
            f'<td data-sort="{e(_sort_value(k))}"{left if 2 <= i < report.text_columns else ""}>'
            f"{e(c)}</td>"
            for i, (c, k) in enumerate(zip(row, keys, strict=True))
        )
        parts.append(f"<tr>{cells}</tr>")
    parts.append("</tbody></table>")
    if report.kernels:
        parts.append(
            "<h2>Kernels</h2><p>Which kernel each conv ran, in call order.</p><table><thead><tr>"
            + "".join(f"<th>{e(h)}</th>" for h in KERNEL_HEADER)
            + "</tr></thead><tbody>"
            + "".join(
                "<tr>" + "".join(f'<td style="text-align: left">{e(c)}</td>' for c in row) + "</tr>"
                for row in report.kernels
            )
            + "</tbody></table>"
        )
    parts += [_accuracy_html(*section) for section in report.accuracy]
    parts.append("<h2>Environment</h2>")
    for run in report.runs:
        parts.append(
            f"<h3>{e(run.name)}</h3><ul><li>command: <code>{e(run.command)}</code></li>"
            + "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in run.environment)
            + "</ul>"
        )
    parts.append(f"<script>{SORT_JS}</script></body></html>")
    return "\n".join(parts) + "\n"


def _accuracy_html(name: str, rows: list[list[str]], note: str) -> str:
    """One run's accuracy section (dscbench accuracy): its table and the data and recipe."""
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows[1:])
    return (
        f"<h2>Accuracy ({e(name)})</h2><table><thead><tr>{head}</tr></thead><tbody>{body}"
        f"</tbody></table><p>{e(note)}</p>"
    )


def _code(text: str) -> str:
    """HTML of ``text`` with its `backquoted` parts as <code>."""
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _sort_value(key: float | str) -> str:
    if isinstance(key, float):
        return "" if math.isnan(key) else repr(key)
    return str(key)
