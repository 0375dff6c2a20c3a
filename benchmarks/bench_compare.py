"""Benchmarks behind the targets of the compare issue. Run with `nox -s bench -- compare`.

Parts (pass names to run a subset; default all):
  runs       measure RUNS (10) back-to-back `dscbench run --preset quick` runs (default
             settings) into results/bench-compare/ (git-ignored; later parts reuse them if
             present). DSCBENCH_BENCH_STORE and DSCBENCH_BENCH_RUN_ARGS (e.g. "--rounds 10")
             measure and evaluate another set.
  real-aa    compare runs 0-1, 2-3, ...: 5 real A/A comparisons; exit codes and verdicts
  simulate   A/A and power from the real samples: each trial takes two real runs (by one of
             three designs: the same run twice, back-to-back runs, any two runs), resamples
             each (rounds with replacement, then samples within each round) and compares them
             at the default settings. A/A: share of rows flagged slower (target < 1%). Power:
             3 random rows of the candidate slowed by 15% (target >= 95% flagged slower); also
             all rows slowed together, which dscbench reports as a whole-run shift.
  quiet      the same simulation over the steady runs only (round spread < 3%, the level
             at which `compare` warns that a run was disturbed)
  tradeoff   the same simulation at --confidence 0.80 / 0.90 / 0.95 / 0.99 (latency)
  scale      two synthetic 10,000-row result sets (50 samples a row) compared by the CLI in a
             fresh interpreter: wall time (target < 3 s) and whether torch was imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from bench_run import dscbench, run_parts

RUNS = 10
TRIALS = 200
# Where the real runs live; DSCBENCH_BENCH_STORE points the later parts at another set.
STORE = Path(os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-compare"))
EXTRA_RUN_ARGS = os.environ.get("DSCBENCH_BENCH_RUN_ARGS", "").split()  # e.g. "--rounds 10"


def _run_dirs() -> list[Path]:
    return sorted(p for p in STORE.glob("run-*") if (p / "run.json").exists())


def runs() -> list[str]:
    STORE.mkdir(parents=True, exist_ok=True)
    walls = []
    for i in range(RUNS):
        out = str(STORE / f"run-{i:02d}")
        walls.append(dscbench("--preset", "quick", *EXTRA_RUN_ARGS, "-o", out, "--force"))
    flags = " ".join(["--preset quick", *EXTRA_RUN_ARGS])
    return [
        f"## runs: {RUNS} back-to-back `dscbench run {flags}` runs in {STORE} ({sum(walls):.0f} s)"
    ]


def _compare(a: Path, b: Path) -> tuple[int, dict]:
    out = subprocess.run(
        [sys.executable, "-m", "dscbench", "compare", str(a), str(b), "--format", "json"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.returncode, json.loads(out.stdout)


def real_aa() -> list[str]:
    dirs = _run_dirs()
    lines = ["## real-aa: back-to-back quick runs compared (default settings)"]
    for a, b in zip(dirs[0::2], dirs[1::2], strict=False):
        code, doc = _compare(a, b)
        summary = {k: v for k, v in doc["summary"].items() if v and k != "geometric_mean_ratio"}
        shift = doc["shifts"][0]
        lines.append(
            f"- {a.name} vs {b.name}: exit {code}; {summary}; geometric-mean ratio "
            f"{doc['summary']['geometric_mean_ratio']:.3f}; whole-run shift x{shift['ratio']:.3f} "
            f"[{shift['ci_low']:.3f}, {shift['ci_high']:.3f}]"
        )
    return lines


def _pseudo_run(rs, rng: np.random.Generator, slow: dict[tuple, float]):
    """Resample a real run: rounds with replacement, then each row's samples within a round."""
    from dscbench.results import ResultSet

    samples = rs.samples
    rounds = sorted(samples["round"].unique())
    picked = rng.choice(rounds, size=len(rounds), replace=True)
    parts = []
    for new_round, old_round in enumerate(picked):
        chunk = samples[samples["round"] == old_round]
        for key, group in chunk.groupby(["config_id", "backend", "env", "variant"], sort=False):
            take = group.iloc[rng.integers(0, len(group), len(group))].copy()
            take["round"] = new_round
            take["time_s"] = take["time_s"] * slow.get(key, 1.0)
            parts.append(take)
    resampled = pd.concat(parts, ignore_index=True)
    # Pair indices must stay unique within a row for the speedup metric; renumber per row.
    resampled["pair"] = resampled.groupby(["config_id", "backend", "env", "variant"]).cumcount()
    return ResultSet(rs.meta, rs.results, resampled)


