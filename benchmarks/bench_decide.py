"""Benchmarks behind the targets of issue 19 (a gate that knows its own resolution): interleaved
A/A and A/B runs with the process as the unit and `--decide`, the coverage of a run's speedup
interval by a rerun, and dscbench's latency against torch.utils.benchmark's.

Parts (default all; runs are stored under results/bench-decide/, git-ignored, and reused when
present; DSCBENCH_BENCH_STORE points elsewhere):
  aa         RUNS interleaved A/A runs of the issue's configuration (one interpreter as two
             environments) with `--decide 5% --max-time MAX_TIME`; each judged by `compare` on
             its first 5 rounds (what a plain run measures: 5 rounds, 5 processes) and on all
             of them (decided). Targets: at most 1 run exits 1, at most 1% of rows `slower`,
             the 95% intervals contain 1.0 in at least 93% of rows; with --decide, at least
             80% of rows `same` at 5%.
  power      RUNS interleaved runs in which environment `slow` runs the 32->32 layer 10%
             slower, for real: a sitecustomize busy-waits 10% of the time of each Conv2d call
             with 32 input and 32 output channels, inside the timed call (also the depthwise
             conv of the 32->128 separable twin). Target: the 32->32 rows `slower` in at least
             95% of runs; the 128->128 and 128->32 rows and 32->128 standard are A/A controls.
  coverage   COVERAGE_RUNS (21) back-to-back plain runs of the same layers: how often a run's
             95% speedup interval, and its rerun interval, contain the next run's estimate
             (target >= 90%); the between-run sd is fitted on the first half of the pairs and
             checked on the second.
  agreement  dscbench's median latency against torch.utils.benchmark's median over as many
             fresh processes (standard and separable, 1 thread), for 64->64 @28 k3,
             128->128 @14 k5 and 32->32 @56 k3; the timers alternate (tub processes before and
             after the run). Target: within 3%.
  blocks     the lead for the agreement gap: dscbench's harness in one process at 2, 10 and
             50 ms blocks against torch.utils.benchmark in the same process.
  context    in one process, what dscbench times against what tub times: tub, dscbench's
             timer on the plain module, on dscbench's module and input, on the backend's
             prepared call, and alternated with the twin; 40 rounds in random order, ratios
             within each round.
  startup    the fork server against spawned workers, side by side (alternated pairs): the
             README's quick run and the A/A decide run; wall time, the share outside timed
             blocks (target <= 15%), worker start and restarts.
  alternated dscbench (`--processes 1`, a fresh process per run) and tub (a fresh process)
             taking turns, 6 cycles per layer (DSCBENCH_BENCH_ALTERNATIONS): ratios within
             each cycle, so the machine's phases hit both sides of each ratio alike.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import ROOT, load, main

STORE = ROOT / os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-decide")
RUNS = int(os.environ.get("DSCBENCH_BENCH_RUNS", "10"))
MAX_TIME = os.environ.get("DSCBENCH_BENCH_MAX_TIME", "150")
LAYERS = ["--in-channels", "32,128", "--size", "28", "--kernel", "3", "--threads", "1",
          "--min-time", "1"]  # fmt: skip
DECIDE = ["--decide", "5%", "--max-time", MAX_TIME]
PLAIN_ROUNDS = 5

SLOW_HOOK = r"""
import os, time
_share = float(os.environ.get("DSCBENCH_BENCH_SLOW", "0"))
if _share:
    import torch

    _real = torch.nn.Conv2d.forward

    def _forward(self, x):  # convs 32 -> 32 only: all of the 32->32 layer's, both variants
        if not (self.in_channels == 32 and self.out_channels == 32):
            return _real(self, x)
        t0 = time.perf_counter()
        y = _real(self, x)
        until = time.perf_counter() + _share * (time.perf_counter() - t0)
        while time.perf_counter() < until:
            pass
        return y

    torch.nn.Conv2d.forward = _forward
