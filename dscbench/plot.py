"""Plots of result files (`dscbench plot`, and the figures of `report --format html`).

matplotlib is an optional dependency (``pip install 'dscbench[plot]'``), imported lazily with
the non-interactive Agg backend. Colours are fixed per backend (BACKEND_COLORS) and markers per
variant (standard: filled circle, separable: open triangle), in every kind of plot. Results of
several runs (a ``run`` column), or of a run that mixes hardware (a ``machine`` column), are
drawn as one series per run and machine: the first of a backend in its colour, the others in
darker and lighter shades of it, named in the legend or the panel's title.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from dscbench.analysis import (
    break_even,
    kernel_shapes,
    measured_pairs,
    series_columns,
    series_of,
    shape_order,
)
from dscbench.errors import DscbenchError
from dscbench.labels import constant_axes, describe_constant

KINDS = ("speedup", "roofline", "latency", "breakeven")
FORMATS = ("png", "svg", "pdf")
BACKEND_COLORS = {
    "torch-cpu": "#1f77b4",
    "torch-compile-cpu": "#ff7f0e",
    "onnxruntime-cpu": "#2ca02c",
    "torch-cuda": "#d62728",
    "torch-compile-cuda": "#9467bd",
    "onnxruntime-cuda": "#8c564b",
    "onnxruntime-tensorrt": "#e377c2",
}
OTHER_COLORS = ("#7f7f7f", "#bcbd22", "#17becf")
VARIANT_MARKERS = {"standard": "o", "separable": "^"}
KERNEL_MARKERS = ("o", "s", "D", "v", "P", "X")
FIGSIZE = (7.0, 4.6)
DPI = 110


class PlotError(DscbenchError):
    """A plot that cannot be drawn from these results (no calibration, nothing measured)."""


def matplotlib_pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise DscbenchError("plots need matplotlib: pip install 'dscbench[plot]'") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def color_of(backend: str, env: str = "") -> str:
    if backend in BACKEND_COLORS and not env:
        return BACKEND_COLORS[backend]
    key = f"{backend}{{{env}}}" if env else backend
    if backend in BACKEND_COLORS:  # environments of one backend: shades of its colour
        return BACKEND_COLORS[backend]
    return OTHER_COLORS[sum(map(ord, key)) % len(OTHER_COLORS)]


SHADES = (-0.35, 0.35, -0.6, 0.6, -0.15, 0.15)  # darker (< 0) or lighter (> 0) than a backend's


def _shade(color: str, amount: float) -> str:
    from matplotlib.colors import to_hex, to_rgb

    rgb = np.array(to_rgb(color))
    rgb = rgb * (1 + amount) if amount < 0 else rgb + (1 - rgb) * amount
    return str(to_hex(np.clip(rgb, 0, 1)))


def _keys(rows: pd.DataFrame) -> list[str]:
    """What one series of points is: its run and machine (where the table has them), backend
    and environment."""
    return [*series_columns(rows), "backend", "env"]


def _series(rows: pd.DataFrame) -> list[tuple]:
    keys = _keys(rows)
    return list(dict.fromkeys(zip(*(rows[c] for c in keys), strict=True)))


def _name(rows: pd.DataFrame, group: tuple) -> str:
    return series_of(dict(zip(_keys(rows), group, strict=True)))


def _of(rows: pd.DataFrame, group: tuple) -> pd.DataFrame:
    """The rows of one series."""
    mask = np.ones(len(rows), dtype=bool)
    for column, value in zip(_keys(rows), group, strict=True):
        mask &= (rows[column] == value).to_numpy()
    return rows[mask]


def palette(results: pd.DataFrame) -> dict[tuple, str]:
    """Series -> colour: a backend's colour for its first series, shades of it for the others
    (other runs and machines)."""
    colors: dict[tuple, str] = {}
    seen: dict[str, int] = {}
    for group in _series(results):
        base = color_of(str(group[-2]), str(group[-1]))
        n = seen[base] = seen.get(base, -1) + 1
        colors[group] = base if n == 0 else _shade(base, SHADES[(n - 1) % len(SHADES)])
    return colors


def _title(results: pd.DataFrame, what: str) -> str:
    constant = constant_axes(results.to_dict("records"))
    constant.pop("backend", None)
    described = describe_constant(constant)
    return f"{what}: {described}" if described else what


def speedup_figure(results: pd.DataFrame) -> Any:
    """Measured speedup against MAC reduction, one point per configuration and backend, with
    its 95% interval; y = x where latency fell as much as MACs, y = 1 where separable breaks
    even."""
    plt = matplotlib_pyplot()
    ok = measured_pairs(results)
    if ok.empty:
        raise PlotError("no configuration has a measured speedup to plot")
    fig, ax = plt.subplots(figsize=FIGSIZE, dpi=DPI)
    colors = palette(ok)
    for group in _series(ok):
        rows = _of(ok, group)
        low = (rows.speedup - rows.speedup_ci_low).clip(lower=0).fillna(0)
        high = (rows.speedup_ci_high - rows.speedup).clip(lower=0).fillna(0)
        ax.errorbar(
            rows.mac_reduction,
            rows.speedup,
            yerr=[low.to_numpy(), high.to_numpy()],
            fmt=VARIANT_MARKERS["separable"],
            color=colors[group],
            label=_name(ok, group),
            markersize=6,
            capsize=2,
            linewidth=1,
        )
    lo = min(ok.speedup.min(), 1.0) / 1.5
    hi = max(ok.mac_reduction.max(), ok.speedup.max()) * 1.5
    ax.plot(
        [lo, hi], [lo, hi], "--", color="0.5", linewidth=1, label="latency fell as much as MACs"
    )
    ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1, label="break-even (speedup 1)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(max(lo, 0.5), hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel("MAC reduction (standard MACs / separable MACs, x)")
    ax.set_ylabel("measured speedup (standard / separable latency, x)")
    plain_axes(ax)
    ax.set_title(_title(results, "Separable vs standard"), fontsize=10)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def roofline_figure(results: pd.DataFrame, calibrations: list[Mapping[str, Any]]) -> Any:
    """Both variants of every inference configuration on the calibrated roofline (one panel
    per device and thread count), with an arrow from standard to separable."""
    plt = matplotlib_pyplot()
    if not calibrations:
        raise PlotError(
            "this run has no calibration (run.json 'calibration'); run `dscbench calibrate` "
            "before the run, or `dscbench run --calibrate`"
        )
    rows = results[
        (results["mode"] == "inference")
        & results.latency_median_s.notna()
        & results.bytes.notna()
        & results.achieved_flops_per_s.notna()
    ]
    found = {
        where: _roof_index(calibrations, *where)
        for where in dict.fromkeys(zip(rows.device, rows.threads, rows.device_name, strict=True))
    }
    roof_at = np.array(
        [found[w] for w in zip(rows.device, rows.threads, rows.device_name, strict=True)],
        dtype=int,
    )
    panels = [
        (device, int(threads), index)
        for device, threads, index in dict.fromkeys(
            zip(rows.device, rows.threads, roof_at, strict=True)
        )
        if index >= 0
    ]
    if not panels:
        raise PlotError("no measured inference row matches a calibration of this run")
    fig, axes = plt.subplots(
        1, len(panels), figsize=(FIGSIZE[0] * min(len(panels), 2), FIGSIZE[1]), dpi=DPI,
        squeeze=False,
    )  # fmt: skip
    colors = palette(rows)
    for ax, (device, threads, index) in zip(axes[0], panels, strict=True):
        roof = calibrations[index]
        mine = rows[(rows.device == device) & (rows.threads == threads) & (roof_at == index)]
        intensity = mine.flops.astype(float) / mine.bytes.astype(float)
        achieved = mine.achieved_flops_per_s.astype(float) / 1e9  # GFLOP/s
        x_lo, x_hi = intensity.min() / 3, intensity.max() * 3
        bandwidth = float(roof["peak_bytes_per_s"])
        xs = np.logspace(math.log10(x_lo), math.log10(x_hi), 200)
        for dtype in dict.fromkeys(mine.dtype):
            peak = roof["peak_flops_per_s"].get(dtype)
            if peak is None:
                continue
            roof_line = np.minimum(peak, xs * bandwidth) / 1e9
            ax.plot(xs, roof_line, color="0.2", linewidth=1.5)
            ax.text(x_hi, peak / 1e9, f" {dtype} peak {peak / 1e9:.0f} GFLOP/s", fontsize=7,
                    va="bottom", ha="right")  # fmt: skip
        ax.text(
            x_lo, x_lo * bandwidth / 1e9, f" DRAM {bandwidth / 1e9:.0f} GB/s", fontsize=7,
            rotation=0, va="bottom",
        )  # fmt: skip
        _roofline_points(ax, mine.assign(intensity=intensity, achieved=achieved), colors)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("arithmetic intensity (FLOP per byte moved)")
        ax.set_ylabel("achieved GFLOP/s (conv FLOPs / median latency)")
        plain_axes(ax)
        where = f"{threads} thread(s)" if device == "cpu" else "GPU"
        ax.set_title(f"{roof['device_name']}, {where}", fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
    _legend(axes[0][0], rows, colors)
    fig.suptitle(_title(results, "Roofline: standard (filled) to separable (open)"), fontsize=10)
    fig.tight_layout()
    return fig


ARROWS_UP_TO = 300  # pairs drawn with arrowheads; beyond, plain segments (fast)


def _roof_index(
    calibrations: list[Mapping[str, Any]], device: str, threads: Any, device_name: str
) -> int:
    """Which calibration is the roof of rows on ``device`` at ``threads``: the last one for that
    device and thread count (roofline.roofs), or of several (runs of other machines) the last
    one of the rows' device model; -1 for none."""
    threads = 0 if device == "cuda" else int(threads)
    same = [
        i
        for i, c in enumerate(calibrations)
        if c.get("device") == device and int(c.get("threads", -1)) == threads
    ]
    named = [i for i in same if calibrations[i].get("device_name") == device_name]
    return (named or same or [-1])[-1]


