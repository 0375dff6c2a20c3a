"""Where the noise of a latency comes from on this machine (issue 19): variance components of
one conv's time per iteration, within a set of blocks, between rounds of one process, between
processes and between batches of processes minutes apart, and controlled experiments on what
makes one process differ from the next.

Independent of dscbench's harness: each measuring process (``--worker``) builds the layers with
torch alone and times blocks with ``time.perf_counter``; torch.utils.benchmark's
``blocked_autorange`` times the same modules in the same process for the agreement check.

Every process measures three layers (standard conv and its separable twin, 1 thread unless the
experiment says otherwise) for ``ROUNDS`` rounds; a round takes a fresh input and times, per
layer in shuffled order, ``SETS`` alternated sets (standard and separable adjacent, random
order: dscbench's context) and ``SETS`` blocks of each variant back to back ("alone": what
torch.utils.benchmark measures). Experiments (how a process is started) are interleaved in
time: process i of every experiment runs before process i+1 of any, so a phase of the machine
does not land on one experiment.

Parts: ``components`` (all of the above; prints the tables) reads or makes
``results/bench-noise/processes.jsonl``; delete it to measure again.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reporting import ROOT, load, main

STORE = ROOT / os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-noise")
LAYERS = {  # name: (channels, size, kernel)
    "64->64 @28 k3": (64, 28, 3),
    "128->128 @14 k5": (128, 14, 5),
    "32->32 @56 k3": (32, 56, 3),
}
ROUNDS, SETS, BLOCK_S = 3, 3, 0.010
BATCHES, PER_BATCH = 3, 4  # processes per experiment: BATCHES x PER_BATCH
EXPERIMENTS = {  # name: (launcher, extra environment, threads)
    "spawn": ("spawn", {}, 1),
    "aslr-off": ("setarch", {}, 1),
    "pinned": ("pinned", {}, 1),
    "fork": ("fork", {}, 1),
    "malloc-fixed": (
        "spawn",
        {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "268435456"},
        1,
    ),
    "thp": ("spawn", {"THP_MEM_ALLOC_ENABLE": "1"}, 1),
    "threads2": ("spawn", {}, 2),
}


# ---------------------------------------------------------------------------------------------
# The measuring process
# ---------------------------------------------------------------------------------------------


def measure(threads: int, seed: int) -> dict:
    """One process's blocks (layer, variant, mode, round, set, seconds per iteration) and its
    torch.utils.benchmark medians."""
    import torch
    from torch.utils import benchmark

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    mods = {}
    for name, (c, _, k) in LAYERS.items():
        std = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).eval()
        sep = torch.nn.Sequential(
            torch.nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
            torch.nn.Conv2d(c, c, 1, bias=False),
        ).eval()
        mods[name] = {"standard": std, "separable": sep}
    blocks, tub = [], {}
    clock = time.perf_counter
    with torch.inference_mode():

        def block(m, x, n):
            t0 = clock()
            for _ in range(n):
                m(x)
            return (clock() - t0) / n

        iters = {}
        for name, (c, s, _) in LAYERS.items():
            x = torch.randn(1, c, s, s)
            for v, m in mods[name].items():
                for _ in range(3):
                    m(x)
                per = block(m, x, 3)
                iters[name, v] = max(1, math.ceil(BLOCK_S / per))
        for r in range(ROUNDS):
            for li in rng.permutation(len(LAYERS)):
                name = list(LAYERS)[li]
                c, s, _ = LAYERS[name]
                x = torch.randn(1, c, s, s)  # fresh input each round, as dscbench's visits
                for m in mods[name].values():
                    m(x)
                for st in range(SETS):
                    for v in rng.permutation(["standard", "separable"]):
                        t = block(mods[name][v], x, iters[name, v])
                        blocks.append([name, v, "alternated", r, st, t])
                for v in rng.permutation(["standard", "separable"]):
                    for st in range(SETS):
                        t = block(mods[name][v], x, iters[name, v])
                        blocks.append([name, v, "alone", r, st, t])
        for name, (c, s, _) in LAYERS.items():
            x = torch.randn(1, c, s, s)
            for v, m in mods[name].items():
                timer = benchmark.Timer("m(x)", globals={"m": m, "x": x}, num_threads=threads)
                tub[f"{name}|{v}"] = timer.blocked_autorange(min_run_time=0.2).median
    return {"blocks": blocks, "tub": tub, "pid": os.getpid(), "cpu": os.sched_getaffinity(0)}


def worker_main() -> None:
    spec = json.loads(sys.argv[2])
    if spec.get("pin") is not None:
        os.sched_setaffinity(0, {spec["pin"]})
    out = measure(spec["threads"], spec["seed"])
    out["cpu"] = sorted(out["cpu"])
    print(json.dumps(out))


def launch(exp: str, seed: int, index: int) -> dict:
    """Start one measuring process the way ``exp`` says; its result with start-up seconds."""
    how, extra, threads = EXPERIMENTS[exp]
    spec = {"threads": threads, "seed": seed, "pin": index % 2 if how == "pinned" else None}
    t0 = time.perf_counter()
    if how == "fork":
        out = forked(spec)
    else:
        cmd = [sys.executable, __file__, "--worker", json.dumps(spec)]
        if how == "setarch":
            cmd = ["setarch", os.uname().machine, "-R", *cmd]
        env = {**os.environ, **extra}
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
        out = json.loads(done.stdout)
    out["wall_s"] = time.perf_counter() - t0
    return out


def forked(spec: dict) -> dict:
    """The measurement in a child forked from this process, which has imported torch (what a
    fork server would hand out)."""
    import torch  # noqa: F401  (imported before the fork, as a fork server would)

    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, write, leave without running the parent's cleanup
        try:
            out = measure(spec["threads"], spec["seed"])
            out["cpu"] = sorted(out["cpu"])
            os.write(write, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(write)
    data = b""
    while chunk := os.read(read, 1 << 16):
        data += chunk
    os.close(read)
    os.waitpid(pid, 0)
    return json.loads(data)


def cached(name: str, produce: Callable[[Callable[[dict], None]], None]) -> list[dict]:
    """The rows of STORE/name, or, when it does not exist yet, the rows ``produce`` hands to
    its ``keep`` callback (each written as it comes, so a crash keeps what was measured in
    name.partial)."""
    path = STORE / name
    if path.exists():
        return [json.loads(line) for line in path.read_text().splitlines()]
    STORE.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    rows: list[dict] = []
    with open(partial, "w") as f:

        def keep(row: dict) -> None:
            rows.append(row)
            f.write(json.dumps(row) + "\n")
            f.flush()

        produce(keep)
    partial.rename(path)
    return rows


def collect() -> list[dict]:
    """Every process of every experiment, interleaved in time (cached in STORE)."""

    def produce(keep: Callable[[dict], None]) -> None:
        rng = np.random.default_rng(19)
        for batch in range(BATCHES):
            for i in range(PER_BATCH):
                for exp in rng.permutation(list(EXPERIMENTS)):
                    index = batch * PER_BATCH + i
                    out = launch(str(exp), 1000 * index + int(rng.integers(1000)), index)
                    row = {"exp": str(exp), "batch": batch, "process": index, **out}
                    keep(dict(row, load=os.getloadavg()[0]))

    return cached("processes.jsonl", produce)


# ---------------------------------------------------------------------------------------------
# Analysis
# ---------------------------------------------------------------------------------------------


def nested_components(x: np.ndarray) -> dict[str, float]:
    """Method-of-moments variance components of a balanced nested design
    x[batch, process, round, block] (log seconds), each as a standard deviation (about a
    relative one), with the F test of the process level against the round level."""
    from scipy import stats

    a, p, r, b = x.shape
    m_round = x.mean(axis=3)
    m_proc = m_round.mean(axis=2)
    m_batch = m_proc.mean(axis=1)
    grand = m_batch.mean()
    ms_block = ((x - m_round[..., None]) ** 2).sum() / (a * p * r * (b - 1))
    ms_round = b * ((m_round - m_proc[..., None]) ** 2).sum() / (a * p * (r - 1))
    ms_proc = b * r * ((m_proc - m_batch[:, None]) ** 2).sum() / (a * (p - 1))
    ms_batch = b * r * p * ((m_batch - grand) ** 2).sum() / max(a - 1, 1)
    var = {
        "block": ms_block,
        "round": max(0.0, (ms_round - ms_block) / b),
        "process": max(0.0, (ms_proc - ms_round) / (b * r)),
        "batch": max(0.0, (ms_batch - ms_proc) / (b * r * p)) if a > 1 else math.nan,
    }
    f = ms_proc / ms_round
    p_value = float(stats.f.sf(f, a * (p - 1), a * p * (r - 1)))
    return {**{k: math.sqrt(v) for k, v in var.items()}, "p_process": p_value}


def table(rows: list[dict], mode: str) -> dict[tuple, dict]:
    """Per (experiment, layer, variant): the components of log time per iteration in ``mode``
    blocks, and of the paired log-ratio standard/separable (alternated sets only)."""
    import pandas as pd

    frames = []
    for row in rows:
        df = pd.DataFrame(row["blocks"], columns=["layer", "variant", "mode", "round", "set", "t"])
        df["exp"], df["batch"], df["process"] = row["exp"], row["batch"], row["process"]
        frames.append(df)
    data = pd.concat(frames)
    data = data[data["mode"] == mode]
    data["y"] = np.log(data.t)
    out = {}
    for (exp, layer, variant), g in data.groupby(["exp", "layer", "variant"], sort=False):
        g = g.sort_values(["batch", "process", "round", "set"])
        out[exp, layer, variant] = nested_components(
            g.y.to_numpy().reshape(BATCHES, PER_BATCH, ROUNDS, SETS)
        )
    if mode == "alternated":
        wide = data.pivot_table(
            index=["exp", "layer", "batch", "process", "round", "set"],
            columns="variant",
            values="y",
        ).reset_index()
        wide["y"] = wide.standard - wide.separable
        for (exp, layer), g in wide.groupby(["exp", "layer"], sort=False):
            g = g.sort_values(["batch", "process", "round", "set"])
            out[exp, layer, "speedup"] = nested_components(
                g.y.to_numpy().reshape(BATCHES, PER_BATCH, ROUNDS, SETS)
            )
    return out


def pct(x: float) -> str:
    return "n/a" if not math.isfinite(x) else f"{x:.1%}"


def components() -> list[str]:
    t0 = time.time()
    rows = collect()
    loads = [r["load"] for r in rows]
    lines = [
        f"## components: {len(rows)} processes ({BATCHES} batches x {PER_BATCH} per experiment, "
        f"{ROUNDS} rounds x {SETS} sets of {BLOCK_S * 1e3:.0f} ms blocks), "
        f"{time.time() - t0:.0f} s; load average during it {min(loads):.2f}-{max(loads):.2f}; "
        f"at the end: {load()}",
        "",
        "Standard deviations of log time per iteration (about relative), alternated sets. "
        "`p` is the F test of the process level against the round level (small: processes "
        "differ by more than their rounds do).",
        "",
        "| experiment | layer | variant | block | round | process | batch | p |",
        "|---|---|---|---|---|---|---|---|",
    ]
    alt = table(rows, "alternated")
    for (exp, layer, variant), c in alt.items():
        lines.append(
            f"| {exp} | {layer} | {variant} | {pct(c['block'])} | {pct(c['round'])} | "
            f"{pct(c['process'])} | {pct(c['batch'])} | {c['p_process']:.3f} |"
        )
    lines += ["", "Median over layers and variants (standard, separable) of each level:", ""]
    lines += ["| experiment | block | round | process | batch | start-up s (median) |"]
    lines += ["|---|---|---|---|---|---|"]
    for exp in EXPERIMENTS:
        cs = [c for (e, _, v), c in alt.items() if e == exp and v != "speedup"]
        wall = float(np.median([r["wall_s"] for r in rows if r["exp"] == exp]))
        med = {k: float(np.median([c[k] for c in cs])) for k in ("block", "round", "process")}
        med["batch"] = float(np.nanmedian([c["batch"] for c in cs]))
        lines.append(
            f"| {exp} | {pct(med['block'])} | {pct(med['round'])} | {pct(med['process'])} | "
            f"{pct(med['batch'])} | {wall:.1f} |"
        )
    lines += context(rows)
    return lines


def context(rows: list[dict]) -> list[str]:
    """What ran just before: alone vs alternated blocks of one process, and both against
    torch.utils.benchmark's median in the same process (median over processes)."""
    lines = [
        "",
        "Context (spawned processes): per process, the median of its alone blocks over the "
        "median of its alternated blocks, and each against torch.utils.benchmark's median in "
        "that process; median over processes [min, max].",
        "",
        "| experiment | layer | variant | alone/alternated | alternated/tub | alone/tub |",
        "|---|---|---|---|---|---|",
    ]
    for exp in ("spawn", "threads2"):
        ratios: dict[tuple, list[tuple]] = {}
        for row in (r for r in rows if r["exp"] == exp):
            per: dict[tuple, list[float]] = {}
            for layer, v, mode, *_rest, t in row["blocks"]:
                per.setdefault((layer, v, mode), []).append(t)
            for layer in LAYERS:
                for v in ("standard", "separable"):
                    alone = float(np.median(per[layer, v, "alone"]))
                    alt = float(np.median(per[layer, v, "alternated"]))
                    tub = row["tub"][f"{layer}|{v}"]
                    ratios.setdefault((layer, v), []).append((alone / alt, alt / tub, alone / tub))
        for (layer, v), rs in ratios.items():
            arr = np.array(rs)
            cells = [
                f"{np.median(arr[:, i]):.3f} [{arr[:, i].min():.2f}, {arr[:, i].max():.2f}]"
                for i in range(3)
            ]
            lines.append(f"| {exp} | {layer} | {v} | " + " | ".join(cells) + " |")
    return lines