"""


def dscbench(*args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dscbench", "run", "-q", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return time.perf_counter() - t0


def stored_runs(kind: str, args: list[str], count: int) -> list[Path]:
    """``count`` runs of ``args`` under STORE/kind, made back to back where missing."""
    dirs = [STORE / kind / f"run-{i:02d}" for i in range(count)]
    for d in dirs:
        if not (d / "run.json").exists():
            dscbench(*args, "-o", str(d), "--force")
    return dirs


def first_rounds(rs, rounds: int):
    """The run as a plain run would have measured it: its first ``rounds`` rounds."""
    from dscbench.results import ResultSet

    samples = rs.samples[rs.samples["round"] < rounds]
    return ResultSet(dict(rs.meta, rounds_done=rounds), rs.results, samples)


def busy(rs) -> str:
    load1 = (rs.meta.get("environment") or {}).get("load_average") or [float("nan")]
    spread = rs.meta.get("round_spread", float("nan"))
    return f"round spread {spread:.1%}, load {load1[0]:.2f}"


def outside(meta: dict) -> float:
    t = meta["timings"]
    return 1 - t["timed_s"] / t["wall_s"]


def judged(rs, label: str) -> tuple[dict, str]:
    """compare's verdicts on ``rs``: counts, and one line for the report."""
    from dscbench import compare
    from dscbench.export.comparison import resolution_lines

    c = compare.compare_envs(rs)
    rows = [ch for ch in c.changes if ch.verdict.comparable]
    counts = {
        "exit": c.exit_code(),
        "rows": len(rows),
        "same": sum(ch.verdict == "same" for ch in rows),
        "slower": sum(ch.verdict == "slower" for ch in rows),
        "covers": sum(ch.ci_low <= 1.0 <= ch.ci_high for ch in rows),
        "units": [ch.units for ch in rows],
        "verdicts": {f"{ch.label} {ch.variant}": ch.verdict.value for ch in rows},
        "ratios": {f"{ch.label} {ch.variant}": (ch.ratio, ch.ci_low, ch.ci_high) for ch in rows},
    }
    resolution = resolution_lines(c)
    text = (
        f"{label}: exit {counts['exit']}, {counts['same']}/{len(rows)} same, "
        f"{counts['slower']} slower, 1.0 inside {counts['covers']}/{len(rows)} intervals, "
        f"process pairs {sorted(set(counts['units']))}"
        + (f"; {resolution[0][len('Resolution: ') :]}" if resolution else "")
    )
    return counts, text


def _aa_like(kind: str, args: list[str]) -> tuple[list[str], list[dict], list[dict]]:
    from dscbench import results

    t0 = time.time()
    dirs = stored_runs(kind, args, RUNS)
    lines, plain, decided = [], [], []
    for d in dirs:
        rs = results.load_results(d)
        p = rs.meta.get("precision") or {}
        a, text_a = judged(first_rounds(rs, PLAIN_ROUNDS), "first 5 rounds")
        b, text_b = judged(rs, f"decided ({p.get('extra_rounds')} extra rounds, stopped: "
                               f"{p.get('stopped')})")  # fmt: skip
        plain.append(a)
        decided.append(b)
        lines += [
            f"- {d.name}: wall {rs.meta['timings']['wall_s']:.0f} s, "
            f"{outside(rs.meta):.0%} outside timed blocks (restarts "
            f"{rs.meta['timings'].get('restart_s', 0):.0f} s); {busy(rs)}",
            f"  - {text_a}",
            f"  - {text_b}",
        ]
    head = [f"({time.time() - t0:.0f} s for this part; {load()} at its end)", ""]
    return head + lines, plain, decided


def _totals(label: str, runs: list[dict]) -> str:
    rows = sum(r["rows"] for r in runs)
    return (
        f"| {label} | {sum(r['exit'] == 1 for r in runs)}/{len(runs)} | "
        f"{sum(r['slower'] for r in runs) / rows:.1%} | {sum(r['same'] for r in runs) / rows:.0%} |"
        f" {sum(r['covers'] for r in runs) / rows:.0%} |"
    )


def aa() -> list[str]:
    args = [*LAYERS, "--env", "a=", "--env", "b=", *DECIDE]
    body, plain, decided = _aa_like("aa", args)
    return [
        f"## aa: {RUNS} interleaved A/A runs `dscbench run {' '.join(args)}`",
        "",
        "| judged on | runs exit 1 | rows slower | rows same | 1.0 inside the 95% interval |",
        "|---|---|---|---|---|",
        _totals("first 5 rounds (5 process pairs)", plain),
        _totals("all rounds (--decide 5%)", decided),
        "",
        *body,
    ]