def _roofline_points(ax: Any, rows: pd.DataFrame, colors: Mapping[tuple, str]) -> None:
    """Standard (filled) and separable (open) points per series, joined standard -> separable:
    arrows for a readable number of pairs, one line collection beyond that."""
    from matplotlib.collections import LineCollection

    key = [*_keys(rows), "config_id"]
    std = rows[rows.variant == "standard"].set_index(key)[["intensity", "achieved"]]
    sep = rows[rows.variant == "separable"].set_index(key)[["intensity", "achieved"]]
    joined = std.merge(
        sep, left_index=True, right_index=True, how="inner", suffixes=("_std", "_sep")
    ).reset_index()
    for series in _series(rows):
        group = _of(rows, series)
        color = colors[series]
        for variant in ("standard", "separable"):
            mine = group[group.variant == variant]
            ax.scatter(
                mine.intensity, mine.achieved, marker=VARIANT_MARKERS[variant], s=30, zorder=3,
                facecolors=color if variant == "standard" else "none", edgecolors=color,
            )  # fmt: skip
        pairs_ = _of(joined, series)
        segments = [
            [(a, b), (c, d)]
            for a, b, c, d in pairs_[
                ["intensity_std", "achieved_std", "intensity_sep", "achieved_sep"]
            ].itertuples(index=False)
        ]
        if len(joined) <= ARROWS_UP_TO:
            for start, end in segments:
                ax.annotate(
                    "", xy=end, xytext=start,
                    arrowprops={"arrowstyle": "->", "color": color, "alpha": 0.5, "lw": 0.8},
                )  # fmt: skip
        else:
            ax.add_collection(LineCollection(segments, colors=color, alpha=0.3, linewidths=0.5))


