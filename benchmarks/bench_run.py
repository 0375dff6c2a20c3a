"""Benchmarks behind the targets of the `dscbench run` issue. Run with `nox -s bench`.

Parts (pass names to run a subset; default all):
  overhead         the default `dscbench run` as a user types it: wall time, and the share of it
                   spent outside measurement (start-up, set-up, counting, writing).
  agreement        dscbench's median vs torch.utils.benchmark's blocked_autorange median on the
                   same module and input, measured interleaved in one process.
  reproducibility  two back-to-back `dscbench run --preset quick` runs: how many configurations'
                   speedups agree within 5%, at --threads 1 and at the default thread count.

Timing numbers are medians and ratios measured side by side in one run, because these machines
are shared and noisy; the printed report is what closing notes quote.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd


def dscbench(*args: str) -> float:
    """Run the CLI as a user would; return the process's wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dscbench", "run", "-q", *args], check=True)
    return time.perf_counter() - start


def overhead() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        wall = dscbench("-o", str(out))
        t = json.loads((out / "run.json").read_text())["timings"]
    measuring = t["timed_s"] + t["warmup_s"]
    return [
        "## overhead: default `dscbench run` (quick preset)",
        f"- process wall time: {wall:.1f} s (target: about a minute)",
        f"- in timed blocks: {t['timed_s']:.1f} s ({t['timed_s'] / wall:.1%}); warm-up and "
        f"calibration: {t['warmup_s']:.2f} s ({t['warmup_s'] / wall:.1%})",
        f"- outside measurement (start-up, imports, set-up, counting, writing): "
        f"{wall - measuring:.2f} s = {(wall - measuring) / wall:.1%} of wall (target <= 10%); "
        f"of which writing {t['write_s']:.2f} s, counting {t['counting_s']:.2f} s, "
        f"preparing modules {t['prepare_s']:.2f} s",
    ]


AGREEMENT_CONFIGS = [
    dict(in_channels=32, out_channels=32, spatial=(56, 56), kernel=3),
    dict(in_channels=128, out_channels=128, spatial=(28, 28), kernel=3),
    dict(in_channels=64, out_channels=64, spatial=(28, 28), kernel=7),
]


def _agree_one(module, x, chunks: int, chunk_s: float) -> tuple[float, float]:
    """(dscbench median, blocked_autorange median) of one module, interleaved chunk by chunk."""
    import torch
    from torch.utils.benchmark import Timer as TorchTimer

    from dscbench.measure import HarnessOptions, Timer, Workload, run_turn, warm_up_and_calibrate

    timer = Timer()
    work = Workload(lambda: module(x), torch.inference_mode)
    n = warm_up_and_calibrate(work, timer, HarnessOptions()).iterations
    ours: list[float] = []

    def measure_chunk() -> None:
        """dscbench's blocks (as a turn times them) until they add up to chunk_s."""
        spent = 0.0
        while spent < chunk_s:
            (block,) = run_turn({"v": work}, timer, [("v", n)]).block_s
            ours.append(block / n)
            spent += block

    reference = TorchTimer(
        stmt="m(x)",
        setup="_guard = torch.inference_mode(); _guard.__enter__()",
        globals={"m": module, "x": x, "torch": torch},
        num_threads=1,
    )
    theirs: list[float] = []
    for chunk in range(chunks):
        steps = [
            measure_chunk,
            lambda: theirs.extend(reference.blocked_autorange(min_run_time=chunk_s).times),
        ]
        for step in steps if chunk % 2 == 0 else steps[::-1]:
            step()
    return float(np.median(ours)), float(np.median(theirs))


def agreement(chunks: int = 6, chunk_s: float = 0.3) -> list[str]:
    import torch

    from dscbench import ops
    from dscbench.labels import shape_label
    from dscbench.spec import ConvSpec, spec_to_json

    torch.set_num_threads(1)  # torch.utils.benchmark.Timer runs with one thread by default
    lines = [
        "## agreement: dscbench median vs torch.utils.benchmark blocked_autorange median",
        f"1 thread, inference mode, {chunks} interleaved chunks of {chunk_s} s per tool",
        "",
        "| config | variant | dscbench median | blocked_autorange median | ratio |",
        "|---|---|---|---|---|",
    ]
    worst = 0.0
    for cfg in AGREEMENT_CONFIGS:
        spec = ConvSpec(batch=1, threads=1, **cfg)
        x = ops.make_input(spec, 1)
        for variant in ("standard", "separable"):
            a, b = _agree_one(ops.build(spec, variant), x, chunks, chunk_s)
            worst = max(worst, abs(a / b - 1))
            label = shape_label(spec_to_json(spec))
            lines.append(
                f"| {label} | {variant} | {a * 1e6:.1f} us | {b * 1e6:.1f} us | {a / b:.3f} |"
            )
    lines.append(f"\nlargest disagreement: {worst:.1%} (target: within 5%)")
    return lines


def _speedups(directory: Path) -> pd.Series:
    table = pd.read_parquet(directory / "results.parquet")
    sep = table[table.variant == "separable"]
    key = sep.config_id.str.replace(r"_t\d+$", "", regex=True)
    return pd.Series(sep.speedup.to_numpy(), index=key)


def reproducibility() -> list[str]:
    lines = ["## reproducibility: two back-to-back `dscbench run --preset quick` runs"]
    for label, extra in (("--threads 1", ["--threads", "1"]), ("default threads", [])):
        with tempfile.TemporaryDirectory() as tmp:
            first, second = Path(tmp) / "a", Path(tmp) / "b"
            dscbench("--preset", "quick", *extra, "-o", str(first))
            dscbench("--preset", "quick", *extra, "-o", str(second))
            s1, s2 = _speedups(first), _speedups(second)
        diff = (s1 / s2.loc[s1.index] - 1).abs()
        within = int((diff <= 0.05).sum())
        lines.append(
            f"- {label}: {within} of {len(diff)} configurations agree within 5% "
            f"(median |difference| {diff.median():.1%}, max {diff.max():.1%}); target 9 of 10"
        )
        for config, d in diff.sort_values(ascending=False).items():
            lines.append(f"    - {config}: {s1[config]:.3f}x vs {s2[config]:.3f}x ({d:.1%})")
    return lines


PARTS = {"overhead": overhead, "agreement": agreement, "reproducibility": reproducibility}


def run_parts(parts: dict[str, Callable[[], list[str]]], argv: list[str]) -> None:
    """Run the parts named in ``argv`` (all when empty) and print their markdown reports."""
    names = argv or list(parts)
    unknown = [n for n in names if n not in parts]
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}")
    for name in names:
        print("\n".join(parts[name]()), end="\n\n", flush=True)


if __name__ == "__main__":
    run_parts(PARTS, sys.argv[1:])
