"""Benchmarks behind the targets of issue 23: the accuracy cost and the latency predictor. Run
with `nox -s bench -- predict [parts]`.

Parts (default all; runs are stored in results/bench-predict/, git-ignored;
DSCBENCH_BENCH_STORE points at another store):
  accuracy  `dscbench accuracy` with its defaults (the digits-cnn twins on scikit-learn's
            digits, 5 seeds, 20 epochs): the table, the wall time (target: at most 3 minutes
            on 2 cores), and the same command with 2 seeds again: seeds 0 and 1 must give
            identical accuracies
  predict   one run of benchmarks/predict.toml (102 layers along MobileNet's diagonal, among
            them MobileNetV1's 10 layer shapes, and the whole MobileNetV1; --calibrate for the
            other ops' costs: batch norm and ReLU modules and copies timed by size), then
            `dscbench predict --model mobilenet-v1 --holdout` on it (MobileNetV1's own shapes
            left out of the fit) with each method: per layer predicted against measured, the
            shares within 10% and 15% (target: at least 80% within 15%), and the whole network
            (target: within 15%)

Every figure comes with the load average at its start.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reporting import cli, load, main

STORE = Path(os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-predict"))
AGAIN_SEEDS = 2


def as_json(text: str) -> dict:
    return json.loads(text[text.index("{") : text.rindex("}") + 1])


def accuracy() -> list[str]:
    from dscbench.export.accuracy import document, markdown
    from dscbench.results import load_results
    from dscbench.results.accuracy import load_accuracy

    before = load()
    out = STORE / "accuracy"
    code, wall, _ = cli("accuracy", "-o", str(out), "--force")
    doc = document(*load_accuracy(out), load_results(out).results)
    again = STORE / "accuracy-again"
    _, wall2, _ = cli("accuracy", "--seeds", str(AGAIN_SEEDS), "-o", str(again), "--force")
    first, second = load_accuracy(out)[0], load_accuracy(again)[0]
    keys = ["variant", "seed"]
    joined = first.merge(second, on=keys, suffixes=("", "_again"))
    same = (joined["test_accuracy"] == joined["test_accuracy_again"]).all() and (
        joined["test_loss"] == joined["test_loss_again"]
    ).all()
    acc = doc["accuracy"]
    lines = [
        "## The accuracy trade-off on the bundled digits",
        "",
        f"`dscbench accuracy` (its defaults: `--model digits-cnn --data digits --seeds 5 "
        f"--epochs 20 --threads 1`), {before} at the start: exit {code}, **{wall:.0f} s** wall "
        "(target: at most 180 s on 2 cores), the latency run included.",
        "",
        *markdown(doc),
        "",
        f"- standard {acc['standard']['estimate']:.2%} [{acc['standard']['low']:.2%}, "
        f"{acc['standard']['high']:.2%}], separable {acc['separable']['estimate']:.2%} "
        f"[{acc['separable']['low']:.2%}, {acc['separable']['high']:.2%}] (95% t intervals "
        "over 5 seeds)",
        f"- the same command with `--seeds {AGAIN_SEEDS}` ({wall2:.0f} s): seeds 0 and 1 gave "
        f"{'**identical**' if same else '**different**'} test accuracies and losses for both "
        f"twins ({len(joined)} trainings compared)",
        f"- the Pareto view: {out / 'pareto.png'}",
    ]
    return lines


METHODS = ("auto", "loglinear", "trees", "loglinear+trees")


def predict() -> list[str]:
    before = load()
    run = STORE / "predict-run"
    _, wall, _ = cli("run", "--spec", "benchmarks/predict.toml", "--calibrate", "-o", str(run),
                     "--force", "-q")  # fmt: skip
    docs = {}
    for method in METHODS:
        _, _, text = cli("predict", "--model", "mobilenet-v1", "--from", str(run), "--holdout",
                         "--method", method, "--format", "json")  # fmt: skip
        docs[method] = as_json(text)
    doc = docs["auto"]
    lines = [
        "## Predicting MobileNetV1 from layers it never saw",
        "",
        f"`dscbench run --spec benchmarks/predict.toml --calibrate` ({wall:.0f} s, {before} at "
        "the start): 102 layers along MobileNet's diagonal, among them MobileNetV1's 10 layer "
        "shapes, and the whole MobileNetV1, one thread. Then `dscbench predict --model "
        "mobilenet-v1 --from RUN "
        "--holdout --format json`: fitted without MobileNetV1's shapes, "
        f"{doc['cross_validation']['standard']['layers']} standard and "
        f"{doc['cross_validation']['separable']['layers']} separable rows.",
        "",
        f"Chosen by 5-fold cross-validation: standard **{doc['method']['standard']}**, "
        f"separable **{doc['method']['separable']}**.",
        "",
        *layer_table(doc),
        "",
        *totals(doc),
        copies_line(doc, copies_only(run)),
        "",
        *method_table(docs),
        "",
        *cv_table(doc),
    ]
    return lines


def _err(p, m) -> str:
    ok = p is not None and m is not None and math.isfinite(p) and math.isfinite(m)
    return f"{p / m - 1:+.1%}" if ok else "-"


def _ms(v) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v * 1e3:.3f} ms"


def layer_table(doc: dict) -> list[str]:
    lines = ["| # | layer | standard predicted | measured | error | separable predicted | "
             "measured | error |", "|---:|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for i, (s, p) in enumerate(zip(doc["layers"]["standard"], doc["layers"]["separable"],
                                   strict=True)):  # fmt: skip
        label = s["layer"] if s["layer"] == p["layer"] else f"{s['layer']} / {p['layer']}"
        lines.append(f"| {i} | {label} ({p['kind']}) | {_ms(s['predicted_s'])} | "
                     f"{_ms(s['measured_s'])} | {_err(s['predicted_s'], s['measured_s'])} | "
                     f"{_ms(p['predicted_s'])} | {_ms(p['measured_s'])} | "
                     f"{_err(p['predicted_s'], p['measured_s'])} |")  # fmt: skip
    return lines


def rates(doc: dict) -> tuple[float, float, int, float, float, int]:
    """(within 10%, within 15%, n) over the network's layers (repeats counted, both twins), and
    over distinct shapes."""
    pairs = [(x["predicted_s"], x["measured_s"], x["layer"], x["kind"])
             for v in ("standard", "separable") for x in doc["layers"][v]
             if x["measured_s"] is not None and x["predicted_s"] is not None]  # fmt: skip
    errors = [abs(p / m - 1) for p, m, _, _ in pairs]
    distinct = {(label, kind): abs(p / m - 1) for p, m, label, kind in pairs}
    d = list(distinct.values())

    def share(values, limit):
        return sum(e <= limit for e in values) / len(values) if values else math.nan

    return (share(errors, 0.10), share(errors, 0.15), len(errors), share(d, 0.10),
            share(d, 0.15), len(d))  # fmt: skip


def totals(doc: dict) -> list[str]:
    w10, w15, n, d10, d15, dn = rates(doc)
    lines = [
        f"- MobileNetV1's layers within 15% of their measured latency: **{w15:.0%} of {n}** "
        f"(target: at least 80%); within 10%: **{w10:.0%}** (nn-Meter's measure). Over the "
        f"{dn} distinct layer x twin shapes: {d15:.0%} within 15%, {d10:.0%} within 10%.",
    ]
    for v in ("standard", "separable"):
        other = doc["other_ops"][v]
        total, measured = doc["total"][v], doc["measured_total"][v]
        kinds = ", ".join(
            f"{x['modules']} {KINDS[k]} {_ms(x['seconds'])}" for k, x in other["by_kind"].items()
        )
        alone = [x["measured_s"] for x in doc["layers"][v]]
        known = all(m is not None and math.isfinite(m) for m in alone)
        rest = measured - sum(alone) - other["seconds"] if known else math.nan
        lines.append(
            f"- the whole {v} MobileNetV1: predicted {_ms(total)} (convs {_ms(doc['convs'][v])} "
            f"+ other ops {_ms(other['seconds'])}: {other['modules']} modules moving "
            f"{other['bytes'] / 1e6:.1f} MB ({kinds}), {other['costed_as']}), "
            f"measured {_ms(measured)}: **{_err(total, measured)}** (target: within 15%). "
            f"Its layers measured alone sum to {_ms(sum(alone) if known else math.nan)}; what "
            f"the network took beyond them and the other ops' cost: {_ms(rest)} "
            f"({rest / measured:+.1%} of it)"
        )
    return lines


KINDS = {"batchnorm": "batch norms", "relu": "activations", "copy": "others"}


def copies_only(run: Path) -> dict[str, float]:
    """MobileNetV1's other ops costed as copies alone (how `predict` priced them before the
    module ladder), from the same run's calibration."""
    from dscbench.predict.apply import Ladder, OpCost
    from dscbench.predict.network import other_ops
    from dscbench.results import load_results
    from dscbench.spec import ModelSpec

    meta = load_results(run).meta
    cal = next(c for c in meta["calibration"] if c["device"] == "cpu" and c["threads"] == 1)
    cost = OpCost((("copy", Ladder.of(cal["copy_ladder"])),))
    spec = ModelSpec(batch=1, model="mobilenet-v1", input_shape=(3, 224, 224))
    return {v: sum(other_ops(spec, v).seconds(cost).values()) for v in ("standard", "separable")}