def plain_axes(ax: Any) -> None:
    """Log-axis tick labels as plain numbers (0.5, 10, 200) instead of powers of ten; minor
    ticks unlabelled."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    for axis in (ax.xaxis, ax.yaxis):
        if axis.get_scale() == "log" and axis is ax.yaxis:
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda value, _pos: f"{value:g}"))
        axis.set_minor_formatter(NullFormatter())


def _legend(ax: Any, rows: pd.DataFrame, colors: Mapping[tuple, str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], marker="s", linestyle="", color=colors[g], label=_name(rows, g))
        for g in _series(rows)
    ]
    handles += [
        Line2D([], [], marker="o", linestyle="", color="0.3", label="standard"),
        Line2D([], [], marker="^", linestyle="", markerfacecolor="none", color="0.3",
               label="separable"),
    ]  # fmt: skip
    ax.legend(handles=handles, fontsize=7, loc="lower right")


def latency_figure(results: pd.DataFrame) -> Any:
    """Latency against input channels, per kernel size (marker), both variants (solid:
    standard, dashed: separable), one panel per backend."""
    plt = matplotlib_pyplot()
    rows = results[(results.status == "ok") & results.latency_median_s.notna()]
    rows = rows[rows.kernel.notna()]
    if rows.empty:
        raise PlotError("no measured layer rows (network rows have no channel axis)")
    rows = rows.assign(kernel_shape=kernel_shapes(rows))
    fig, axes, backends, kernels = _backend_panels(plt, rows)
    colors = palette(rows)
    for ax, group in zip(axes[0], backends, strict=True):
        mine = _of(rows, group)
        color = colors[group]
        for kernel in kernels:
            marker = KERNEL_MARKERS[kernels.index(kernel) % len(KERNEL_MARKERS)]
            for variant, style in (("standard", "-"), ("separable", "--")):
                line = mine[(mine.kernel_shape == kernel) & (mine.variant == variant)]
                line = line.groupby("in_channels").latency_median_s.median().sort_index()
                if line.empty:
                    continue
                ax.plot(
                    line.index, line.to_numpy() * 1e6, style, marker=marker, color=color,
                    markerfacecolor=color if variant == "standard" else "none",
                    label=f"{_shape_label(kernel)} {variant}",
                )  # fmt: skip
    return _finish_panels(fig, axes, rows, backends, results,
                          "latency per iteration (us, median)", "Latency by channels")  # fmt: skip


def breakeven_figure(results: pd.DataFrame) -> Any:
    """Speedup against input channels per kernel size, one panel per backend, with the
    break-even channel count (where separable starts winning) marked."""
    plt = matplotlib_pyplot()
    ok = measured_pairs(results)
    ok = ok[ok.kernel.notna()]
    if ok.empty:
        raise PlotError("no measured layer rows to find a break-even in")
    ok = ok.assign(kernel_shape=kernel_shapes(ok))
    entries = {(b.run, b.machine, b.backend, b.env, b.shape): b for b in break_even(results)}
    fig, axes, backends, kernels = _backend_panels(plt, ok)
    colors = palette(ok)
    for ax, group in zip(axes[0], backends, strict=True):
        mine = _of(ok, group)
        color = colors[group]
        fields = dict(zip(_keys(ok), group, strict=True))
        for kernel in kernels:
            curve = mine[mine.kernel_shape == kernel].groupby("in_channels").speedup.median()
            if curve.empty:
                continue
            marker = KERNEL_MARKERS[kernels.index(kernel) % len(KERNEL_MARKERS)]
            entry = entries.get(
                (
                    str(fields.get("run", "")),
                    str(fields.get("machine", "")),
                    *group[-2:],
                    kernel,
                )
            )
            label = f"{_shape_label(kernel)}: " + (entry.describe() if entry else "")
            ax.plot(curve.index, curve.to_numpy(), "-", marker=marker, color=color, label=label,
                    alpha=0.6 + 0.4 * (kernels.index(kernel) == 0))  # fmt: skip
            if entry is not None and entry.status == "crosses":
                ax.axvline(entry.channels, color=color, linestyle=":", linewidth=1)
        ax.axhline(1.0, color="0.3", linestyle=":", linewidth=1)
    return _finish_panels(fig, axes, ok, backends, results,
                          "speedup of separable (x; above 1 it wins)",
                          "Where separable starts to win")  # fmt: skip


def _shape_label(shape: str) -> str:
    """A curve's kernel in a legend: 'k3' for a plain 3x3 (as always), else the shape."""
    side = shape.split("x")[0]
    return f"k{side}" if shape == f"{side}x{side}" else shape