def power() -> list[str]:
    hook = STORE / "slow-hook"
    hook.mkdir(parents=True, exist_ok=True)
    (hook / "sitecustomize.py").write_text(SLOW_HOOK)
    # the hook first, then this checkout (the workers import dscbench from it, as the
    # coordinator does)
    slow = f"slow=:PYTHONPATH={hook}{os.pathsep}{ROOT},DSCBENCH_BENCH_SLOW=0.10"
    args = [*LAYERS, "--env", "base=", "--env", slow, *DECIDE]
    body, plain, decided = _aa_like("power", args)
    lines = [f"## power: {RUNS} runs `dscbench run {' '.join(args)}` (32->32 layer 10% slower)"]
    lines += ["", "| judged on | 32->32 `slower` (standard, separable) | controls `slower` |"]
    lines += ["|---|---|---|"]
    for label, runs in (("first 5 rounds", plain), ("all rounds (--decide 5%)", decided)):
        hit = {v: sum(r["verdicts"].get(f"n1 32->32 @28 k3s1 float32 t1 {v}") == "slower"
                      for r in runs) for v in ("standard", "separable")}  # fmt: skip
        controls = [
            verdict
            for r in runs
            for row, verdict in r["verdicts"].items()
            if "128->" in row or row.endswith("32->128 @28 k3s1 float32 t1 standard")
        ]
        false = sum(v == "slower" for v in controls)
        lines.append(
            f"| {label} | {hit['standard']}/{len(runs)}, {hit['separable']}/{len(runs)} | "
            f"{false}/{len(controls)} |"
        )
    ratios = [r["ratios"].get("n1 32->32 @28 k3s1 float32 t1 standard") for r in decided]
    measured = [x[0] for x in ratios if x]
    lines += [
        "",
        f"Measured slow/base of the slowed layer (standard, decided): median "
        f"{np.median(measured):.3f} [{min(measured):.3f}, {max(measured):.3f}] over runs.",
        "",
        *body,
    ]
    return lines


COVERAGE_RUNS = int(os.environ.get("DSCBENCH_BENCH_COVERAGE_RUNS", "21"))


def speedups(rs) -> dict[str, object]:
    """Each separable row's Speedup (with its se and degrees of freedom), as rows.py computes
    it from the samples."""
    from dscbench import stats

    out = {}
    s = rs.samples
    for cid, g in s.groupby("config_id"):
        std, sep = (
            g[g.variant == v].sort_values(["round", "pair"]) for v in ("standard", "separable")
        )
        a, b, r, p = stats.pair_blocks(
            std.pair.tolist(), std.time_s.tolist(), std["round"].tolist(),
            sep.pair.tolist(), sep.time_s.tolist(), std.process.tolist(),
        )  # fmt: skip
        out[cid] = stats.round_speedup(a, b, r, processes=p)
    return out


