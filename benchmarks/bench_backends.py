"""Benchmarks behind the targets of the backends issue. Run with `nox -s bench -- backends`.

Parts (pass names to run a subset; default all):
  ort-prep   onnxruntime-cpu preparation per model (ONNX graph from the torch weights, session,
             I/O binding) over every layer of the quick and mobilenet-v1 presets, both
             variants: median and max seconds (target: median < 0.2 s).
  all        `dscbench run --backend all` on the quick preset: wall time, the share outside
             measurement with compile time excluded (target <= 15%), compile time on its own,
             and the README's table of torch-cpu vs onnxruntime-cpu vs torch-compile-cpu.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import dscbench, run_parts

from dscbench.labels import shape_label


def ort_prep() -> list[str]:
    from dscbench import backends, spec

    backend = backends.create("onnxruntime-cpu")
    cases = []
    for preset in ("quick", "mobilenet-v1"):
        cases += spec.load_preset(preset).cases(default_threads=1)
    times = []
    for case in dict.fromkeys(cases):
        for variant in spec.VARIANTS:
            start = time.perf_counter()
            prepared = backend.prepare(case.spec, variant, seed=0)
            times.append(time.perf_counter() - start)
            del prepared
    median = statistics.median(times)
    return [
        "## ort-prep: onnxruntime-cpu preparation per model (graph + session + I/O binding)",
        f"- {len(times)} models (quick and mobilenet-v1 presets, both variants): median "
        f"{median * 1e3:.1f} ms (target: median < 200 ms); max after the first "
        f"{max(times[1:]) * 1e3:.1f} ms; the first took {times[0] * 1e3:.0f} ms, which includes "
        "onnxruntime's one-time start-up in the process",
    ]


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:.0f}"


def comparison_tables(table: pd.DataFrame) -> list[str]:
    """Markdown: speedup per backend side by side, then latencies per backend."""
    std = table[table.variant == "standard"].set_index(["config_id", "backend"])
    sep = table[table.variant == "separable"].set_index(["config_id", "backend"])
    names = list(dict.fromkeys(table.backend))
    configs = list(dict.fromkeys(table.config_id))
    speed = ["| layer | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    latency = [
        "| layer | " + " | ".join(f"{n} std / sep (us)" for n in names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    for config in configs:
        first = sep.loc[(config, names[0])]
        cells, lat = [], []
        for name in names:
            row = sep.loc[(config, name)]
            if row.status != "ok":
                cells.append(row.status)
                lat.append(row.status)
                continue
            cells.append(
                f"{row.speedup:.2f}x [{row.speedup_ci_low:.2f}, {row.speedup_ci_high:.2f}]"
            )
            lat.append(
                f"{_us(std.loc[(config, name)].latency_median_s)} / {_us(row.latency_median_s)}"
            )
        speed.append(f"| {shape_label(first)} | " + " | ".join(cells) + " |")
        latency.append(f"| {shape_label(first)} | " + " | ".join(lat) + " |")
    gm = []
    for name in names:
        ok = sep.xs(name, level="backend")
        ok = ok[ok.status == "ok"]
        gm.append(f"**{statistics.geometric_mean(ok.speedup):.2f}x**")
    speed.append("| geometric mean | " + " | ".join(gm) + " |")
    return ["Speedup of separable over standard (95% t interval over rounds):", "", *speed,
            "", "Median latency, standard / separable, microseconds:", "", *latency]  # fmt: skip


def all_backends() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        wall = dscbench("--preset", "quick", "--backend", "all", "-o", str(out))
        meta = json.loads((out / "run.json").read_text())
        table = pd.read_parquet(out / "results.parquet")
    t = meta["timings"]
    compile_s = t["compile_s"]
    measuring = t["timed_s"] + t["warmup_s"]
    rest = wall - measuring - compile_s
    backends = ", ".join(meta["backends"])
    versions = {name: info["versions"] for name, info in meta["backends"].items()}
    return [
        f"## all: `dscbench run --preset quick --backend all` ({backends})",
        f"- process wall time: {wall:.1f} s, of which compiling {compile_s:.1f} s "
        f"(torch.compile, reported apart, not part of any latency)",
        f"- in timed blocks {t['timed_s']:.1f} s, warm-up {t['warmup_s']:.1f} s",
        f"- outside measurement, compile excluded (start-up, imports, preparing "
        f"{t['prepare_s']:.2f} s, parity {t['parity_s']:.2f} s, counting "
        f"{t['counting_s']:.2f} s, writing {t['write_s']:.2f} s): {rest:.1f} s = "
        f"{rest / (wall - compile_s):.1%} of wall without compile (target <= 15%)",
        f"- statuses: {table.status.value_counts().to_dict()}; worst parity error "
        f"{table.parity_max_rel_err.max():.2g} (float32 tolerance 1e-3)",
        f"- versions: {json.dumps(versions)}",
        f"- threads: {sorted(set(table.threads))}; device: {table.device_name.iloc[0]}",
        "",
        *comparison_tables(table),
    ]


PARTS = {"ort-prep": ort_prep, "all": all_backends}

if __name__ == "__main__":
    run_parts(PARTS, sys.argv[1:])
