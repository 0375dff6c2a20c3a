"""Benchmarks behind the targets of the kernel-identity and instruction-count issue (20). Run
with `nox -s bench -- kernels [parts]`.

Parts (default all, in this order; runs are stored in results/bench-kernels/, git-ignored;
DSCBENCH_BENCH_STORE points at another store):
  heuristic     why a Slow2d torch picks by its size heuristic is no reference_kernel warning:
                torch.utils.benchmark medians of the default call (Slow2d) against oneDNN called
                directly (torch.mkldnn_convolution), 1 thread, on the quick preset's 1x1 convs
  named         one default `dscbench run --preset quick --threads 1`: every row names its
                kernels; the share of the run's wall time spent naming them (target <= 5%)
  aa            10 short quick runs (--min-time 0.2 --rounds 2), each compared with the next
                (cyclically) with --fail-on-kernel-change: no kernel change in 10 of 10
  isa           an interleaved run, default against ONEDNN_MAX_CPU_ISA=SSE41: every oneDNN conv's
                implementation changes, and compare --fail-on-kernel-change exits 1
  counts        two `--measure instructions --preset quick --threads 1` runs, back to back, the
                second with another seed (another order): the largest difference of any row
                (target <= 0.01%), wall time, start-up and per-configuration cost (target:
                <= 5 minutes on 2 cores)
  counts-isa    an interleaved instruction count of the quick preset, default against
                ONEDNN_MAX_CPU_ISA=SSE41: `slower` on every dense conv row (compare --metric
                instructions)
  counts-model  a user model counted in two environments, the second with one extra conv layer
                (benchmarks/extra_layer.py): the change shows on its row

Every figure comes with the load average at its start (instruction counts do not move with it;
wall times do).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from reporting import cli, load, main

STORE = Path(os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-kernels"))
QUICK = ["--preset", "quick", "--threads", "1", "-q"]
SHORT = ["--min-time", "0.2", "--rounds", "2", "--processes", "2"]
AA_RUNS = 10
ISA = "SSE41"


def fresh(name: str) -> Path:
    path = STORE / name
    shutil.rmtree(path, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def results_of(path: Path):
    from dscbench import results

    return results.load_results(path)


def heuristic() -> list[str]:
    import torch
    import torch.utils.benchmark as tub

    torch.set_num_threads(1)
    lines = [
        "## Slow2d by torch's heuristic against oneDNN",
        "",
        f"{load()}. Median of torch.utils.benchmark's blocked_autorange (1 s) for each call.",
        "",
        "| conv (batch 1) | torch picks | default call | oneDNN direct | oneDNN / default |",
        "|---|---|---:|---:|---:|",
    ]
    shapes = [(16, 56, 1), (32, 56, 1), (64, 28, 1), (128, 28, 1), (256, 14, 1), (8, 40, 3)]
    for channels, side, k in shapes:
        x = torch.randn(1, channels, side, side)
        w = torch.randn(channels, channels, k, k)
        pad = k // 2
        picked = torch._C._select_conv_backend(
            x, w, None, [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, None
        )
        env = {"x": x, "w": w, "p": pad, "torch": torch}
        default = tub.Timer("torch.nn.functional.conv2d(x, w, padding=p)", globals=env)
        direct = tub.Timer("torch.mkldnn_convolution(x, w, None, [p, p], [1, 1], [1, 1], 1)",
                           globals=env)  # fmt: skip
        a = default.blocked_autorange(min_run_time=1).median
        b = direct.blocked_autorange(min_run_time=1).median
        lines.append(
            f"| {channels}->{channels} @{side} k{k} | {str(picked).rsplit('.', 1)[-1]} | "
            f"{a * 1e6:.1f} us | {b * 1e6:.1f} us | {b / a:.2f} |"
        )
    return lines


def named() -> list[str]:
    out = fresh("named")
    cli("run", *QUICK, "-o", str(out))
    rs = results_of(out)
    t = rs.meta["timings"]
    table = rs.results
    lines = [
        "## Every row names its kernels; what naming them costs",
        "",
        f"`dscbench run --preset quick --threads 1` ({load()} before it): {len(table)} rows, "
        f"{int((table.kernels != '').sum())} name their kernels; wall {t['wall_s']:.1f} s, of "
        f"which naming kernels {t['kernels_s']:.2f} s (**{t['kernels_s'] / t['wall_s']:.2%}**; "
        "target <= 5%).",
        "",
        "| configuration | standard | separable | warnings |",
        "|---|---|---|---|",
    ]
    for cid, rows in table.groupby("config_id", sort=False):
        by = rows.set_index("variant")
        flagged = "; ".join(w for w in by.warnings if "reference_kernel" in w) or "-"
        lines.append(
            f"| {cid} | {by.at['standard', 'kernels']} | {by.at['separable', 'kernels']} | "
            f"{flagged} |"
        )
    return lines


def aa() -> list[str]:
    runs = []
    for i in range(AA_RUNS):
        out = fresh(f"aa/run-{i:02d}")
        cli("run", *QUICK, *SHORT, "-o", str(out))
        runs.append(out)
    lines = [
        "## Kernel A/A: 10 runs, each against the next",
        "",
        f"{AA_RUNS} runs `dscbench run --preset quick --threads 1 {' '.join(SHORT)}` ({load()} "
        "after them); `dscbench compare run-i run-(i+1 mod 10) --fail-on-kernel-change "
        "--format json`.",
        "",
    ]
    unchanged = 0
    for i, run in enumerate(runs):
        other = runs[(i + 1) % len(runs)]
        code, _, text = cli("compare", str(run), str(other), "--fail-on-kernel-change",
                            "--format", "json", check=False)  # fmt: skip
        doc = json.loads(text[text.index("{") :])
        changed = doc["summary"]["kernel_changes"]
        unchanged += changed == 0
        lines.append(
            f"- {run.name} vs {other.name}: {changed} row(s) with another kernel, exit {code} "
            f"({doc['summary']['regressions']} timing regression(s))"
        )
    lines += ["", f"**No kernel change in {unchanged} of {len(runs)} comparisons.**"]
    return lines


def isa() -> list[str]:
    out = fresh("isa")
    cli("run", *QUICK, *SHORT, "--env", "base=", "--env", f"sse41=:ONEDNN_MAX_CPU_ISA={ISA}",
        "-o", str(out))  # fmt: skip
    code, _, text = cli("compare", str(out), "--fail-on-kernel-change", "--format", "json",
                        check=False)  # fmt: skip
    doc = json.loads(text[text.index("{") :])
    table = results_of(out).results
    base = table[table.env == "base"].set_index(["config_id", "variant"]).kernels
    sse = table[table.env == "sse41"].set_index(["config_id", "variant"]).kernels
    onednn = changed = 0
    lines = [
        f"## ONEDNN_MAX_CPU_ISA={ISA} in one environment",
        "",
        f"`dscbench run --preset quick --threads 1 {' '.join(SHORT)} --env base= --env "
        f"sse41=:ONEDNN_MAX_CPU_ISA={ISA}` ({load()} after it), then `dscbench compare RUN "
        f"--fail-on-kernel-change`: **exit {code}**, {doc['summary']['kernel_changes']} of "
        f"{len(doc['changes'])} rows with another kernel.",
        "",
        "| row | base | sse41 |",
        "|---|---|---|",
    ]
    for key in base.index:
        b, s = base[key].split(" + "), sse[key].split(" + ")
        for kb, ks in zip(b, s, strict=True):
            if kb.startswith("Mkldnn/"):
                onednn += 1
                changed += kb != ks
        lines.append(f"| {key[0]} {key[1]} | {base[key]} | {sse[key]} |")
    lines += ["", f"**{changed} of {onednn} oneDNN convs ran another implementation.**"]
    return lines


def counts() -> list[str]:
    lines = [
        "## Instruction counts: two quick runs under valgrind, back to back",
        "",
    ]
    runs = []
    # run b shuffles its configurations with another seed: every configuration is counted at
    # another point of another process's life than in run a
    for name, seed in (("counts-a", []), ("counts-b", ["--seed", "7"])):
        out = fresh(name)
        before = load()
        _, wall, _ = cli("run", *QUICK, "--measure", "instructions", *seed, "-o", str(out))
        rs = results_of(out)
        t = rs.meta["timings"]
        counted = rs.meta["harness"]["instructions"]
        configs = rs.results.config_id.nunique()
        rest = t["wall_s"] - t["worker_start_s"]
        lines.append(
            f"- `dscbench run --preset quick --threads 1 --measure instructions "
            f"{' '.join(seed)}{' ' if seed else ''}-o {name}` ({before} at its start): wall "
            f"**{t['wall_s']:.0f} s** ({wall:.0f} s with the interpreter), of which starting "
            f"the workers under valgrind (torch's import, once per environment) "
            f"{t['worker_start_s']:.0f} s and counting {configs} configurations {rest:.0f} s "
            f"({counted['jobs']} processes counting at once, each configuration in a fresh "
            f"fork: {rest * counted['jobs'] / configs:.1f} process-seconds each, of which "
            f"{t['kernels_s'] / configs:.1f} s naming the kernels and "
            f"{t['restart_s'] / configs:.1f} s forking); {counted['valgrind']}, torch's "
            f"cpu_capability under it {rs.meta['environment']['torch']['cpu_capability']}"
        )
        runs.append(rs)
    a, b = (r.results.set_index(["config_id", "variant"]) for r in runs)
    diff = ((b.instructions - a.instructions).abs() / a.instructions).sort_values()
    spread = max(a.instructions_spread.max(), b.instructions_spread.max())
    code, _, _ = cli("compare", str(STORE / "counts-a"), str(STORE / "counts-b"),
                        "--metric", "instructions", "--threshold", "1%", check=False)  # fmt: skip
    lines += [
        "",
        f"Between the runs: largest difference of any row **{diff.max():.4%}** (median "
        f"{diff.median():.4%}; target <= 0.01%); within a run, the processes that counted a "
        f"row ({runs[0].meta['harness']['instructions']['processes']}) differ by at most "
        f"{spread:.4%}. `compare counts-a counts-b --metric instructions "
        f"--threshold 1%`: exit {code}.",
        "",
        "| row | run a | run b | difference | in the allocators, a / b |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in a.index:
        lines.append(
            f"| {key[0]} {key[1]} | {a.at[key, 'instructions']:.0f} | "
            f"{b.at[key, 'instructions']:.0f} | {diff[key]:.4%} | "
            f"{a.at[key, 'allocator_instructions']:.0f} / "
            f"{b.at[key, 'allocator_instructions']:.0f} |"
        )
    return lines


def _change_rows(doc: dict) -> list[str]:
    """A markdown line per row of compare's JSON: verdict, counts, ratio, kernels."""
    return [
        f"| {c['label']} {c['variant']} | {c['verdict']} | {c['baseline']:.0f} | "
        f"{c['candidate']:.0f} | {c['ratio']:.3f} | {c['kernels_baseline']} -> "
        f"{c['kernels_candidate']} |"
        for c in doc["changes"]
    ]