def coverage() -> list[str]:
    """COVERAGE_RUNS back-to-back plain runs. The between-run sd is fitted on the first half of
    the consecutive pairs and checked on the second half; each interval's coverage of the next
    run's estimate is shown for both halves."""
    import math

    from dscbench import defaults, results, stats

    args = [*LAYERS]
    dirs = stored_runs("coverage", args, COVERAGE_RUNS)
    sets = [results.load_results(d) for d in dirs]
    fits = [speedups(rs) for rs in sets]
    pairs = []  # (pair index, row, this run's Speedup, the next run's estimate, its se2)
    for i, (a, b) in enumerate(itertools.pairwise(fits)):
        pairs += [(i, cid, a[cid], b[cid].value, b[cid].se2) for cid in a if cid in b]
    n_pairs = len(sets) - 1
    half = n_pairs // 2
    fit = [p for p in pairs if p[0] < half]
    check = [p for p in pairs if p[0] >= half]
    tau2 = stats.between_run_variance(
        np.array([math.log(p[3] / p[2].value) for p in fit]),
        np.array([p[2].se2 for p in fit]),
        np.array([p[4] for p in fit]),
    )
    tau = math.sqrt(tau2)
    shipped = defaults.BETWEEN_RUN_SD

    def covered(part, interval) -> str:
        hits = sum(lo <= nxt <= hi for lo, hi, nxt in ((*interval(p[2]), p[3]) for p in part))
        return f"{hits}/{len(part)} ({hits / len(part):.0%})"

    intervals = {
        "the run's 95% interval (speedup_ci_low/high)": lambda s: (s.ci_low, s.ci_high),
        "rerun interval, between-run sd 0 (sampling error only)": lambda s: stats.rerun_interval(
            s, 0.0
        ),
        f"rerun interval, between-run sd fitted on the first half ({tau:.1%})": lambda s: (
            stats.rerun_interval(s, tau)
        ),
        f"rerun interval, dscbench's default between-run sd ({shipped:.1%})": lambda s: (
            stats.rerun_interval(s, shipped)
        ),
    }
    lines = [
        f"## coverage: {len(sets)} back-to-back `dscbench run {' '.join(args)}`",
        "",
        f"{n_pairs} consecutive pairs, {len(pairs)} rows. The between-run sd (tau) is fitted on "
        f"pairs 0-{half - 1} (method of moments: E[d^2] = se_a^2 + se_b^2 + 2 tau^2, d the log "
        f"difference of the two estimates): **{tau:.1%}**. Coverage = how often the interval "
        "of a run contains the next run's estimate (target >= 90%).",
        "",
        f"| interval | pairs 0-{half - 1} (fit) | pairs {half}-{n_pairs - 1} (check) | all |",
        "|---|---|---|---|",
    ]
    for label, interval in intervals.items():
        lines.append(
            f"| {label} | {covered(fit, interval)} | {covered(check, interval)} | "
            f"{covered(pairs, interval)} |"
        )
    widths = [
        (math.log(hi) - math.log(lo)) / 2
        for lo, hi in (stats.rerun_interval(p[2], shipped) for p in pairs)
    ]
    se = [math.sqrt(p[2].se2) for p in pairs]
    lines += [
        "",
        f"Median half-width of the rerun interval at the default: {np.median(widths):.1%} "
        f"(log scale); median se of a run's log speedup: {np.median(se):.1%}.",
        "",
    ]
    lines += [f"- {d.name}: {busy(rs)}" for d, rs in zip(dirs, sets, strict=True)]
    return lines


TUB = r"""
import json, sys, torch
from torch.utils.benchmark import Timer
torch.set_num_threads(1)
out = {}
for c, s, k in json.loads(sys.argv[1]):
    std = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).eval()
    sep = torch.nn.Sequential(torch.nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
                              torch.nn.Conv2d(c, c, 1, bias=False)).eval()
    x = torch.randn(1, c, s, s)
    with torch.inference_mode():
        for name, m in (("standard", std), ("separable", sep)):
            t = Timer("m(x)", globals={"m": m, "x": x}, num_threads=1)
            out[f"{c}-{s}-{k}-{name}"] = t.blocked_autorange(min_run_time=0.5).median
print(json.dumps(out))
"""
AGREEMENT = [(64, 28, 3), (128, 14, 5), (32, 56, 3)]


