"""Benchmarks behind the targets of the compare issue. Run with `nox -s bench -- compare`.

Parts (pass names to run a subset; default all):
  runs       measure RUNS (10) back-to-back `dscbench run --preset quick` runs into
             results/bench-compare/ (git-ignored; later parts reuse them if present)
  real-aa    compare runs 0-1, 2-3, ...: 5 real A/A comparisons; exit codes and verdicts
  simulate   A/A and power from the real samples: each trial takes two *different* real runs,
             resamples each (rounds with replacement, then samples within each round), and
             compares them at the default settings. A/A: share of rows flagged slower (target
             < 1%). Power: 3 random rows of the candidate slowed by 15% (target >= 95% of them
             flagged slower); also all rows slowed together, which dscbench reports as a
             machine shift rather than a regression.
  scale      two synthetic 10,000-row result sets (50 samples a row) compared by the CLI in a
             fresh interpreter: wall time (target < 3 s) and whether torch was imported.
"""

from __future__ import annotations

import json
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
STORE = Path("results") / "bench-compare"


def _run_dirs() -> list[Path]:
    return sorted(p for p in STORE.glob("run-*") if (p / "run.json").exists())


def runs() -> list[str]:
    STORE.mkdir(parents=True, exist_ok=True)
    walls = []
    for i in range(RUNS):
        walls.append(dscbench("--preset", "quick", "-o", str(STORE / f"run-{i:02d}"), "--force"))
    return [f"## runs: {RUNS} back-to-back quick runs in {STORE} ({sum(walls):.0f} s)"]


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
        for key, group in chunk.groupby(["config_id", "backend", "variant"], sort=False):
            take = group.iloc[rng.integers(0, len(group), len(group))].copy()
            take["round"] = new_round
            take["time_s"] = take["time_s"] * slow.get(key, 1.0)
            parts.append(take)
    resampled = pd.concat(parts, ignore_index=True)
    # Pair indices must stay unique within a row for the speedup metric; renumber per row.
    resampled["pair"] = resampled.groupby(["config_id", "backend", "variant"]).cumcount()
    return ResultSet(rs.meta, rs.results, resampled)


def simulate() -> list[str]:
    from dscbench import compare, results

    sets = [results.load_results(d) for d in _run_dirs()]
    if len(sets) < 2:
        return ["## simulate: needs the `runs` part first"]
    rng = np.random.default_rng(0)
    keys = list(sets[0].samples.groupby(["config_id", "backend", "variant"], sort=False).groups)
    flagged = rows = 0
    trial_alarms = 0
    power_hits = power_rows = 0
    uniform_slower = uniform_rows = 0
    start = time.perf_counter()
    for _ in range(TRIALS):
        i, j = rng.choice(len(sets), size=2, replace=False)
        base = _pseudo_run(sets[i], rng, {})
        cand = _pseudo_run(sets[j], rng, {})
        changes = compare.compare_sets(base, cand).changes
        slower = sum(c.verdict == "slower" for c in changes)
        flagged += slower
        rows += len(changes)
        trial_alarms += slower > 0
        injected = {tuple(k) for k in rng.choice(np.array(keys, dtype=object), 3, replace=False)}
        cand = _pseudo_run(sets[j], rng, dict.fromkeys(injected, 1.15))
        changes = compare.compare_sets(base, cand).changes
        power_hits += sum(c.verdict == "slower" for c in changes if c.key in injected)
        power_rows += len(injected)
        cand = _pseudo_run(sets[j], rng, dict.fromkeys(keys, 1.15))
        changes = compare.compare_sets(base, cand).changes
        uniform_slower += sum(c.verdict == "slower" for c in changes)
        uniform_rows += len(changes)
    took = time.perf_counter() - start
    return [
        f"## simulate: {TRIALS} trials over {len(sets)} real runs ({took:.0f} s)",
        f"- A/A false alarms: {flagged} of {rows} rows flagged slower = {flagged / rows:.2%} "
        f"(target < 1%); trials with any slower row: {trial_alarms} of {TRIALS}",
        f"- power, 3 rows slowed 15%: {power_hits} of {power_rows} injected rows flagged "
        f"slower = {power_hits / power_rows:.1%} (target >= 95%)",
        f"- all rows slowed 15% together: {uniform_slower} of {uniform_rows} rows flagged slower "
        f"({uniform_slower / uniform_rows:.1%}); the rest are inconclusive with the machine shift "
        "reported (a whole-run shift is indistinguishable from a change of machine speed)",
    ]


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


PARTS = {"runs": runs, "real-aa": real_aa, "simulate": simulate, "scale": scale}

if __name__ == "__main__":
    run_parts(PARTS, sys.argv[1:])