def _backend_panels(plt: Any, rows: pd.DataFrame) -> tuple[Any, Any, list, list[str]]:
    """A figure with one panel per series (backend and environment, and run and machine where
    ``rows`` has them) of ``rows``, the series, and the kernel shapes (``kernel_shape``)."""
    backends = _series(rows)
    fig, axes = plt.subplots(
        1, len(backends), figsize=(4.2 * len(backends) + 1, FIGSIZE[1]), dpi=DPI,
        sharey=True, squeeze=False,
    )  # fmt: skip
    return fig, axes, backends, shape_order(rows)


def _finish_panels(
    fig: Any,
    axes: Any,
    rows: pd.DataFrame,
    backends: list,
    results: pd.DataFrame,
    ylabel: str,
    title: str,
) -> Any:
    """Channels on a log2 axis, a title per series, one y label, the figure's title."""
    for ax, group in zip(axes[0], backends, strict=True):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input channels")
        ax.set_title(_name(rows, group), fontsize=9)
        ax.grid(True, which="both", alpha=0.25)
        ax.legend(fontsize=7)
        plain_axes(ax)
    axes[0][0].set_ylabel(ylabel)
    fig.suptitle(_title(results, title), fontsize=10)
    fig.tight_layout()
    return fig


def figure(kind: str, results: pd.DataFrame, calibrations: list[Mapping[str, Any]]) -> Any:
    if kind == "speedup":
        return speedup_figure(results)
    if kind == "roofline":
        return roofline_figure(results, calibrations)
    if kind == "latency":
        return latency_figure(results)
    if kind == "breakeven":
        return breakeven_figure(results)
    raise PlotError(f"--kind {kind!r}: not one of {', '.join(KINDS)}")


def save(fig: Any, path: Path) -> None:
    fmt = path.suffix.lstrip(".").lower()
    if fmt not in FORMATS:
        raise PlotError(f"-o {path}: the file must end in .png, .svg or .pdf")
    try:
        fig.savefig(path, format=fmt)
    except OSError as exc:
        raise PlotError(f"-o {path}: cannot write ({exc.strerror or exc})") from None
    finally:
        matplotlib_pyplot().close(fig)


def to_bytes(fig: Any, fmt: str) -> bytes:
    """The figure as ``fmt``; SVG without a creation date and with fixed element ids, so the
    same results give the same bytes (the HTML report's golden tests)."""
    import matplotlib

    buffer = io.BytesIO()
    try:
        with matplotlib.rc_context({"svg.hashsalt": "dscbench"}):
            fig.savefig(buffer, format=fmt, metadata={"Date": None} if fmt == "svg" else None)
    finally:
        matplotlib_pyplot().close(fig)
    return buffer.getvalue()