# ---------------------------------------------------------------------------------------------
# Personality: processes alive at the same time, taking turns
# ---------------------------------------------------------------------------------------------

GROUPS, WORKERS, TURN_SETS = 3, 6, 30
PERSONALITY = ("spawn", "aslr-off", "fork", "pinned", "thp")


def serve(threads: int, seed: int, read, write) -> None:
    """A worker of the personality part: build the layers once, then time one block per
    request (after one untimed call, as dscbench's turns start), until EOF."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    mods, inputs = {}, {}
    for name, (c, s, k) in LAYERS.items():
        mods[name, "standard"] = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).eval()
        mods[name, "separable"] = torch.nn.Sequential(
            torch.nn.Conv2d(c, c, k, padding=k // 2, groups=c, bias=False),
            torch.nn.Conv2d(c, c, 1, bias=False),
        ).eval()
        inputs[name] = torch.randn(1, c, s, s)
    clock = time.perf_counter
    with torch.inference_mode():
        for key, m in mods.items():
            for _ in range(3):
                m(inputs[key[0]])
        write.write("ready\n")
        write.flush()
        for line in read:
            cmd = json.loads(line)
            if cmd is None:  # an explicit stop: forked siblings hold each other's pipes open
                break
            m, x, n = mods[cmd["layer"], cmd["variant"]], inputs[cmd["layer"]], cmd["n"]
            m(x)
            t0 = clock()
            for _ in range(n):
                m(x)
            write.write(json.dumps((clock() - t0) / n) + "\n")
            write.flush()


class Worker:
    """One serving process, started the way an experiment says."""

    def __init__(self, exp: str, index: int, seed: int) -> None:
        how, extra, threads = EXPERIMENTS[exp]
        self.pid = None
        if how == "fork":
            import torch  # noqa: F401  (before the fork, as a fork server would)

            r1, w1 = os.pipe()
            r2, w2 = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(w1)
                os.close(r2)
                try:
                    serve(threads, seed, os.fdopen(r1), os.fdopen(w2, "w"))
                finally:
                    os._exit(0)
            os.close(r1)
            os.close(w2)
            self.pid, self.to, self.back = pid, os.fdopen(w1, "w"), os.fdopen(r2)
            return
        spec = {"threads": threads, "seed": seed, "pin": index % 2 if how == "pinned" else None}
        cmd = [sys.executable, __file__, "--serve", json.dumps(spec)]
        if how == "setarch":
            cmd = ["setarch", os.uname().machine, "-R", *cmd]
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **extra},
        )
        self.to, self.back = self.proc.stdin, self.proc.stdout

    def ready(self) -> None:
        assert self.back.readline().strip() == "ready"

    def time(self, layer: str, variant: str, n: int) -> float:
        self.to.write(json.dumps({"layer": layer, "variant": variant, "n": n}) + "\n")
        self.to.flush()
        return float(self.back.readline())

    def close(self) -> None:
        self.to.write("null\n")
        self.to.close()
        if self.pid is not None:
            os.waitpid(self.pid, 0)
        else:
            self.proc.wait()


def serve_main() -> None:
    spec = json.loads(sys.argv[2])
    if spec.get("pin") is not None:
        os.sched_setaffinity(0, {spec["pin"]})
    serve(spec["threads"], spec["seed"], sys.stdin, sys.stdout)


def turns() -> list[dict]:
    """Groups of WORKERS processes alive together; in each of TURN_SETS sets, every worker
    times one block of each layer and variant, workers in a fresh random order per block."""
    slots = [(layer, v) for layer in LAYERS for v in ("standard", "separable")]

    def produce(keep: Callable[[dict], None]) -> None:
        rng = np.random.default_rng(191)
        for group in range(GROUPS):
            for exp in map(str, rng.permutation(list(PERSONALITY))):
                workers = [Worker(exp, w, 7000 * group + w) for w in range(WORKERS)]
                for w in workers:
                    w.ready()
                n = {}
                for layer, v in slots:  # block sizes from the first worker, for all
                    per = workers[0].time(layer, v, 3)
                    n[layer, v] = max(1, math.ceil(BLOCK_S / per))
                for st in range(TURN_SETS):
                    for si in rng.permutation(len(slots)):
                        layer, v = slots[si]
                        for wi in rng.permutation(WORKERS):
                            t = workers[wi].time(layer, v, n[layer, v])
                            keep({"exp": exp, "group": group, "worker": int(wi), "set": st,
                                  "layer": layer, "variant": v, "t": t})  # fmt: skip
                for w in workers:
                    w.close()

    return cached("turns.jsonl", produce)


def two_way(y: np.ndarray) -> tuple[float, float, float]:
    """y[worker, set] (log seconds): the sd of the worker effect and of the residual
    (method of moments, two-way without replication) and the F test's p for workers."""
    from scipy import stats

    w, s = y.shape
    grand = y.mean()
    rows, cols = y.mean(axis=1), y.mean(axis=0)
    resid = y - rows[:, None] - cols[None, :] + grand
    ms_w = s * ((rows - grand) ** 2).sum() / (w - 1)
    ms_e = (resid**2).sum() / ((w - 1) * (s - 1))
    var_w = max(0.0, (ms_w - ms_e) / s)
    p = float(stats.f.sf(ms_w / ms_e, w - 1, (w - 1) * (s - 1)))
    return math.sqrt(var_w), math.sqrt(ms_e), p


