"""Benchmarks behind the targets of the reports/plots/roofline issue (issue 10). Run with
`nox -s bench -- reports [calibration roofline speed]`; prints the markdown of
REPORT-reports.md.

Parts (default all):
  calibration  `dscbench calibrate` five times: peak FLOP/s per dtype and bandwidth, with the
               spread within each calibration and across the five.
  roofline     `dscbench run --calibrate -o results/readme-plots` (the quick preset): the share
               of the roofline standard and separable rows reach, and the README's plots drawn
               from that one run into docs/img/.
  speed        `dscbench report` (markdown, html) and `dscbench plot` (each kind) on a 10,000-row
               result set made from that run (targets: report < 5 s, plot < 10 s).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from reporting import ROOT, dscbench, load, main

PLOTS_RUN = ROOT / "results" / "readme-plots"
IMAGES = ROOT / "docs" / "img"
README_PLOTS = ("speedup", "roofline", "breakeven")


def calibration() -> list[str]:
    from dscbench import calibrate

    runs = []
    for _ in range(5):
        result = calibrate.calibrate("cpu")
        runs.append(result)
    first = runs[0]
    lines = [
        f"## calibration: `dscbench calibrate`, five times ({first.device_name}, "
        f"{first.threads} threads)",
        "",
        "| roof | kernel | median of 5 calibrations | min | max | spread across | spread "
        "within (median) |",
        "|---|---|---|---|---|---|---|",
    ]
    labels = list(first.compute) + list(first.bandwidth)
    for label in labels:
        group = "compute" if label in first.compute else "bandwidth"
        rates = [getattr(r, group)[label] for r in runs]
        best = np.array([r.best for r in rates])
        within = float(np.median([r.spread for r in rates]))
        unit = 1e9
        kind = "GFLOP/s" if group == "compute" else "GB/s"
        lines.append(
            f"| {group} | {label} | {np.median(best) / unit:.1f} {kind} | "
            f"{best.min() / unit:.1f} | {best.max() / unit:.1f} | "
            f"{(best.max() - best.min()) / np.median(best):.1%} | {within:.1%} |"
        )
    peaks = {d: [r.peak_flops(d) for r in runs] for d in first.dtypes}
    lines.append("")
    lines += [
        f"- peak {d}: median {np.median(v) / 1e9:.0f} GFLOP/s (range "
        f"{min(v) / 1e9:.0f}-{max(v) / 1e9:.0f})"
        for d, v in peaks.items()
    ]
    bw = [r.peak_bandwidth for r in runs]
    lines.append(
        f"- memory bandwidth: median {np.median(bw) / 1e9:.1f} GB/s (range "
        f"{min(bw) / 1e9:.1f}-{max(bw) / 1e9:.1f}); {load()} after"
    )
    return lines


def roofline() -> list[str]:
    if PLOTS_RUN.exists():
        shutil.rmtree(PLOTS_RUN)
    before = load()
    wall = dscbench("run", "--calibrate", "-q", "-o", str(PLOTS_RUN))
    table = pd.read_parquet(PLOTS_RUN / "results.parquet")
    meta = json.loads((PLOTS_RUN / "run.json").read_text())
    lines = [
        "## roofline: `dscbench run --calibrate -o results/readme-plots` (quick preset)",
        f"{wall:.0f} s; rounds disagreed by {meta['round_spread']:.1%}; {before} before.",
        "",
        "| variant | rows | compute-bound | memory-bound | roofline fraction median | min | max "
        "| achieved GFLOP/s median |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for variant in ("standard", "separable"):
        rows = table[table.variant == variant]
        f = rows.roofline_fraction
        lines.append(
            f"| {variant} | {len(rows)} | {(rows.roofline_bound == 'compute').sum()} | "
            f"{(rows.roofline_bound == 'memory').sum()} | {f.median():.0%} | {f.min():.0%} | "
            f"{f.max():.0%} | {rows.achieved_flops_per_s.median() / 1e9:.0f} |"
        )
    above = table[table.warnings.str.contains("above_roofline")]
    lines.append(f"\nrows warned above_roofline: {len(above)}")
    IMAGES.mkdir(parents=True, exist_ok=True)
    for kind in README_PLOTS:
        out = IMAGES / f"{kind}.png"
        dscbench("plot", str(PLOTS_RUN), "--kind", kind, "-o", str(out))
        lines.append(f"- `dscbench plot results/readme-plots --kind {kind} -o docs/img/{kind}.png`")
    return lines


def _big_set(source: Path, target: Path, rows: int = 10_000) -> None:
    """A ``rows``-row result set: the source run's pairs repeated with distinct channel counts
    and config ids (their samples too), written as a run directory."""
    from dscbench import results

    loaded = results.load_results(source)
    table, samples = loaded.results, loaded.samples
    copies = int(np.ceil(rows / len(table)))
    parts, sample_parts = [], []
    for i in range(copies):
        t = table.copy()
        t["config_id"] = t.config_id + f"_copy{i}"
        t["in_channels"] = t.in_channels + i  # distinct configurations for break-even
        parts.append(t)
        s = samples.copy()
        s["config_id"] = s.config_id + f"_copy{i}"
        sample_parts.append(s)
    big = pd.concat(parts, ignore_index=True).head(rows)
    keep = set(big.config_id)
    big_samples = pd.concat(sample_parts, ignore_index=True)
    big_samples = big_samples[big_samples.config_id.isin(keep)]
    target.mkdir(parents=True, exist_ok=True)
    results.write_run(target, big, big_samples, loaded.meta)


def speed() -> list[str]:
    if not PLOTS_RUN.exists():
        dscbench("run", "--calibrate", "-q", "-o", str(PLOTS_RUN))
    lines = ["## speed: report and plot on a 10,000-row result set", f"{load()} at the start", ""]
    with tempfile.TemporaryDirectory() as tmp:
        big = Path(tmp) / "big"
        _big_set(PLOTS_RUN, big)
        lines.append("| command | wall (median of 3) | target |")
        lines.append("|---|---|---|")
        commands = [
            (["report", str(big), "-o", str(Path(tmp) / "r.md")], "report --format markdown", 5),
            (
                ["report", str(big), "--format", "html", "-o", str(Path(tmp) / "r.html")],
                "report --format html (4 plots)",
                5,
            ),
        ] + [
            (
                ["plot", str(big), "--kind", k, "-o", str(Path(tmp) / f"{k}.png")],
                f"plot --kind {k}",
                10,
            )
            for k in ("speedup", "roofline", "latency", "breakeven")
        ]
        for args, label, target in commands:
            walls = sorted(dscbench(*args) for _ in range(3))
            verdict = "met" if walls[1] < target else "MISSED"
            lines.append(f"| `dscbench {label}` | {walls[1]:.2f} s | < {target} s ({verdict}) |")
        rows = len(pd.read_parquet(big / "results.parquet"))
    lines.append(f"\n{rows} rows; the wall time includes Python start-up and imports.")
    return lines


PARTS = {"calibration": calibration, "roofline": roofline, "speed": speed}

if __name__ == "__main__":
    main(
        "Benchmark report: calibration, roofline, reports and plots (issue 10)",
        "bench_reports.py",
        "reports",
        PARTS,
    )
