"""Benchmarks behind the targets of the model-twins issue (issue 9). Run with
`nox -s bench -- models [default table flops]`; prints the markdown of REPORT-models.md.

Parts (default all):
  default  `dscbench run --model mobilenet-v1` as a user types it (1.0/224, batch 1, both
           variants, inference, torch-cpu): wall time (target under 2 minutes on 2 cores).
  table    one run of MobileNetV1 1.0/224, MobileNetV2 1.0/224 and the article's network, each
           against its twin, inference and training: params, MACs, latency, peak memory, next to
           the papers' published mult-adds and params.
  flops    training FLOPs per step of single layers: dscbench's closed form, a brute-force count
           (explicit loops, tests/test_training.py) and torch's FlopCounterMode.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from reporting import ROOT, dscbench, load, main

sys.path.insert(0, str(ROOT))  # tests.test_training's brute-force counter


def default() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        before = load()
        wall = dscbench("run", "-q", "--model", "mobilenet-v1", "-o", str(out))
        meta = json.loads((out / "run.json").read_text())
        table = pd.read_parquet(out / "results.parquet")
    t = meta["timings"]
    sep = table[table.variant == "separable"].iloc[0]
    return [
        "## default: `dscbench run --model mobilenet-v1`",
        f"- process wall time {wall:.1f} s (target: under 2 minutes on 2 cores); {before}",
        f"- timed blocks {t['timed_s']:.1f} s, building {t['prepare_s']:.1f} s, parity "
        f"{t['parity_s']:.1f} s, counting and memory {t['counting_s']:.1f} s, worker start "
        f"{t['worker_start_s']:.1f} s",
        f"- speedup {sep.speedup:.2f}x [{sep.speedup_ci_low:.2f}, {sep.speedup_ci_high:.2f}] "
        f"against a MAC reduction of {sep.mac_reduction:.2f}x; round spread "
        f"{meta['round_spread']:.1%}",
    ]


def _published(model: str, row: pd.Series) -> tuple[str, str]:
    from dscbench.models import CATALOG

    info = CATALOG.get(model)
    if info is None:
        return "-", "-"
    side = int(row.input_shape.split("x")[1])
    pub = info.published.get((variant_of(row), float(row.width_mult), side))
    if pub is None:
        return "-", "-"
    return f"{pub.macs / 1e6:.0f}M", f"{pub.params / 1e6:.1f}M"


def variant_of(row: pd.Series) -> str:
    return str(row.name[-1]) if isinstance(row.name, tuple) else str(row.variant)


def _latency(r: pd.Series) -> str:
    from dscbench.export.units import format_seconds

    return f"{format_seconds(r.latency_median_s)} ±{r.latency_iqr_s / r.latency_median_s:.0%}"


def _speedup(r: pd.Series) -> str:
    return f"{r.speedup:.2f}x [{r.speedup_ci_low:.2f}, {r.speedup_ci_high:.2f}]"


TABLE_ARGS = [
    "--model",
    "mobilenet-v1,mobilenet-v2,article",
    "--mode",
    "inference,training",
    "--min-time",
    "3",
]


def table() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        before = load()
        wall = dscbench("run", "-q", *TABLE_ARGS, "-o", str(out))
        after = load()
        meta = json.loads((out / "run.json").read_text())
        rows = pd.read_parquet(out / "results.parquet")
    lines = [
        f"## table: `dscbench run {' '.join(TABLE_ARGS)}`",
        f"{wall:.0f} s; {meta['n_configurations']} configurations x 2 variants, "
        f"{rows.threads.iloc[0]} threads, torch-cpu, batch 1, float32; rounds disagreed by "
        f"{meta['round_spread']:.1%} (median over rows); {before} before, {after} after.",
        "",
        "| model | variant | params | MACs | published params / MACs | inference | training "
        "step (SGD) | peak memory inference / training | speedup inference / training |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    from dscbench.export.units import format_bytes, format_count

    keyed = rows.set_index(["model", "mode", "variant"])
    for model in dict.fromkeys(rows.model):
        for variant in ("standard", "separable"):
            inf = keyed.loc[(model, "inference", variant)]
            tr = keyed.loc[(model, "training", variant)]
            pub_macs, pub_params = _published(model, inf)
            speeds = "" if variant == "standard" else f"{_speedup(inf)} / {_speedup(tr)}"
            label = model if model == "article" else f"{model} 1.0/224"
            lines.append(
                f"| {label} | {variant} | {format_count(inf.params)} | {format_count(inf.macs)}"
                f" | {pub_params} / {pub_macs} | {_latency(inf)} | {_latency(tr)} | "
                f"{format_bytes(inf.peak_memory_bytes)} / {format_bytes(tr.peak_memory_bytes)} "
                f"| {speeds} |"
            )
    sep = rows[rows.variant == "separable"]
    lines += [
        "",
        "MAC reduction vs measured speedup (separable over standard):",
        *[
            f"- {r.model} {r['mode']}: {r.mac_reduction:.2f}x fewer MACs, speedup "
            f"{r.speedup:.2f}x (efficiency {r.efficiency:.0%}); separable's FLOPs per timed "
            f"iteration {format_count(r.step_flops)}"
            for _, r in sep.iterrows()
        ],
        f"- parity: {int(rows.parity_max_rel_err.notna().sum())} outputs checked against "
        f"float64, worst relative error {rows.parity_max_rel_err.max():.1e}",
    ]
    return lines


FLOP_LAYERS = [  # (label, C_in, C_out, groups, stride, input needs a gradient)
    ("depthwise 3x3, 16 ch, 8x8, s1, input is data", 16, 16, 16, 1, False),
    ("depthwise 3x3, 16 ch, 8x8, s1, input needs grad", 16, 16, 16, 1, True),
    ("depthwise 3x3, 16 ch, 8x8, s2, input needs grad", 16, 16, 16, 2, True),
    ("dense 3x3, 16->16, 8x8, s1, input needs grad", 16, 16, 1, 1, True),
    ("pointwise 1x1, 16->32, 8x8, input needs grad", 16, 32, 1, 1, True),
]


def flops() -> list[str]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dscbench import counting
    from tests.test_training import brute_force_conv

    lines = [
        "## flops: training FLOPs per step of one layer (forward + gradients)",
        "",
        "| layer | closed form | brute force | FlopCounterMode | FlopCounterMode / exact |",
        "|---|---|---|---|---|",
    ]
    rng = np.random.default_rng(0)
    for label, cin, cout, groups, stride, needs_grad in FLOP_LAYERS:
        k = 1 if "1x1" in label else 3
        pad, side = k // 2, 8
        ho = (side + 2 * pad - k) // stride + 1
        x = rng.standard_normal((1, cin, side, side))
        w = rng.standard_normal((cout, cin // groups, k, k))
        dy = rng.standard_normal((1, cout, ho, ho))
        _, _, _, c = brute_force_conv(x, w, dy, stride, pad, groups)
        brute = 2 * (c["forward"] + c["weight_grad"] + (c["input_grad"] if needs_grad else 0))
        fwd = counting.conv_macs(1, cin, cout, k, (ho, ho), groups)
        closed = 2 * counting.training_macs(fwd, needs_grad)
        xt = torch.tensor(x, dtype=torch.float32, requires_grad=needs_grad)
        conv = torch.nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False)
        with FlopCounterMode(display=False) as counter:
            conv(xt).backward(torch.tensor(dy, dtype=torch.float32))
        torch_flops = counter.get_total_flops()
        lines.append(
            f"| {label} | {closed:,} | {brute:,} | {torch_flops:,} | {torch_flops / closed:.2f} |"
        )
    lines.append(
        "\nFLOPs = 2 x MACs. The brute-force count performs every multiply-accumulate of the "
        "forward, the input gradient and the weight gradient in explicit loops (and matches "
        "autograd's values, tests/test_training.py)."
    )
    return lines


PARTS = {"default": default, "table": table, "flops": flops}

TITLE = "Benchmark report: model twins and training (issue 9)"

if __name__ == "__main__":
    main(TITLE, "bench_models.py", "models", PARTS)