def personality() -> list[str]:
    """How much processes alive at the same time differ, the machine's phases taken out
    (every set visits every worker within a few hundred milliseconds)."""
    import pandas as pd

    t0 = time.time()
    data = pd.DataFrame(turns())
    data["y"] = np.log(data.t)
    lines = [
        f"## personality: {GROUPS} groups of {WORKERS} processes alive together per "
        f"experiment, {TURN_SETS} sets in which every worker times one {BLOCK_S * 1e3:.0f} ms "
        f"block of each layer and variant in turn ({time.time() - t0:.0f} s; {load()} at the end)",
        "",
        "Per experiment, layer and variant: the sd between workers (their personality, the "
        "machine's phases removed by the sets), the residual sd (a block against its set and "
        "worker), and the share of groups whose F test for workers gives p < 0.01; median over "
        "groups. Then the speedup (standard/separable of one worker in one set).",
        "",
        "| experiment | layer | variant | between workers | residual | groups p<0.01 |",
        "|---|---|---|---|---|---|",
    ]
    summary = {}
    wide = data.pivot_table(
        index=["exp", "group", "layer", "worker", "set"], columns="variant", values="y"
    ).reset_index()
    wide["speedup"] = wide.standard - wide.separable
    for exp in PERSONALITY:
        for layer in LAYERS:
            for v in ("standard", "separable", "speedup"):
                res = []
                for g in range(GROUPS):
                    sub = wide[(wide.exp == exp) & (wide.group == g) & (wide.layer == layer)]
                    y = sub.pivot(index="worker", columns="set", values=v).to_numpy()
                    res.append(two_way(y))
                arr = np.array(res)
                between, resid = float(np.median(arr[:, 0])), float(np.median(arr[:, 1]))
                sig = int((arr[:, 2] < 0.01).sum())
                summary.setdefault(exp, []).append((v, between, resid))
                lines.append(
                    f"| {exp} | {layer} | {v} | {pct(between)} | {pct(resid)} | {sig}/{GROUPS} |"
                )
    lines += ["", "| experiment | between workers, latency (median) | speedup (median) |"]
    lines += ["|---|---|---|"]
    for exp, rows in summary.items():
        lat = float(np.median([b for v, b, _ in rows if v != "speedup"]))
        sp = float(np.median([b for v, b, _ in rows if v == "speedup"]))
        lines.append(f"| {exp} | {pct(lat)} | {pct(sp)} |")
    return lines


PARTS = {"components": components, "personality": personality}

if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker_main()
    elif len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_main()
    else:
        main("Noise benchmark report (issue 19)", "bench_noise.py", "noise", PARTS)