def copies_line(doc: dict, copies: dict[str, float]) -> str:
    total = {v: doc["convs"][v] + copies[v] for v in copies}
    parts = [
        f"{v} {_ms(copies[v])} (total {_err(total[v], doc['measured_total'][v])})"
        for v in ("standard", "separable")
    ]
    return (
        "- the same other ops costed as copies alone (the costing before the module ladder, "
        f"from this run's copy ladder): {', '.join(parts)}"
    )


def method_table(docs: dict) -> list[str]:
    lines = ["Each method forced (`--method`), on the same held-out layers:", "",
             "| method | layers within 10% | within 15% | standard net | separable net |",
             "|---|---:|---:|---:|---:|"]  # fmt: skip
    for method, doc in docs.items():
        w10, w15, *_ = rates(doc)
        nets = [_err(doc["total"][v], doc["measured_total"][v]) for v in ("standard", "separable")]
        name = f"auto ({doc['method']['standard']} / {doc['method']['separable']})" if (
            method == "auto") else method  # fmt: skip
        lines.append(f"| {name} | {w10:.0%} | {w15:.0%} | {nets[0]} | {nets[1]} |")
    return lines


def cv_table(doc: dict) -> list[str]:
    lines = ["Cross-validation on the fitted layers (5 folds; held-out shares):", "",
             "| variant | method | mean abs log error | within 10% | within 15% |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for v, scores in doc["cross_validation"].items():
        for m, s in scores.items():
            if m != "layers":
                lines.append(f"| {v} | {m} | {s['mean_abs_log_error']:.3f} | "
                             f"{s['within_10']:.0%} | {s['within_15']:.0%} |")  # fmt: skip
    return lines


PARTS = {"accuracy": accuracy, "predict": predict}

if __name__ == "__main__":
    main("Accuracy cost and latency prediction", "bench_predict.py", "predict", PARTS)