# Which two real runs a simulated comparison draws from.
DESIGNS = {
    "one run resampled twice (within-run noise only)": lambda n, rng: (i := rng.integers(n), i),
    "back-to-back runs (as in the CI recipe)": lambda n, rng: tuple(
        rng.permutation([k := rng.integers(n - 1), k + 1])
    ),
    "any two runs of the session (up to 7 min apart)": lambda n, rng: tuple(
        rng.choice(n, size=2, replace=False)
    ),
}


def _trials(sets, pick, rng, metric: str = "latency", confidence: float = 0.95) -> dict[str, int]:
    from functools import partial

    from dscbench import compare

    compare_sets = partial(compare.compare_sets, confidence=confidence)

    keys = list(
        sets[0].samples.groupby(["config_id", "backend", "env", "variant"], sort=False).groups
    )
    tally = dict(
        rows=0, alarms=0, trials_alarmed=0, injected=0, hits=0, uniform=0, uniform_slower=0
    )
    for _ in range(TRIALS):
        i, j = pick(len(sets), rng)
        base = _pseudo_run(sets[i], rng, {})
        changes = compare_sets(base, _pseudo_run(sets[j], rng, {}), metric=metric).changes
        slower = sum(c.verdict == "slower" for c in changes)
        tally["rows"] += len(changes)
        tally["alarms"] += slower
        tally["trials_alarmed"] += slower > 0
        # A regression in 3 random rows; for the speedup metric, in their separable variant.
        chosen = rng.choice(len(keys), 3, replace=False)
        injected = {(*keys[k][:3], "separable") if metric == "speedup" else keys[k] for k in chosen}
        cand = _pseudo_run(sets[j], rng, dict.fromkeys(injected, 1.15))
        changes = compare_sets(base, cand, metric=metric).changes
        hit = {k[:3] if metric == "speedup" else k for k in injected}
        tally["hits"] += sum(
            c.verdict == "slower"
            for c in changes
            if (c.key[:3] if metric == "speedup" else c.key) in hit
        )
        tally["injected"] += len(hit)
        if metric == "latency":
            cand = _pseudo_run(sets[j], rng, dict.fromkeys(keys, 1.15))
            changes = compare_sets(base, cand).changes
            tally["uniform_slower"] += sum(c.verdict == "slower" for c in changes)
            tally["uniform"] += len(changes)
    return tally


def simulate() -> list[str]:
    from dscbench import results

    sets = [results.load_results(d) for d in _run_dirs()]
    if len(sets) < 3:
        return ["## simulate: needs the `runs` part first"]
    lines = [
        f"## simulate: {TRIALS} trials per design over {len(sets)} real quick runs, default "
        "settings (threshold 5%, 95% intervals); 3 random rows slowed 15% for power"
    ]
    start = time.perf_counter()
    for name, pick in DESIGNS.items():
        for metric in ("latency", "speedup"):
            t = _trials(sets, pick, np.random.default_rng(0), metric)
            line = (
                f"- {name}, {metric}: A/A {t['alarms']} of {t['rows']} rows slower = "
                f"{t['alarms'] / t['rows']:.2%} (target < 1%; {t['trials_alarmed']} of {TRIALS} "
                f"trials with any); power {t['hits']} of {t['injected']} = "
                f"{t['hits'] / t['injected']:.1%} (target >= 95%)"
            )
            if t["uniform"]:
                line += (
                    f"; all rows slowed together: {t['uniform_slower'] / t['uniform']:.1%} "
                    "flagged slower, the rest inconclusive with the whole-run shift reported"
                )
            lines.append(line)
    lines.append(f"- ({time.perf_counter() - start:.0f} s)")
    return lines


def quiet() -> list[str]:
    """The simulation restricted to the steady runs (round spread under the threshold that
    `compare` warns at): what the method achieves when the machine holds still."""
    from dscbench import results, stats

    sets = [results.load_results(d) for d in _run_dirs()]
    spreads = [stats.spread(stats.row_stats(s.samples, "latency")) for s in sets]
    steady = [
        s for s, spread in zip(sets, spreads, strict=True) if spread < stats.DISTURBED_ROUND_SPREAD
    ]
    lines = [
        "## quiet: the steady runs only",
        "- round spread per run (median over rows): "
        + ", ".join(f"{x:.1%}" for x in spreads)
        + f"; steady (< {stats.DISTURBED_ROUND_SPREAD:.0%}): {len(steady)} of {len(sets)}",
    ]
    if len(steady) < 2:
        return [*lines, "- fewer than 2 steady runs"]
    designs = {
        "one steady run resampled twice": DESIGNS[
            "one run resampled twice (within-run noise only)"
        ],
        "two different steady runs": DESIGNS["any two runs of the session (up to 7 min apart)"],
    }
    for name, pick in designs.items():
        t = _trials(steady, pick, np.random.default_rng(0))
        lines.append(
            f"- {name}, latency: A/A {t['alarms']} of {t['rows']} rows slower = "
            f"{t['alarms'] / t['rows']:.2%} (target < 1%); power {t['hits']} of {t['injected']} "
            f"= {t['hits'] / t['injected']:.1%} (target >= 95%)"
        )
    return lines


