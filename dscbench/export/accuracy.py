"""The accuracy trade-off rendered: the twins side by side (test accuracy with its interval
over seeds, training time per epoch, latency), as a rich table, markdown, JSON, and the
Pareto view (accuracy against latency). Reads what ``results/accuracy.py`` loads and the run's
latency rows; no torch."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dscbench.export.units import format_seconds

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

VARIANTS = ("standard", "separable")


def latency_of(results: pd.DataFrame | None) -> dict[str, Any]:
    """The twins' median latency and the speedup with its rerun interval, from a run's rows
    (the first configuration that has both twins measured)."""
    nan = math.nan
    out: dict[str, Any] = {
        "latency_s": {v: nan for v in VARIANTS},
        "speedup": {"estimate": nan, "low": nan, "high": nan},
    }
    if results is None or results.empty:
        return out
    ok = results[results["status"] == "ok"]
    if len(ok):  # the first backend's rows (a run of accuracy's own has one)
        ok = ok[ok["backend"] == ok["backend"].iloc[0]]
    for config, rows in ok.groupby("config_id", sort=False):
        by = rows.set_index("variant")
        if set(VARIANTS) <= set(by.index):
            out["config_id"] = config
            out["latency_s"] = {v: float(by.loc[v, "latency_median_s"]) for v in VARIANTS}
            sep = by.loc["separable"]
            out["speedup"] = {
                "estimate": float(sep["speedup"]),
                "low": float(sep["speedup_rerun_low"]),
                "high": float(sep["speedup_rerun_high"]),
            }
            break
    return out


def document(table: pd.DataFrame, doc: dict[str, Any], results: pd.DataFrame | None) -> dict:
    """Everything the renderings show, as JSON-ready data."""
    from dscbench.accuracy.summary import summarize

    summary = summarize(table)
    params = {
        v: int(table.loc[table["variant"] == v, "params"].max())
        for v in VARIANTS
        if (table["variant"] == v).any()
    }
    return {
        "model": doc.get("model", ""),
        "data": doc.get("data", {}),
        "recipe": doc.get("recipe", {}),
        "seeds": sorted(int(s) for s in table["seed"].unique()),
        "status": doc.get("status", ""),
        "params": params,
        **summary.to_json(),
        **latency_of(results),
    }


def _pct(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.2%}"


def _interval(i: dict[str, float], fmt: Any = _pct, why: str = "one seed") -> str:
    low = i.get("low")
    if low is None or not math.isfinite(low):
        return f"{fmt(i['estimate'])} ({why}: no interval)"
    return f"{fmt(i['estimate'])} [{fmt(i['low'])}, {fmt(i['high'])}]"


def _times(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"x{v:.2f}"


def rows(d: dict[str, Any]) -> list[list[str]]:
    """The side-by-side table's rows: header first."""
    seeds = len(d["seeds"])
    header = [
        "",
        f"test accuracy (95% CI over {seeds} seeds)",
        "train time / epoch",
        "latency (median)",
        "params",
    ]
    out = [header]
    for v in VARIANTS:
        if v not in d["accuracy"] or not d["accuracy"][v]["n"]:
            continue
        out.append(
            [
                v,
                _interval(d["accuracy"][v]),
                format_seconds(d["epoch_time_s"][v]),
                format_seconds(d["latency_s"][v]),
                f"{d['params'].get(v, 0):,}",
            ]
        )
    diff = d["difference"]
    if diff["n"]:
        out.append(
            [
                "separable - standard",
                _interval(diff, lambda x: f"{x * 100:+.2f} pts"),
                _interval(d["epoch_time_ratio"], _times),
                f"speedup {_interval(d['speedup'], _times, 'one round')}",
                "",
            ]
        )
    return out


def rich_table(d: dict[str, Any]) -> Table:
    from rich.table import Table

    lines = rows(d)
    data = d.get("data", {})
    title = f"{d['model']} on {data.get('name', '?')}: the accuracy trade-off"
    t = Table(title=title, title_justify="left")
    for name in lines[0]:
        t.add_column(name, justify="left" if not name else "right")
    for line in lines[1:]:
        t.add_row(*line)
    return t


def markdown(d: dict[str, Any]) -> list[str]:
    lines = rows(d)
    out = ["| " + " | ".join(lines[0]) + " |", "|---" + "|---:" * (len(lines[0]) - 1) + "|"]
    out += ["| " + " | ".join(line) + " |" for line in lines[1:]]
    data, recipe = d.get("data", {}), d.get("recipe", {})
    out += [
        "",
        f"Data: {data.get('source', '?')} ({data.get('train', '?')} training and "
        f"{data.get('test', '?')} test samples, {data.get('classes', '?')} classes). "
        f"Recipe: {recipe_line(recipe)}.",
    ]
    return out


def recipe_line(recipe: dict[str, Any]) -> str:
    if not recipe:
        return "?"
    return (
        f"{recipe['optimizer']} (learning rate {recipe['learning_rate']:g}, weight decay "
        f"{recipe['weight_decay']:g}), batch {recipe['batch_size']}, {recipe['epochs']} "
        f"epochs, {recipe['schedule']} rate, augmentation {recipe['augmentation']}, "
        f"{recipe['selection']}"
    )


def pareto_figure(d: dict[str, Any]) -> Any:
    """Accuracy against latency (the Pareto view): one point per twin, its accuracy interval
    over seeds as the error bar (latency: the run's median; its interval is on the speedup)."""
    from dscbench import plot as plots

    plt = plots.matplotlib_pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for v, marker in zip(VARIANTS, ("s", "o"), strict=True):
        acc, lat = d["accuracy"].get(v), d["latency_s"].get(v, math.nan)
        if not acc or not acc["n"] or not math.isfinite(lat):
            continue
        low, high = acc["low"], acc["high"]
        err = [[(acc["estimate"] - low) * 100], [(high - acc["estimate"]) * 100]]
        ax.errorbar(
            [lat * 1e3],
            [acc["estimate"] * 100],
            yerr=err if math.isfinite(low) else None,
            fmt=marker,
            capsize=4,
            label=v,
        )
    ax.set_xlabel("latency, median (ms)")
    ax.set_ylabel("test accuracy (%), 95% CI over seeds")
    ax.set_title(f"{d['model']} on {d.get('data', {}).get('name', '?')}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    return fig