def counts_isa() -> list[str]:
    out = fresh("counts-isa")
    _, wall, _ = cli("run", *QUICK, "--measure", "instructions", "--env", "base=",
                     "--env", f"sse41=:ONEDNN_MAX_CPU_ISA={ISA}", "-o", str(out))  # fmt: skip
    code, _, text = cli("compare", str(out), "--metric", "instructions", "--format", "json",
                        check=False)  # fmt: skip
    doc = json.loads(text[text.index("{") :])
    lines = [
        f"## Instruction counts, default against ONEDNN_MAX_CPU_ISA={ISA}",
        "",
        f"`dscbench run --preset quick --threads 1 --measure instructions --env base= --env "
        f"sse41=:ONEDNN_MAX_CPU_ISA={ISA}` (wall {wall:.0f} s, {load()} after it), then "
        f"`dscbench compare RUN --metric instructions`: exit {code}.",
        "",
        "| row | verdict | base | sse41 | ratio | kernels base -> sse41 |",
        "|---|---|---:|---:|---:|---|",
    ]
    dense = [c for c in doc["changes"] if c["variant"] == "standard"]
    slower_dense = sum(c["verdict"] == "slower" for c in dense)
    lines += _change_rows(doc)
    lines += ["", f"**`slower` on {slower_dense} of {len(dense)} dense (standard) conv rows.**"]
    return lines