def agreement() -> list[str]:
    from dscbench import results

    out = STORE / "agreement"
    tub: list[dict] = []

    def tub_process() -> None:
        proc = subprocess.run(
            [sys.executable, "-c", TUB, json.dumps(AGREEMENT)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        tub.append(json.loads(proc.stdout))

    lines = ["## agreement: dscbench against torch.utils.benchmark, 1 thread", ""]
    for _ in range(3):
        tub_process()
    rows = []
    for c, s, k in AGREEMENT:
        d = out / f"{c}-{s}-{k}"
        dscbench("--in-channels", str(c), "--out-channels", str(c), "--size", str(s),
                 "--kernel", str(k), "--stride", "1", "--threads", "1", "--min-time", "1",
                 "-o", str(d), "--force")  # fmt: skip
        rows.append(results.load_results(d))
    for _ in range(2):
        tub_process()
    lines += [
        f"torch.utils.benchmark: `blocked_autorange(min_run_time=0.5)` in {len(tub)} fresh "
        "processes (3 before the dscbench runs, 2 after), median over processes; dscbench: "
        "`latency_median_s` of one default run (5 worker processes) per layer.",
        "",
        "| layer | variant | dscbench | torch.utils.benchmark | dscbench / tub | load |",
        "|---|---|---:|---:|---:|---|",
    ]
    for (c, s, k), rs in zip(AGREEMENT, rows, strict=True):
        for v in ("standard", "separable"):
            mine = float(rs.results.set_index("variant").latency_median_s[v])
            theirs = float(np.median([t[f"{c}-{s}-{k}-{v}"] for t in tub]))
            lines.append(
                f"| {c}->{c} @{s} k{k} | {v} | {mine * 1e6:.0f} us | {theirs * 1e6:.0f} us | "
                f"{mine / theirs:.3f} | {busy(rs)} |"
            )
    return lines


BLOCKS = r"""
import json, sys
import numpy as np
import torch
from torch.utils.benchmark import Timer
from dscbench import runner
from dscbench.backends.torch_eager import TorchCPU
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, RunSettings
from dscbench.spec.specs import ConvSpec

torch.set_num_threads(1)
c, s, k = json.loads(sys.argv[1])
spec = ConvSpec(batch=1, in_channels=c, out_channels=c, spatial=(s, s), kernel=k, stride=1,
                threads=1)
out = {}
for block in (0.002, 0.010, 0.050):
    state = runner.run_sweep(
        [Case(spec, "torch-cpu")], RunSettings(min_time=1.0, rounds=5, parity=False),
        runner.local({"torch-cpu": TorchCPU()}), harness=HarnessOptions(block_time=block),
        verify_counts=False,
    )
    for v in ("standard", "separable"):
        series = state.cases[0].only.series[v]
        out[f"{block}|{v}"] = [float(np.median(series.times)), series.iterations]
m = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).eval()
x = torch.randn(1, c, s, s)
with torch.inference_mode():
    out["tub"] = Timer("m(x)", globals={"m": m, "x": x}, num_threads=1).blocked_autorange(
        min_run_time=0.5).median
print(json.dumps(out))
"""


def blocks() -> list[str]:
    """The block-length lead of the agreement gap: one process measures a layer with
    dscbench's harness (alternated sets, fresh builds every visit) at 2, 10 and 50 ms blocks,
    then with torch.utils.benchmark, in 3 fresh processes per layer."""
    lines = [
        "## blocks: dscbench's harness in one process (runner.run_sweep, 5 rounds, --min-time 1,"
        " 1 thread) at three block lengths, then torch.utils.benchmark in the same process; "
        "3 fresh processes per layer, medians over them",
        "",
        "| layer | variant | 2 ms blocks | 10 ms | 50 ms | tub (standard) | 50 ms / tub |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for c, s, k in AGREEMENT:
        runs = []
        for _ in range(3):
            proc = subprocess.run(
                [sys.executable, "-c", BLOCKS, json.dumps([c, s, k])],
                capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
            runs.append(json.loads(proc.stdout))
        tub = float(np.median([r["tub"] for r in runs]))
        for v in ("standard", "separable"):
            med = {b: float(np.median([r[f"{b}|{v}"][0] for r in runs])) for b in
                   ("0.002", "0.01", "0.05")}  # fmt: skip
            iters = [runs[0][f"{b}|{v}"][1] for b in ("0.002", "0.01", "0.05")]
            ratio = f"{med['0.05'] / tub:.3f}" if v == "standard" else ""
            lines.append(
                f"| {c}->{c} @{s} k{k} | {v} | {med['0.002'] * 1e6:.0f} us ({iters[0]} it) | "
                f"{med['0.01'] * 1e6:.0f} us ({iters[1]} it) | {med['0.05'] * 1e6:.0f} us "
                f"({iters[2]} it) | {tub * 1e6:.0f} us | {ratio} |"
            )
    lines += ["", f"({load()} at the end)"]
    return lines


CONTEXT = r"""
import json, random, sys
import numpy as np
import torch
from torch.utils.benchmark import Timer as TubTimer
from dscbench import ops
from dscbench.backends.torch_eager import TorchCPU
from dscbench.measure import Timer
from dscbench.spec.specs import ConvSpec

torch.set_num_threads(1)
c, s, k, rounds = json.loads(sys.argv[1])
spec = ConvSpec(batch=1, in_channels=c, out_channels=c, spatial=(s, s), kernel=k, stride=1,
                threads=1)
plain = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).eval()
x = torch.randn(1, c, s, s)
built, xb = ops.instance(spec, "standard", 0)
P = TorchCPU().prepare(spec, "standard", 0)
Q = TorchCPU().prepare(spec, "separable", 0)
timer = Timer()
with torch.inference_mode():
    n = max(1, round(2e-3 / TubTimer("m(x)", globals={"m": plain, "x": x}).timeit(20).median))

def blocks(fn, count=15):
    with torch.inference_mode():
        fn()
        return float(np.median([timer.time_block(fn, n) / n for _ in range(count)]))

def alternated(count=15):
    out = []
    with torch.inference_mode():
        for _ in range(count):
            out.append(timer.time_block(P.run, n) / n)
            timer.time_block(Q.run, n)
    return float(np.median(out))

def tub():
    with torch.inference_mode():
        t = TubTimer("m(x)", globals={"m": plain, "x": x}, num_threads=1)
        return t.blocked_autorange(min_run_time=0.05).median

conds = {
    "torch.utils.benchmark, plain Conv2d": tub,
    "dscbench timer, plain Conv2d": lambda: blocks(lambda: plain(x)),
    "dscbench timer, ops.instance module and input": lambda: blocks(lambda: built(xb)),
    "dscbench timer, the backend's prepared run()": lambda: blocks(P.run),
    "... alternated block by block with the twin": alternated,
}
ratios = {name: [] for name in conds}
for _ in range(rounds):
    names = list(conds)
    random.shuffle(names)
    got = {name: conds[name]() for name in names}
    for name in conds:
        ratios[name].append(got[name] / got["torch.utils.benchmark, plain Conv2d"])
print(json.dumps({"n": n, "ratios": ratios}))
"""
CONTEXT_ROUNDS = 40


def context() -> list[str]:
    """Does what dscbench times differ from what torch.utils.benchmark times, in one process?
    Five conditions, each about 0.05 s, in a fresh random order every round, 40 rounds; each
    condition's ratio to torch.utils.benchmark's median of the same round."""
    lines = [
        f"## context: in one process, {CONTEXT_ROUNDS} rounds of five conditions in random "
        "order (each about 0.05 s, 1 thread, standard conv); ratio to torch.utils.benchmark's "
        "median in the same round: median over rounds [quartiles]",
        "",
        "| layer | condition | ratio to tub |",
        "|---|---|---:|",
    ]
    for c, s, k in AGREEMENT:
        proc = subprocess.run(
            [sys.executable, "-c", CONTEXT, json.dumps([c, s, k, CONTEXT_ROUNDS])],
            capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
        got = json.loads(proc.stdout)
        for name, values in got["ratios"].items():
            q = np.percentile(values, [25, 50, 75])
            lines.append(
                f"| {c}->{c} @{s} k{k} ({got['n']} it/block) | {name} | "
                f"{q[1]:.3f} [{q[0]:.3f}, {q[2]:.3f}] |"
            )
    lines += ["", f"({load()} at the end)"]
    return lines


ALTERNATIONS = int(os.environ.get("DSCBENCH_BENCH_ALTERNATIONS", "6"))


def alternated() -> list[str]:
    """dscbench and torch.utils.benchmark, each in fresh processes, taking turns: per layer,
    ALTERNATIONS cycles of (a tub process, a dscbench run with --processes 1, which measures in
    its own fresh process) in a random order within each cycle; the ratio of each cycle's two
    medians, so both sides of a ratio ran within seconds of each other."""
    lines = [
        f"## alternated: dscbench against torch.utils.benchmark, {ALTERNATIONS} cycles per "
        "layer, each cycle one fresh tub process and one `dscbench run --processes 1 "
        "--rounds 1 --min-time 0.5` (its own fresh process) in random order; ratio within each "
        "cycle, median over cycles [range]",
        "",
        "| layer | variant | dscbench / tub | per cycle | dscbench | tub |",
        "|---|---|---:|---|---:|---:|",
    ]
    rng = np.random.default_rng(0)
    for c, s, k in AGREEMENT:
        ours: dict[str, list[float]] = {"standard": [], "separable": []}
        theirs: dict[str, list[float]] = {"standard": [], "separable": []}
        for cycle in range(ALTERNATIONS):
            for step in rng.permutation(2):
                if step == 0:
                    _alternated_ours((c, s, k), STORE / "alternated" / f"{c}-{s}-{k}-{cycle}", ours)
                else:
                    _alternated_theirs((c, s, k), theirs)
        for v in ("standard", "separable"):
            r = np.array(ours[v]) / np.array(theirs[v])
            lines.append(
                f"| {c}->{c} @{s} k{k} | {v} | **{np.median(r):.3f}** "
                f"[{r.min():.3f}, {r.max():.3f}] | {' '.join(f'{x:.2f}' for x in r)} | "
                f"{np.median(ours[v]) * 1e6:.0f} us | {np.median(theirs[v]) * 1e6:.0f} us |"
            )
    lines += ["", f"({load()} at the end)"]
    return lines


def _alternated_ours(layer: tuple[int, int, int], d: Path, out: dict[str, list[float]]) -> None:
    from dscbench import results

    c, s, k = layer
    dscbench("--in-channels", str(c), "--out-channels", str(c), "--size", str(s),
             "--kernel", str(k), "--stride", "1", "--threads", "1", "--min-time", "0.5",
             "--rounds", "1", "--processes", "1", "-o", str(d), "--force")  # fmt: skip
    rs = results.load_results(d).results.set_index("variant").latency_median_s
    for v in out:
        out[v].append(float(rs[v]))


def _alternated_theirs(layer: tuple[int, int, int], out: dict[str, list[float]]) -> None:
    c, s, k = layer
    proc = subprocess.run(
        [sys.executable, "-c", TUB, json.dumps([[c, s, k]])],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    got = json.loads(proc.stdout)
    for v in out:
        out[v].append(got[f"{c}-{s}-{k}-{v}"])


STARTUP_PAIRS = int(os.environ.get("DSCBENCH_BENCH_STARTUP_PAIRS", "3"))


def startup() -> list[str]:
    """Fork server against spawned workers, side by side: the README's quick run and the A/A
    decide run, each alternating `--start-method fork` and `spawn` (STARTUP_PAIRS pairs, order
    swapped every pair). Wall is the command's own (interpreter start and exit included)."""
    from dscbench import results

    kinds = {
        "quick default `dscbench run`": [],
        "A/A decide " + " ".join([*LAYERS, "--env", "a=", "--env", "b=", *DECIDE]): [
            *LAYERS, "--env", "a=", "--env", "b=", *DECIDE,
        ],
    }  # fmt: skip
    lines = [
        "## startup: fork server against spawned workers, alternated, "
        f"{STARTUP_PAIRS} pairs per kind",
        "",
        "Outside = share of the command's wall time (interpreter start and exit included) not "
        "spent in timed blocks; per run, then the median per method.",
        "",
    ]
    for label, args in kinds.items():
        got: dict[str, list[dict]] = {"fork": [], "spawn": []}
        for i in range(STARTUP_PAIRS):
            for method in ("fork", "spawn") if i % 2 == 0 else ("spawn", "fork"):
                d = STORE / "startup" / f"{len(lines)}-{method}-{i}"
                elapsed = dscbench(*args, "--start-method", method, "-o", str(d), "--force")
                rs = results.load_results(d)
                t = rs.meta["timings"]
                got[method].append(
                    {"wall": elapsed, "outside": 1 - t["timed_s"] / elapsed,
                     "start": t["worker_start_s"], "restart": t["restart_s"],
                     "rounds": rs.meta["rounds_done"], "busy": busy(rs)}
                )  # fmt: skip
        lines += [f"### {label}", "",
                  "| method | run | wall | outside timed blocks | worker start | restarts "
                  "| rounds | machine |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for method, runs in got.items():
            for i, r in enumerate(runs):
                lines.append(
                    f"| {method} | {i} | {r['wall']:.1f} s | {r['outside']:.1%} | "
                    f"{r['start']:.2f} s | {r['restart']:.1f} s | {r['rounds']} | {r['busy']} |"
                )
        med = {m: {k: float(np.median([r[k] for r in runs])) for k in ("wall", "outside")}
               for m, runs in got.items()}  # fmt: skip
        lines += [
            "",
            f"Median: fork {med['fork']['wall']:.1f} s wall, {med['fork']['outside']:.1%} "
            f"outside; spawn {med['spawn']['wall']:.1f} s, {med['spawn']['outside']:.1%}; "
            f"wall fork/spawn {med['fork']['wall'] / med['spawn']['wall']:.2f}.",
            "",
        ]
    return lines


PARTS = {
    "startup": startup,
    "aa": aa,
    "power": power,
    "coverage": coverage,
    "agreement": agreement,
    "blocks": blocks,
    "context": context,
    "alternated": alternated,
}

if __name__ == "__main__":
    main("Decide benchmark report (issue 19)", "bench_decide.py", "decide", PARTS)