def tradeoff() -> list[str]:
    """False alarms against power as --confidence changes (latency, 100 trials per cell)."""
    from dscbench import results

    global TRIALS
    sets = [results.load_results(d) for d in _run_dirs()]
    if len(sets) < 3:
        return ["## tradeoff: needs the `runs` part first"]
    saved, TRIALS = TRIALS, 100
    lines = [
        "## tradeoff: --confidence vs false alarms and power (latency, 100 trials per cell)",
        "",
        "| design | confidence | A/A rows slower | power (15%, 3 rows) |",
        "|---|---:|---:|---:|",
    ]
    try:
        for name, pick in list(DESIGNS.items())[:2]:
            for confidence in (0.8, 0.9, 0.95, 0.99):
                t = _trials(sets, pick, np.random.default_rng(1), "latency", confidence)
                lines.append(
                    f"| {name} | {confidence:.2f} | {t['alarms'] / t['rows']:.2%} | "
                    f"{t['hits'] / t['injected']:.1%} |"
                )
    finally:
        TRIALS = saved
    return lines


def _synthetic_set(directory: Path, rows: int, per_row: int, seed: int, scale: float) -> None:
    from dscbench import results

    rng = np.random.default_rng(seed)
    configs = rows // 2
    template = pd.read_parquet(_template_dir() / "results.parquet")
    base = template.iloc[[0, 1]]
    table = pd.concat([base] * configs, ignore_index=True)
    ids = [f"n1_c{i}-{i}_8x8_k3s1_float32_inference_t1" for i in range(configs)]
    table["config_id"] = np.repeat(ids, 2)
    table["status"] = "ok"
    n = rows * per_row
    samples = pd.DataFrame(
        {
            "config_id": np.repeat(table["config_id"].to_numpy(), per_row),
            "variant": np.repeat(table["variant"].to_numpy(), per_row),
            "backend": np.repeat(table["backend"].to_numpy(), per_row),
            "round": np.tile(np.repeat(np.arange(5), per_row // 5), rows).astype("int32"),
            "pair": np.tile(np.arange(per_row), rows).astype("int32"),
            "iterations": 10,
            "time_s": scale * 1e-4 * rng.lognormal(0, 0.05, n),
        }
    )
    directory.mkdir(parents=True)
    meta = json.loads((_template_dir() / "run.json").read_text())
    results.write_run(directory, table, samples, meta)


def _template_dir() -> Path:
    return Path(__file__).parent.parent / "tests" / "data" / "compare" / "baseline"


def scale() -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        _synthetic_set(a, 10_000, 50, 1, 1.0)
        _synthetic_set(b, 10_000, 50, 2, 1.01)
        code = (
            "import sys, time\n"
            "t = time.perf_counter()\n"
            "from dscbench.cli import main\n"
            f"sys.argv = ['dscbench', 'compare', {str(a)!r}, {str(b)!r}, '--format', 'json',"
            f" '-o', {str(Path(tmp) / 'out.json')!r}]\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "print(code, time.perf_counter() - t, 'torch' in sys.modules)\n"
        )
        walls = []
        for _ in range(3):
            start = time.perf_counter()
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, check=True
            )
            walls.append(time.perf_counter() - start)
        exit_code, inside, torch_imported = out.stdout.split()[-3:]
        summary = json.loads((Path(tmp) / "out.json").read_text())["summary"]
    return [
        "## scale: two 10,000-row result sets (500,000 samples each), `dscbench compare`",
        f"- process wall time, median of 3: {sorted(walls)[1]:.2f} s (target < 3 s); "
        f"inside the interpreter {float(inside):.2f} s; torch imported: {torch_imported}; "
        f"exit {exit_code}; {summary}",
    ]


PARTS = {
    "runs": runs,
    "real-aa": real_aa,
    "simulate": simulate,
    "quiet": quiet,
    "tradeoff": tradeoff,
    "scale": scale,
}

if __name__ == "__main__":
    run_parts(PARTS, sys.argv[1:])