def counts_model() -> list[str]:
    out = fresh("counts-model")
    model = "benchmarks.extra_layer:build"
    _, wall, _ = cli("run", "--model", model, "--input-shape", "3,32,32", "--threads", "1", "-q",
                     "--measure",
                     "instructions", "--env", "base=", "--env", "extra=:EXTRA_LAYER=1",
                     "-o", str(out))  # fmt: skip
    code, _, text = cli("compare", str(out), "--metric", "instructions", "--format", "json",
                        check=False)  # fmt: skip
    doc = json.loads(text[text.index("{") :])
    lines = [
        "## A user model with one extra layer",
        "",
        f"`dscbench run --model {model} --input-shape 3,32,32 --threads 1 --measure instructions "
        f"--env base= --env "
        f"extra=:EXTRA_LAYER=1` (wall {wall:.0f} s, {load()} after it): the second environment "
        "builds the same network with one more 3x3 conv; `dscbench compare RUN --metric "
        f"instructions`: exit {code}.",
        "",
        "| row | verdict | base | extra | ratio | kernels base -> extra |",
        "|---|---|---:|---:|---:|---|",
    ]
    return lines + _change_rows(doc)


PARTS = {
    "heuristic": heuristic,
    "named": named,
    "aa": aa,
    "isa": isa,
    "counts": counts,
    "counts-isa": counts_isa,
    "counts-model": counts_model,
}

if __name__ == "__main__":
    main("Kernel identity and instruction counts", "bench_kernels.py", "kernels", PARTS)
