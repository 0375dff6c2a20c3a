"""Benchmarks behind the targets of the CI-gate issue (interleaved environments, round-level
intervals, the machine canary). Run with `nox -s bench -- gate [parts]`.

Parts (default all, in this order; later parts reuse the runs earlier ones stored in
results/bench-gate/, git-ignored; DSCBENCH_BENCH_STORE points at another store):
  runs         11 back-to-back `dscbench run --preset quick --threads 1` runs (seq/run-XX)
  interleaved  5 interleaved A/A runs `dscbench run --preset quick --env base= --env head=`
               (int/run-XX)
  calibration  how often a run's 95% speedup interval contains the next run's estimate: the
               round-level t interval dscbench prints now, and the block bootstrap it printed
               before, recomputed on the same samples (target >= 80%; before: 10%)
  canary       how the canary's speed follows the conv rows' speed: within runs (per-round
               canary against the rows' shared round effect) and between runs (whole-run shift
               of the rows against the canary's), the tracking error compare allows for
  sequential   the 10 back-to-back A/A pairs through `compare` (target: no exit 1); a copy of
               the steadiest and of the busiest run with every latency x1.25, canary untouched
               (target: exit 1), and with the canary x1.25 too (a machine shift: exit 0)
  aa           the interleaved A/A runs through `compare RUN` (target: no exit 1, >= 90% same)
  power        resampled interleaved A/A runs (rounds, then sets within a round, keeping every
               block of a set together): false alarms, and power for a 15% and a 5% slowdown
               injected into 3 rows of one environment (target >= 95% at 15%, false alarms
               < 1%), over all runs and over the disturbed ones (rounds disagreeing > 5%)
  isa          interleaved A/B: default vs ONEDNN_MAX_CPU_ISA=SSE41; every row an independent
               timer (torch.utils.benchmark, the two settings in alternating processes) finds
               more than 5% slower must be `slower`, with exit 1
  spin         two processes taking turns with a 2-thread conv: a turn right after the other
               process's turn against one right after its own, at libgomp's default spinning
               and at GOMP_SPINCOUNT=10000
  fresh        interleaved A/A with buffers kept for the whole run vs rebuilt every visit
  overhead     wall time outside timed blocks: the interleaved A/A runs (target <= 10%), and a
               plain quick run measured in-process (--processes 1) next to the default (three
               worker processes), back to back

Every figure comes with how busy the machine was: the run's round spread (median over rows of
the spread of its round values; steady runs stay under 3%) and the load average at its start.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import dscbench, run_parts

STORE = Path(os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-gate"))
# Extra flags for every run the `runs` and `interleaved` parts make (e.g. "--processes 1").
EXTRA = os.environ.get("DSCBENCH_BENCH_RUN_ARGS", "").split()
SEQ_RUNS = 11
INT_RUNS = 5
TRIALS = int(os.environ.get("DSCBENCH_BENCH_TRIALS", "200"))
ISA = "SSE41"
KEY = ["config_id", "backend", "variant"]


def _dirs(kind: str) -> list[Path]:
    return sorted(p for p in (STORE / kind).glob("run-*") if (p / "run.json").exists())


def _load(kind: str):
    from dscbench import results

    return [results.load_results(d) for d in _dirs(kind)]


def busy(meta: dict) -> str:
    load = (meta.get("environment") or {}).get("load_average") or [float("nan")]
    return f"round spread {meta.get('round_spread', float('nan')):.1%}, load {load[0]:.2f}"


def _commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def runs() -> list[str]:
    (STORE / "seq").mkdir(parents=True, exist_ok=True)
    args = ["--preset", "quick", "--threads", "1", *EXTRA, "--force", "-o"]
    walls = [dscbench(*args, str(STORE / "seq" / f"run-{i:02d}")) for i in range(SEQ_RUNS)]
    lines = [
        f"## runs: {SEQ_RUNS} back-to-back `dscbench run {' '.join(args[:-2])}` "
        f"({sum(walls):.0f} s, commit {_commit()})"
    ]
    for d, rs in zip(_dirs("seq"), _load("seq"), strict=True):
        lines.append(f"- {d.name}: {busy(rs.meta)}")
    return lines


def interleaved() -> list[str]:
    (STORE / "int").mkdir(parents=True, exist_ok=True)
    walls = []
    args = ["--preset", "quick", "--env", "base=", "--env", "head=", *EXTRA]
    for i in range(INT_RUNS):
        out = STORE / "int" / f"run-{i:02d}"
        walls.append(dscbench(*args, "-o", str(out), "--force"))
    lines = [
        f"## interleaved: {INT_RUNS} `dscbench run {' '.join(args)}` "
        f"({sum(walls):.0f} s, commit {_commit()})"
    ]
    for d, rs in zip(_dirs("int"), _load("int"), strict=True):
        lines.append(f"- {d.name}: {busy(rs.meta)}")
    return lines


# ---------------------------------------------------------------------------------------------
# Calibration of the run's speedup interval
# ---------------------------------------------------------------------------------------------


def _pairs(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per (config, set) with the standard and separable block times and the round."""
    wide = samples.pivot_table(
        index=["config_id", "round", "pair"], columns="variant", values="time_s", aggfunc="first"
    ).dropna()
    return wide.reset_index()


