"""Benchmarks behind the targets of the cold-cache and new-axes issue (22). Run with
`nox -s bench -- axes [parts]`.

Parts (default all, in this order; runs are stored in results/bench-axes/, git-ignored;
DSCBENCH_BENCH_STORE points at another store):
  cold   one `dscbench run --preset quick --cache warm,cold --threads 1 --calibrate`: per
         configuration and variant, cold / warm latency with a 95% interval (paired by worker
         process: each process timed both in the same round; a t interval on the per-process
         log ratios, round effects out as for every row): every cold row must be at least as
         slow as its warm row within that interval; the cold rows' bandwidth against the DRAM
         bandwidth the run calibrated, both the whole byte model (achieved_bytes_per_s) and
         what each call reads cold (weights and input, cache_copy_bytes): memory-bound cold
         rows must stay at or under it; what the rotation costs a call; each layer's verdict
         warm and cold
  flips  one run of benchmarks/axes.toml: layers near the break-even channel count with each
         new axis varied on its own (a cold cache, dilation 2, depth multiplier 2, a 1-D and a
         3-D layer); each layer's verdict (separable faster, slower, or neither within the 95%
         interval) and where an axis flips it

Every figure comes with the load average at its start.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from reporting import cli, load, main

STORE = Path(os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-axes"))
COLD_RUN = ["--preset", "quick", "--cache", "warm,cold", "--threads", "1", "--calibrate", "-q"]
FLIPS_RUN = ["--spec", "benchmarks/axes.toml", "-q"]


def fresh_run(name: str, args: list[str]) -> tuple[Path, float, str]:
    out = STORE / name
    shutil.rmtree(out, ignore_errors=True)
    STORE.mkdir(parents=True, exist_ok=True)
    before = load()
    _, wall, _ = cli("run", *args, "-o", str(out))
    return out, wall, before


def verdict(row) -> str:
    """The separable row's verdict from its 95% speedup interval."""
    low, high = row["speedup_ci_low"], row["speedup_ci_high"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval"
    if low > 1:
        return "separable faster"
    if high < 1:
        return "separable slower"
    return "neither"


def speedup_cell(row) -> str:
    return f"x{row['speedup']:.2f} [{row['speedup_ci_low']:.2f}, {row['speedup_ci_high']:.2f}]"


def per_process_logs(samples):
    """Per (config_id, variant, process): the mean log latency of its rounds, each round's
    common shift out (stats.remove_round_effects, as every row's estimate has it)."""
    from dscbench.stats import remove_round_effects
    from dscbench.stats.runs import KEY, MIN_ROWS_FOR_SPREAD, round_values

    values = round_values(samples, "latency")
    values = remove_round_effects(values, KEY, "backend", MIN_ROWS_FOR_SPREAD)
    return values.groupby(["config_id", "variant", "process"]).cost.mean()


def paired_ratio(logs, warm: str, cold_: str, variant: str) -> tuple[float, float, float]:
    """cold / warm: exp of the mean per-process log ratio and its 95% t interval (NaN with
    fewer than two processes)."""
    from scipy import stats

    d = (logs.loc[(cold_, variant)] - logs.loc[(warm, variant)]).dropna().to_numpy()
    mean = float(d.mean())
    if len(d) < 2:
        return math.exp(mean), math.nan, math.nan
    half = float(stats.t.ppf(0.975, len(d) - 1)) * float(d.std(ddof=1)) / math.sqrt(len(d))
    return math.exp(mean), math.exp(mean - half), math.exp(mean + half)


def cold() -> list[str]:
    from dscbench import results
    from dscbench.labels import shape_label

    out, wall, before = fresh_run("cold", COLD_RUN)
    rs = results.load_results(out)
    table = rs.results
    (roof,) = [c for c in rs.meta["calibration"] if c["device"] == "cpu"]
    dram = float(roof["peak_bytes_per_s"])
    logs = per_process_logs(rs.samples)
    lines = [
        "## Cold against warm on the quick preset",
        "",
        f"`dscbench run {' '.join(COLD_RUN)}` ({wall:.0f} s with the calibration, {before} at "
        f"the start). The run's calibration: DRAM bandwidth {dram / 1e9:.1f} GB/s (the best "
        "of 5 STREAM-like copy and triad repeats over 512 MiB arrays, 1 thread). A cold row's "
        f"method, for example: {table[table.cache == 'cold'].cache_method.iloc[0]}.",
        "",
        "Per row: the warm and cold medians; cold / warm with its 95% interval (paired by "
        "worker process); the cold row's bandwidth as a share of DRAM's, first its whole "
        "byte model (compulsory bytes / median latency: achieved_bytes_per_s, which counts its "
        "output and a separable twin's intermediate tensor, both of which may stay in cache), "
        "then what its call reads cold (its copy of the weights and input, cache_copy_bytes / "
        "median latency); its roofline bound; the copies it rotated through; what the rotation "
        "adds to a call as a share of the cold latency.",
        "",
        "| layer | variant | warm | cold | cold / warm [95%] | bytes / DRAM | cold reads / "
        "DRAM | bound | copies | rotation |",
        "|---|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    slower_or_same, faster, no_interval, point_faster = 0, [], [], []
    over_dram, reads_over, memory_rows, shares = [], [], 0, []
    warm_rows = table[table.cache == "warm"].set_index(["config_id", "variant"])
    cold_rows = table[table.cache == "cold"].set_index(["config_id", "variant"])
    for (config, variant), w in warm_rows.iterrows():
        c = cold_rows.loc[(config + "_cold", variant)]
        name = f"{shape_label(w)} {variant}"
        ratio, low, high = paired_ratio(logs, config, config + "_cold", variant)
        if not math.isfinite(high):
            no_interval.append(name)
        elif high >= 1:
            slower_or_same += 1
        else:
            faster.append(name)
        if ratio < 1:
            point_faster.append(f"{name} (x{ratio:.3f})")
        share = c["achieved_bytes_per_s"] / dram
        reads = c["cache_copy_bytes"] / c["latency_median_s"] / dram
        if c["roofline_bound"] == "memory":
            memory_rows += 1
            over_dram += [name] if share > 1 else []
            reads_over += [name] if reads > 1 else []
        shares.append(c["cache_rotation_s"] / c["latency_median_s"])
        copies = c["cache_rotated_bytes"] / c["cache_copy_bytes"]
        lines.append(
            f"| {shape_label(w)} | {variant} | {w['latency_median_s'] * 1e6:.0f} us | "
            f"{c['latency_median_s'] * 1e6:.0f} us | x{ratio:.3f} [{low:.3f}, {high:.3f}] | "
            f"{share:.0%} | {reads:.0%} | {c['roofline_bound']} | {copies:.0f} | "
            f"{shares[-1]:.4%} |"
        )
    n = len(warm_rows)

    def listed(names: list[str]) -> str:
        return f": {', '.join(names)}" if names else ""

    lines += [
        "",
        f"- cold at least as slow as warm within its interval (the interval reaches 1 or "
        f"above): **{slower_or_same} of {n} rows**; significantly faster cold: "
        f"{len(faster)}{listed(faster)}; no interval: {len(no_interval)}{listed(no_interval)}",
        f"- point estimates below 1 (cold measured faster, within noise): {len(point_faster)}"
        f"{listed(point_faster)}",
        f"- memory-bound cold rows ({memory_rows} of {n}) whose whole byte model is at or under "
        f"the DRAM bandwidth: **{memory_rows - len(over_dram)}**{listed(over_dram)}; whose "
        f"cold reads are: **{memory_rows - len(reads_over)}**{listed(reads_over)}",
        f"- the rotation's cost per call: at most **{max(shares):.4%}** of a cold row's latency "
        f"(median {float(np.median(shares)):.4%})",
        "",
        *verdict_table(table, "Each layer's verdict warm and cold (this run)"),
    ]
    return lines


def verdict_table(table, title: str) -> list[str]:
    """Per layer and cache, the separable row's speedup with its interval and verdict; a
    layer whose verdict differs between its caches is marked."""
    from dscbench.labels import shape_label

    sep = table[table.variant == "separable"].copy()
    sep["layer"] = [shape_label(r) for _, r in sep.iterrows()]
    lines = [f"### {title}", "", "| layer | warm | cold | flips |", "|---|---|---|---|"]
    for layer, rows in sep.groupby("layer", sort=False):
        by = {r["cache"]: r for _, r in rows.iterrows()}
        if set(by) != {"warm", "cold"}:
            continue
        warm, cold_ = verdict(by["warm"]), verdict(by["cold"])
        lines.append(
            f"| {layer} | {speedup_cell(by['warm'])} {warm} | {speedup_cell(by['cold'])} "
            f"{cold_} | {'**yes**' if warm != cold_ else ''} |"
        )
    return lines


def flips() -> list[str]:
    from dscbench import results

    out, wall, before = fresh_run("flips", FLIPS_RUN)
    table = results.load_results(out).results
    lines = [
        "## Where a new axis flips the verdict",
        "",
        f"`dscbench run {' '.join(FLIPS_RUN)}` ({wall:.0f} s, {before} at the start): 16, 32 "
        "and 64 channels in and out, 3-tap kernels, 1 thread, at 784 positions each: 28x28 "
        "(plain, dilation 2, depth multiplier 2), a 1-D sequence of 784 and a 3-D 4x14x14, "
        "each warm and cold. A verdict is the separable row's 95% speedup interval: above 1 "
        "(separable faster), below 1 (slower), or containing 1 (neither).",
        "",
    ]
    return lines + verdict_table(table, "Each layer's verdict warm and cold")


PARTS = {"cold": cold, "flips": flips}

if __name__ == "__main__":
    main("Cold caches and the new axes", "bench_axes.py", "axes", PARTS)
