"""``dscbench predict``'s output: per layer of each twin, the predicted latency and (where a run
measured that layer) the measured one with the error; the convs' sum, the other ops' cost
(stated apart), the predicted total against the measured network; the hit rates within 10% and
15% (nn-Meter's measure) and each predictor's cross-validated score."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from dscbench.export.units import format_bytes, format_seconds
from dscbench.predict.fit import FOLDS

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console

VARIANTS = ("standard", "separable")


def document(
    spec: Any,
    group: Any,
    fits: dict[str, Any],
    prediction: Any,
    measured: pd.DataFrame,
    fitted_from: str,
    against: str,
) -> dict[str, Any]:
    """Everything ``predict`` reports, JSON-ready: ``layers`` and ``total`` per variant."""
    from dscbench.predict.apply import hit_rates, measured_layers, measured_network

    layers, total, measured_total, rates = {}, {}, {}, {}
    for v in VARIANTS:
        found = prediction.layers[v]
        seen = measured_layers(measured, group, found)
        layers[v] = [
            {
                "layer": layer.label(),
                "modules": layer.name,
                "kind": layer.kind,
                "predicted_s": p,
                "measured_s": m,
            }
            for layer, p, m in zip(found, prediction.seconds[v], seen, strict=True)
        ]
        total[v] = prediction.total(v)
        measured_total[v] = measured_network(measured, spec, group, v)
        rates[v] = hit_rates(prediction.seconds[v], seen)
    both = [x for v in VARIANTS for x in layers[v] if x["kind"] != "unsupported"]
    return {
        "model": spec.model,
        "config_id": spec.config_id,
        "group": group.describe(),
        "from": fitted_from,
        "against": against,
        "method": {v: f.method for v, f in fits.items()},
        "cross_validation": {
            v: {m: s.to_json() for m, s in f.scores.items()} | {"layers": f.n}
            for v, f in fits.items()
        },
        "layers": layers,
        "convs": {v: prediction.convs(v) for v in VARIANTS},
        "other_ops": {
            v: {
                "modules": prediction.other[v].count,
                "bytes": prediction.other[v].bytes,
                "seconds": prediction.other_seconds[v],
                "costed_as": prediction.cost.source,
                "by_kind": {
                    kind: {"modules": n, "seconds": seconds}
                    for (kind, n), seconds in zip(
                        prediction.other[v].counts().items(),
                        prediction.other[v].seconds(prediction.cost).values(),
                        strict=True,
                    )
                },
            }
            for v in VARIANTS
        },
        "total": total,
        "total_leaves_out": {v: prediction.left_out(v) for v in VARIANTS},
        "measured_total": measured_total,
        "hit_rate": rates,
        "hit_rate_all": _all_rates(both),
        "unsupported": {
            v: [x["layer"] for x in layers[v] if x["kind"] == "unsupported"] for v in VARIANTS
        },
    }


def _all_rates(entries: list[dict[str, Any]]) -> dict[str, float]:
    from dscbench.predict.apply import hit_rates

    return hit_rates([e["predicted_s"] for e in entries], [e["measured_s"] for e in entries])


def _error(p: float, m: float) -> str:
    return f"{p / m - 1:+.1%}" if math.isfinite(p) and math.isfinite(m) and m > 0 else "-"


def _s(v: float) -> str:
    return format_seconds(v) if math.isfinite(v) else "-"


KIND_WORDS = {"batchnorm": "batch norm", "relu": "activations", "copy": "others"}


def _kinds(by_kind: dict[str, Any]) -> str:
    return ", ".join(
        f"{x['modules']} {KIND_WORDS.get(k, k)} {_s(x['seconds'])}" for k, x in by_kind.items()
    )


def print_tables(doc: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    for v in VARIANTS:
        t = Table(
            title=f"{doc['model']} ({v}) on {doc['group']}: predicted by "
            f"{doc['method'].get(v, '?')}",
            title_justify="left",
        )
        for name in ("#", "layer", "kind", "predicted", "measured", "error"):
            t.add_column(name, justify="left" if name in ("layer", "kind") else "right")
        for i, x in enumerate(doc["layers"][v]):
            t.add_row(
                str(i),
                x["layer"],
                x["kind"],
                _s(x["predicted_s"]),
                _s(x["measured_s"]),
                _error(x["predicted_s"], x["measured_s"]),
            )
        other = doc["other_ops"][v]
        t.add_row("", "convs (sum)", "", _s(doc["convs"][v]), "", "")
        t.add_row(
            "",
            f"other ops ({other['modules']} modules moving {format_bytes(other['bytes'])}: "
            f"{_kinds(other['by_kind'])}; {other['costed_as']})",
            "",
            _s(other["seconds"]),
            "",
            "",
        )
        t.add_row(
            "",
            "total" + (" (partial: see the notes)" if doc["total_leaves_out"][v] else ""),
            "",
            _s(doc["total"][v]),
            _s(doc["measured_total"][v]),
            _error(doc["total"][v], doc["measured_total"][v]),
        )
        console.print(t)
        rates = doc["hit_rate"][v]
        if rates["layers"]:
            console.print(
                f"{v}: {rates['within_10']:.0%} of {rates['layers']} measured layers "
                f"within 10%, {rates['within_15']:.0%} within 15%",
                highlight=False,
            )
    for v, scores in doc["cross_validation"].items():
        parts = [
            f"{m} {s['within_15']:.0%} within 15% (mean |log error| {s['mean_abs_log_error']:.3f})"
            for m, s in scores.items()
            if m != "layers"
        ]
        console.print(
            f"cross-validation, {v} ({scores['layers']} layers, {FOLDS} folds): "
            + "; ".join(parts),
            highlight=False,
        )
    for v in VARIANTS:
        for what in doc["total_leaves_out"][v]:
            console.print(f"note: the {v} total leaves out {what}", highlight=False)