def block_bootstrap(pairs: pd.DataFrame, resamples: int = 2000, seed: int = 0) -> tuple:
    """What dscbench printed before: the median of the per-pair ratios, with a 2000-resample
    percentile bootstrap over pairs, stratified by round."""
    ratios = (pairs["standard"] / pairs["separable"]).to_numpy()
    rounds = pairs["round"].to_numpy()
    rng = np.random.default_rng(seed)
    columns = []
    for r in np.unique(rounds):
        members = np.flatnonzero(rounds == r)
        columns.append(members[rng.integers(0, members.size, size=(resamples, members.size))])
    boot = np.median(ratios[np.concatenate(columns, axis=1)], axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(np.median(ratios)), float(low), float(high)


def calibration() -> list[str]:
    sets = _load("seq")
    if len(sets) < 2:
        return ["## calibration: needs the `runs` part first"]
    now_hits = before_hits = rows = 0
    now_half, before_half, diffs = [], [], []
    for a, b in itertools.pairwise(sets):
        sep_a = a.results[a.results.variant == "separable"].set_index("config_id")
        sep_b = b.results[b.results.variant == "separable"].set_index("config_id")
        pa, pb = _pairs(a.samples), _pairs(b.samples)
        for config in sep_a.index.intersection(sep_b.index):
            ra, rb = sep_a.loc[config], sep_b.loc[config]
            if not (np.isfinite(ra.speedup) and np.isfinite(rb.speedup)):
                continue
            rows += 1
            now_hits += ra.speedup_ci_low <= rb.speedup <= ra.speedup_ci_high
            now_half.append((ra.speedup_ci_high - ra.speedup_ci_low) / 2 / ra.speedup)
            old_a = block_bootstrap(pa[pa.config_id == config])
            old_b = block_bootstrap(pb[pb.config_id == config])
            before_hits += old_a[1] <= old_b[0] <= old_a[2]
            before_half.append((old_a[2] - old_a[1]) / 2 / old_a[0])
            diffs.append(abs(np.log(rb.speedup / ra.speedup)))
    modes = _process_modes(sets)
    return [
        f"## calibration: {len(sets) - 1} consecutive pairs of the {len(sets)} runs, {rows} rows",
        f"- round-level t interval (now): contains the next run's speedup in {now_hits} of "
        f"{rows} = **{now_hits / rows:.0%}** (target >= 80%); median half-width "
        f"{np.median(now_half):.1%}",
        f"- block bootstrap (before), same samples: {before_hits} of {rows} = "
        f"**{before_hits / rows:.0%}**; median half-width {np.median(before_half):.1%}",
        f"- consecutive runs' speedups differed by a median {np.median(diffs):.1%} "
        f"(90th percentile {np.percentile(diffs, 90):.1%})",
        *modes,
    ]


def _process_modes(sets) -> list[str]:
    """Per-process modes: a variant whose median latency in one process (the rounds that process
    measured) sits more than 15% above its median over every process of every run."""
    processes = int(sets[0].meta["harness"].get("processes", 1))
    cells = []
    for i, rs in enumerate(sets):
        s = rs.samples.assign(process=rs.samples["round"] % processes)
        per = s.groupby(["config_id", "variant", "process"]).time_s.median()
        cells.append(per.rename(i))
    table = pd.concat(cells, axis=1).stack()  # (config, variant, process, run) -> seconds
    typical = table.groupby(level=["config_id", "variant"]).transform("median")
    slow = table[table > 1.15 * typical]
    ratio = table / typical
    listed = "; ".join(
        f"{c[:24]} {v} run {run} process {p}: x{ratio[(c, v, p, run)]:.2f}"
        for (c, v, p, run) in slow.index
    )
    return [
        f"- per-process modes (a variant > 15% slower than usual for a whole process): "
        f"{len(slow)} of {len(table)} process x variant cells ({processes} process(es) per run)"
        + (f": {listed}" if listed else "")
    ]


# ---------------------------------------------------------------------------------------------
# The canary
# ---------------------------------------------------------------------------------------------


def canary() -> list[str]:
    from dscbench import canary as canaries
    from dscbench import compare, stats

    sets = _load("seq")
    if len(sets) < 2:
        return ["## canary: needs the `runs` part first"]
    described = sets[0].meta["canary"]["describe"]
    parts = [p for p in ("compute", "memory") if p in sets[0].meta["canary"]["samples"][0]]
    lines = [
        "## canary: does the canary's speed follow the conv rows'?",
        f"- canary version {described['implementation']['version']}: {described['workload']}",
    ]
    xs: dict[str, list[float]] = {p: [] for p in parts}
    ys: list[float] = []
    for rs in sets:
        effects = stats.round_effects(stats.round_values(rs.samples, "latency"), stats.runs.KEY)
        for part in parts:
            per = canaries.per_round(rs.meta["canary"]["samples"], part)
            centred = np.array([per[r] for r in effects.index]) - np.mean(list(per.values()))
            xs[part].extend(centred)
        ys.extend(effects.to_numpy() - effects.mean())
    y = np.array(ys)
    lines.append(
        f"- within runs ({len(y)} rounds of {len(sets)} runs): the rows' shared round effect "
        f"has sd {y.std():.1%}; its correlation with the canary's round value: "
        + ", ".join(f"{part} {np.corrcoef(np.array(x), y)[0, 1]:+.2f}" for part, x in xs.items())
    )
    rows_shift = []
    predicted = []
    part_shift: dict[str, list[float]] = {p: [] for p in parts}
    for a, b in itertools.pairwise(sets):
        shift = compare.compare_sets(a, b).shifts[0]
        rows_shift.append(np.log(shift.ratio))
        predicted.append(shift.drift)
        for part in parts:
            pa = canaries.per_round(a.meta["canary"]["samples"], part)
            pb = canaries.per_round(b.meta["canary"]["samples"], part)
            part_shift[part].append(np.mean(list(pb.values())) - np.mean(list(pa.values())))
    r = np.array(rows_shift)
    lines.append(
        f"- between consecutive runs ({len(r)} pairs): the rows' whole-run shift had sd "
        f"{r.std():.1%} (largest {np.abs(r).max():.1%})"
    )
    for part, shifts in part_shift.items():
        k = np.array(shifts)
        excess = r - k
        lines.append(
            f"- {part} part: its shift had sd {k.std():.1%} (largest {np.abs(k).max():.1%}); "
            f"rows' shift minus its shift: sd **{excess.std():.1%}**, largest "
            f"{np.abs(excess).max():.1%} (compare allows CANARY_TRACKING_SD = "
            f"{compare.CANARY_TRACKING_SD:.0%} on top of both estimates' own uncertainty)"
        )
    p = np.array(predicted)
    excess = r - np.array(part_shift[parts[0]])
    inside = int(np.sum(np.abs(excess) <= 1.96 * p))
    lines.append(
        f"- what compare now allows per pair for that drift (the shift's `drift`: from the two "
        f"runs' own rounds, at least {compare.CANARY_TRACKING_SD:.0%}): sd median "
        f"{np.median(p):.1%} (range {p.min():.1%}-{p.max():.1%}); the observed "
        f"rows-minus-canary shift lies within 1.96 x that in **{inside} of {len(p)}** pairs"
    )
    return lines


# ---------------------------------------------------------------------------------------------
# Gates on real runs
# ---------------------------------------------------------------------------------------------


def _verdicts(comparison) -> str:
    counts = {v: comparison.count(v) for v in ("slower", "faster", "same", "inconclusive")}
    return ", ".join(f"{n} {v}" for v, n in counts.items() if n)


def sequential() -> list[str]:
    from dscbench import compare
    from dscbench.results import ResultSet

    sets = _load("seq")
    if len(sets) < 2:
        return ["## sequential: needs the `runs` part first"]
    lines = ["## sequential: back-to-back runs through `dscbench compare BASE HEAD`"]
    exits = []
    for i, (a, b) in enumerate(itertools.pairwise(sets)):
        c = compare.compare_sets(a, b)
        exits.append(c.exit_code())
        shift = c.shifts[0]
        lines.append(
            f"- run-{i:02d} vs run-{i + 1:02d}: exit {c.exit_code()}; {_verdicts(c)}; rows moved "
            f"x{shift.ratio:.3f} ({_reading(shift)}), canary {_canary(c)}; "
            f"{busy(a.meta)} / {busy(b.meta)}"
        )
    lines.append(f"- **{sum(e == 1 for e in exits)} of {len(exits)} A/A pairs exit 1** (target 0)")
    by_spread = sorted(sets, key=lambda rs: rs.meta["round_spread"])
    for name, run in (("steadiest", by_spread[0]), ("busiest", by_spread[-1])):
        slow = ResultSet(run.meta, run.results, run.samples.assign(
            time_s=run.samples.time_s * 1.25))  # fmt: skip
        c = compare.compare_sets(run, slow)
        lines.append(
            f"- {name} run ({busy(run.meta)}) against a copy with every latency x1.25, canary "
            f"untouched: **exit {c.exit_code()}**; {_verdicts(c)}; shift read as "
            f"{_reading(c.shifts[0])}; canary {_canary(c)}"
        )
        meta = json.loads(json.dumps(run.meta))
        for sample in meta["canary"]["samples"]:
            for part in meta["canary"]["describe"]["parts"]:
                sample[part] *= 1.25
        c = compare.compare_sets(run, ResultSet(meta, slow.results, slow.samples))
        lines.append(
            f"- the same with the canary x1.25 too (the machine slowed): exit {c.exit_code()}; "
            f"{_verdicts(c)}; shift read as {_reading(c.shifts[0])}; canary {_canary(c)}"
        )
    return lines


def _reading(shift) -> str:
    """The shift's cause, with the whole run's verdict net of the canary where there is one."""
    text = shift.cause or "no shift"
    if shift.verdict:
        text += f", whole run {shift.verdict} x{shift.beyond_low:.3f}-x{shift.beyond_high:.3f}"
    return text


def _canary(c) -> str:
    k = c.canary
    return f"x{k.ratio:.3f} [{k.ci_low:.3f}, {k.ci_high:.3f}]" if k.available else k.reason


def aa() -> list[str]:
    from dscbench import compare

    sets = _load("int")
    if not sets:
        return ["## aa: needs the `interleaved` part first"]
    lines = ["## aa: interleaved A/A runs through `dscbench compare RUN` (threshold 5%)"]
    same = rows = 0
    for d, rs in zip(_dirs("int"), sets, strict=True):
        c = compare.compare_envs(rs)
        same += c.count("same")
        rows += len(c.changes)
        lines.append(
            f"- {d.name}: exit {c.exit_code()}; {_verdicts(c)}; paired-round spread "
            f"{c.round_spread['paired']:.1%}; {busy(rs.meta)}"
        )
    lines.append(f"- **{same} of {rows} rows same = {same / rows:.0%}** (target >= 90%)")
    return lines


class SetResampler:
    """Pseudo-runs from one real interleaved run: rounds with replacement, then within each
    round and configuration its sets with replacement, every block of a chosen set kept
    together (the pairing is the design). Only complete sets (every environment x variant)
    take part."""

    def __init__(self, rs):
        s = rs.samples.reset_index(drop=True)
        width = s.groupby(["env", "variant"]).ngroups
        full = s.groupby(["config_id", "round", "pair"]).time_s.transform("size") == width
        s = s[full].sort_values(["config_id", "round", "pair", "env", "variant"])
        self.rs, self.samples = rs, s.reset_index(drop=True)
        self.width = width
        sets = self.samples.iloc[::width][["config_id", "round"]].reset_index(drop=True)
        self.rounds = np.sort(sets["round"].unique())
        self.by_cell = {
            key: group.index.to_numpy() for key, group in sets.groupby(["config_id", "round"])
        }
        self.configs = list(dict.fromkeys(sets.config_id))

    def draw(self, rng: np.random.Generator, slow: dict[tuple, float]):
        from dscbench.results import ResultSet

        picked = rng.choice(self.rounds, size=self.rounds.size, replace=True)
        chosen, new_round = [], []
        for r, old in enumerate(picked):
            for config in self.configs:
                members = self.by_cell.get((config, old))
                if members is None:
                    continue
                chosen.append(members[rng.integers(0, members.size, members.size)])
                new_round.append(np.full(members.size, r))
        sets = np.concatenate(chosen)
        rows = (sets[:, None] * self.width + np.arange(self.width)).ravel()
        out = self.samples.iloc[rows].copy()
        out["round"] = np.repeat(np.concatenate(new_round), self.width).astype("int32")
        out["pair"] = np.repeat(np.arange(sets.size), self.width).astype("int32")
        for (config, backend, variant), factor in slow.items():
            hit = (
                (out.config_id == config)
                & (out.backend == backend)
                & (out.variant == variant)
                & (out.env == "head")
            )
            out.loc[hit, "time_s"] *= factor
        return ResultSet(self.rs.meta, self.rs.results, out.reset_index(drop=True))


def power() -> list[str]:
    from dscbench import compare

    sets = _load("int")
    if not sets:
        return ["## power: needs the `interleaved` part first"]
    spreads = [compare.compare_envs(rs).round_spread for rs in sets]
    disturbed = [i for i, rs in enumerate(sets) if rs.meta["round_spread"] > 0.05]
    lines = [
        f"## power: {TRIALS} resampled trials per line from {len(sets)} real interleaved runs "
        "(threshold 5%, 95% intervals; 3 random rows of `head` slowed)",
        "- round spread per run (median over rows; per environment / paired): "
        + "; ".join(f"{sp['base']:.1%}/{sp['paired']:.1%}" for sp in spreads),
    ]
    keys = list(sets[0].samples.groupby(KEY, sort=False).groups)
    pools = {"all runs": list(range(len(sets)))}
    if disturbed:
        pools["disturbed runs (rounds disagree > 5%)"] = disturbed
    else:
        lines.append("- no run had rounds disagreeing by more than 5%")
    resamplers = [SetResampler(rs) for rs in sets]
    start = time.perf_counter()
    for name, pool in pools.items():
        rng = np.random.default_rng(0)
        t = dict(rows=0, alarms=0, exits=0, hits15=0, hits5=0, injected=0)
        for _ in range(TRIALS):
            resampler = resamplers[pool[rng.integers(len(pool))]]
            c = compare.compare_envs(resampler.draw(rng, {}))
            t["rows"] += len(c.changes)
            t["alarms"] += c.count("slower")
            t["exits"] += c.exit_code() == 1
            chosen = [keys[k] for k in rng.choice(len(keys), 3, replace=False)]
            for factor, tally in ((1.15, "hits15"), (1.05, "hits5")):
                pseudo = resampler.draw(rng, dict.fromkeys(chosen, factor))
                found = {ch.key[:2] + ch.key[3:]: ch.verdict for ch in compare.compare_envs(
                    pseudo).changes}  # fmt: skip
                t[tally] += sum(found[k] == "slower" for k in chosen)
            t["injected"] += 3
        lines.append(
            f"- {name}: A/A {t['alarms']} of {t['rows']} rows slower = "
            f"**{t['alarms'] / t['rows']:.2%}** (target < 1%; {t['exits']} of {TRIALS} trials "
            f"exit 1); power at 15%: **{t['hits15'] / t['injected']:.1%}** (target >= 95%); "
            f"at 5%: {t['hits5'] / t['injected']:.1%}"
        )
    lines.append(f"- ({time.perf_counter() - start:.0f} s)")
    return lines


# ---------------------------------------------------------------------------------------------
# A real slowdown: an older instruction set for oneDNN
# ---------------------------------------------------------------------------------------------

INDEPENDENT = r"""
import json, sys, torch
from torch.utils.benchmark import Timer
from dscbench import ops
from dscbench.spec import spec_from_json
threads = int(sys.argv[2])
out = {}
for row in json.loads(sys.argv[1]):
    spec = spec_from_json(row["spec"])
    module, x = ops.instance(spec, row["variant"], 0)
    with torch.inference_mode():
        timer = Timer("m(x)", globals={"m": module, "x": x}, num_threads=threads)
        m = timer.blocked_autorange(min_run_time=0.3)
    out[row["config_id"] + " " + row["variant"]] = m.median
print(json.dumps(out))
"""


def isa() -> list[str]:
    from dscbench import compare, results
    from dscbench.spec import load_preset, spec_to_json

    out = STORE / "isa"
    old = f"old=:ONEDNN_MAX_CPU_ISA={ISA}"
    wall = dscbench("--preset", "quick", "--env", "base=", "--env", old, "-o", str(out), "--force")
    rs = results.load_results(out)
    c = compare.compare_envs(rs)
    threads = int(rs.results.threads.iloc[0])
    cases = load_preset("quick").cases(threads)
    rows = [
        {"config_id": case.spec.config_id, "variant": v, "spec": spec_to_json(case.spec)}
        for case in cases
        for v in ("standard", "separable")
    ]
    runs: dict[str, list[dict[str, float]]] = {"base": [], "old": []}
    for _ in range(3):  # the two settings in alternating processes
        for env, extra in (("base", {}), ("old", {"ONEDNN_MAX_CPU_ISA": ISA})):
            proc = subprocess.run(
                [sys.executable, "-c", INDEPENDENT, json.dumps(rows), str(threads)],
                capture_output=True,
                text=True,
                check=True,
                env={**os.environ, **extra},
            )
            runs[env].append(json.loads(proc.stdout))
    truth = {
        k: float(np.median([o[k] for o in runs["old"]]) / np.median([b[k] for b in runs["base"]]))
        for k in runs["base"][0]
    }
    lines = [
        f"## isa: interleaved `--env base= --env old=:ONEDNN_MAX_CPU_ISA={ISA}` ({wall:.0f} s; "
        f"{busy(rs.meta)}): **exit {c.exit_code()}**; {_verdicts(c)}",
        "",
        "| row | dscbench old/base [95% CI] | verdict | torch.utils.benchmark old/base |",
        "|---|---:|---|---:|",
    ]
    missed = 0
    for ch in c.changes:
        true = truth[f"{ch.config_id} {ch.variant}"]
        if true > 1.05 and ch.verdict != "slower":
            missed += 1
        lines.append(
            f"| {ch.label} {ch.variant} | {ch.ratio:.3f} [{ch.ci_low:.3f}, {ch.ci_high:.3f}] | "
            f"{ch.verdict} | {true:.3f} |"
        )
    really = sum(t > 1.05 for t in truth.values())
    lines += [
        "",
        f"- rows the independent timer finds > 5% slower: {really}; of those not `slower` in "
        f"dscbench: **{missed}** (target 0)",
    ]
    return lines


# ---------------------------------------------------------------------------------------------
# What the workers cost
# ---------------------------------------------------------------------------------------------


def _outside(meta: dict) -> tuple[float, dict[str, float]]:
    t = meta["timings"]
    wall = t["wall_s"]
    parts = {k[:-2]: v / wall for k, v in t.items() if isinstance(v, float) and k != "wall_s"}
    return 1 - t["timed_s"] / wall, parts


def overhead() -> list[str]:
    from dscbench import results

    lines = ["## overhead: wall time outside timed blocks"]
    for d, rs in zip(_dirs("int"), _load("int"), strict=True):
        share, parts = _outside(rs.meta)
        shown = ", ".join(
            f"{k} {v:.1%}" for k, v in parts.items() if k not in ("timed",) and v >= 0.002
        )
        lines.append(
            f"- interleaved {d.name}: wall {rs.meta['timings']['wall_s']:.0f} s, "
            f"**{share:.1%} outside timed blocks** (target <= 10%): {shown}; {busy(rs.meta)}"
        )
    pair = {}
    for name, args in (("in-process (--processes 1)", ["--processes", "1"]),
                       ("default (three worker processes)", [])):  # fmt: skip
        out = STORE / "overhead" / name.split()[0]
        if out.exists():
            shutil.rmtree(out)
        wall = dscbench("--preset", "quick", *args, "-o", str(out))
        pair[name] = (wall, results.load_results(out).meta)
    for name, (wall, meta) in pair.items():
        share, _ = _outside(meta)
        lines.append(
            f"- {name} run, back to back: process wall {wall:.1f} s, {share:.1%} outside timed "
            f"blocks; {busy(meta)}"
        )
    return lines


SPIN_CHILD = r"""
import sys, time, torch
torch.set_num_threads(2)
m = torch.nn.Conv2d(32, 32, 3, padding=1).eval()
x = torch.randn(1, 32, 56, 56)
with torch.inference_mode():
    for _ in range(50):
        m(x)
    for line in sys.stdin:
        n = int(line)
        t = time.perf_counter()
        for _ in range(n):
            m(x)
        print(time.perf_counter() - t, flush=True)
"""


def spin() -> list[str]:
    """Two processes taking turns with a 2-thread conv: process A's turn right after its own
    previous turn, against right after process B's turn (B's OpenMP threads may still be
    spinning), at libgomp's default spinning and at the GOMP_SPINCOUNT interleaved workers get.
    The two orders alternate, so the machine's drift hits both alike."""
    lines = [
        "## spin: a 32->32 @56 k3 conv (2 threads) in process A, right after A's own previous "
        "turn vs right after process B's turn (15 calls a turn, medians of 300 turns each)"
    ]
    settings = (("libgomp default", {}), ("GOMP_SPINCOUNT=10000", {"GOMP_SPINCOUNT": "10000"}))
    for label, extra in settings:
        env = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"} | extra
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", SPIN_CHILD],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]

        def turn(p) -> float:
            p.stdin.write("15\n")
            p.stdin.flush()
            return float(p.stdout.readline()) / 15

        own, other = [], []
        for _ in range(300):
            turn(procs[0])
            own.append(turn(procs[0]))  # right after A's own turn
            turn(procs[1])
            other.append(turn(procs[0]))  # right after B's turn
        for p in procs:
            p.kill()
        a, b = np.median(own), np.median(other)
        lines.append(
            f"- {label}: after its own turn {a * 1e6:.0f} us, right after the other process's "
            f"turn {b * 1e6:.0f} us (x{b / a:.2f})"
        )
    return lines


def fresh() -> list[str]:
    """Interleaved A/A with variants kept for the whole run (--no-fresh) and rebuilt every visit
    (the default), back to back: how far apart two identical workers land."""
    from dscbench import compare, results

    lines = [
        "## fresh: interleaved A/A quick runs, buffers kept (`--no-fresh`) vs rebuilt every "
        "visit, one process per environment so that only the buffers differ"
    ]
    for label, args in (("kept (--no-fresh)", ["--no-fresh"]), ("rebuilt (default)", [])):
        out = STORE / "fresh" / args[0].strip("-") if args else STORE / "fresh" / "fresh"
        dscbench("--preset", "quick", "--env", "base=", "--env", "head=", "--processes", "1",
                 *args, "-o", str(out), "--force")  # fmt: skip
        rs = results.load_results(out)
        c = compare.compare_envs(rs)
        log_ratios = np.log([ch.ratio for ch in c.changes])
        lines.append(
            f"- {label}: exit {c.exit_code()}; {_verdicts(c)}; rows' A/A log-ratios sd "
            f"{log_ratios.std():.1%}, largest |ratio - 1| "
            f"{np.expm1(np.abs(log_ratios)).max():.1%}; {busy(rs.meta)}"
        )
    return lines


PARTS = {
    "runs": runs,
    "interleaved": interleaved,
    "calibration": calibration,
    "canary": canary,
    "sequential": sequential,
    "aa": aa,
    "power": power,
    "isa": isa,
    "overhead": overhead,
    "spin": spin,
    "fresh": fresh,
}

if __name__ == "__main__":
    run_parts(PARTS, sys.argv[1:])
