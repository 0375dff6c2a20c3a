"""Benchmarks behind the targets of the history issue (21). Run with `nox -s bench -- history
[parts]`.

Parts (default all, in this order; runs and databases are stored in results/bench-history/,
git-ignored; DSCBENCH_BENCH_STORE points at another store):
  step      the controlled slowdown's size, measured first, two ways: the slowed model with and
            without its extra block, both twins, timed in this process side by side (median
            ratio of 31 interleaved pairs of timings), and the two versions as two models of
            one run with the histories' run settings (3 runs): the step the histories see
  histories two histories of 30 real runs of six small user models
            (benchmarks/history_models.py), one run per commit, taken in turns (slowdown run i,
            then A/A run i) so the machine's drift falls on both alike:
            slowdown: from run 18 on, one of the models carries one more conv block
            (HISTORY_SLOWER=1, about 10% slower where the runs measure it): `history
            check` must place the change at run 18 (within one) on its 2 rows and nowhere
            else;
            aa: nothing changed: no change point
  methods   the two histories judged by three methods: the one `history check` uses (each run's
            common shift out, PELT), PELT on the raw values, and a lookback z-score (each run
            against the mean and sd of the 10 before it, |z| > 5, as conbench's default)
  scale     a history of 1,000 runs x 20 rows (one real quick-preset run, its samples rescaled
            with noise per copy): `history add` per run, `history check` (target < 10 s),
            `history report` (target < 30 s) and the database file's size (target < 100 MB)
  noise     reads the databases `histories` wrote (measures nothing): each row's run-to-run
            noise once the runs' common shifts are out, and its step from run 18

Every figure comes with the load average at its start.

Runs. A first version used short runs (0.3 s of blocks per variant, 2 rounds in 2 processes):
rows then moved 8-17% (sd) from run to run once each run's common shift was out, and a 10%
step was found by no method. Two pilots of 6 runs each (not committed; 1.2 s, 8 rounds, 8
processes) showed where that noise comes from: (1) a visit to a configuration is often hit as a
whole (both variants +50-80% for the visit, blocks bimodal at 1x and 3x: the VM losing its core
for a while), so a row's value averages over its visits' luck and more, shorter visits help;
(2) with worker processes forked from one server, some rows (net_b, net_c, net_e) moved between
runs by more than their processes disagreed within a run (sd of the run means 5-7% against
3.5-4% expected from within): what a fork server fixes for all its children (the address
layout of the loaded libraries) is drawn again only per run. With spawned workers the two
agreed (3-6% both) and the rows' noise fell from a median 6.9% to 4.7%. The second version
(16 rounds in 8 spawned processes, 2.4 s per variant; report at da6f8d3) still left rows 2.3-5.3%
noisy from run to run, with the medians of visits (rounds) of one row 10-25% apart within a
run: too noisy for PELT to place a 10% step in 30 runs at its penalty (a synthetic +10% put
into that A/A history's real rows was found on 6 of 12 rows: on the quietest ones). So a run
now takes 32 shorter visits in 16 spawned processes (the same 2.4 s per variant; one pilot run:
its rows' own intervals imply 1.4-4.0% sd, median 2.3%, against 2.1-7.8%, median 3.5%, before;
about 100 s a run instead of 70). And one model, not two, is slowed: with 4 of 12 rows stepping,
each run's common shift (a median over its rows) took in about a third of their step. That
third version (report at f84c65f) found one of the two slowed rows: its runs saw net_e's
eleventh block as +6-8% against the other rows where one process saw +8-10%, 1.5-2.6 sigma
of the rows' noise. So net_e now runs eight blocks and nine when slowed (12.5% more block
work), and the step part measures the step in runs with these settings too.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from reporting import cli, load, main

STORE = Path(os.environ.get("DSCBENCH_BENCH_STORE", "results/bench-history"))
RUNS = 30
SLOW_FROM = 18
MODELS = ",".join(f"benchmarks.history_models:net_{c}" for c in "abcdef")
# Runs precise enough for a 10% step to stand out of 30 (see the module's docstring, "Runs")
RUN = ["--model", MODELS, "--input-shape", "3,32,32", "--threads", "1", "--min-time", "2.4",
       "--rounds", "32", "--processes", "16", "--start-method", "spawn", "-q"]  # fmt: skip
SLOWED = ("net_e",)
SCALE_RUNS = 1000
START = datetime(2026, 1, 1, tzinfo=timezone.utc)


def fresh(name: str) -> Path:
    path = STORE / name
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, exist_ok=True)
    return path


def commit_of(i: int) -> str:
    return f"{i:04x}" + "c0ffee" * 6  # a 40-digit id per run


def histories_of() -> tuple[dict[str, Path], float, str]:
    """``RUNS`` real runs for each history, taken in turns (slowdown run i, then A/A run i),
    each added to its history's database as its own commit; (databases, seconds, load at
    the start)."""
    dbs = {name: fresh(name) / "history.sqlite" for name in ("slowdown", "aa")}
    before, t0 = load(), time.perf_counter()
    for i in range(RUNS):
        for name, db in dbs.items():
            slower = {"HISTORY_SLOWER": "1"} if name == "slowdown" and i >= SLOW_FROM else {}
            run = db.parent / f"run-{i:02d}"
            cli("run", *RUN, "-o", str(run), env=slower)
            cli("history", "add", str(run), "--commit", commit_of(i), "--branch", "main",
                "--db", str(db))  # fmt: skip
    return dbs, time.perf_counter() - t0, before


def slowed(label: str) -> bool:
    return any(f"history_models.{m}" in label for m in SLOWED)


def judged(doc_changes: list[dict], expect_at: int | None) -> tuple[list[str], list[str]]:
    """(changes on the slowed rows at the expected run, within one; every other change)."""
    right, wrong = [], []
    for c in doc_changes:
        what = f"{c['config_id']} {c['variant']}: x{c['ratio']:.3f} at run {c['position']}"
        if expect_at is not None and slowed(c["config_id"]) and abs(c["position"] - expect_at) <= 1:
            right.append(what)
        else:
            wrong.append(what)
    return right, wrong


def check_lines(db: Path, expect_at: int | None) -> tuple[list[str], list[dict]]:
    import json

    code, wall, text = cli("history", "check", "--db", str(db), "--format", "json", check=False)
    doc = json.loads(text[text.index("{") :])
    right, wrong = judged(doc["changes"], expect_at)
    lines = [
        f"`dscbench history check --format json`: exit {code}, {wall:.1f} s; {len(doc['changes'])} "
        f"change(s) in {doc['series']} series over {doc['runs']} runs.",
        "",
    ]
    if expect_at is not None:
        shown = "; ".join(right) or "none"
        of = 2 * len(SLOWED)
        lines.append(
            f"- on the slowed rows at run {expect_at} (within one): **{len(right)} of {of}**: "
            + shown
        )
    lines.append(f"- anywhere else: **{len(wrong)}**" + (": " + "; ".join(wrong) if wrong else ""))
    return lines, doc["changes"]


def histories() -> list[str]:
    dbs, wall, before = histories_of()
    lines = [
        "## Two histories, taken in turns",
        "",
        f"{RUNS} runs each of `dscbench run {' '.join(RUN)}`, the two histories' runs in turns "
        f"(slowdown run i, then A/A run i; {wall:.0f} s in all, {before} at the start), each "
        f"added with `dscbench history add RUN --commit C --branch main`.",
        "",
        f"### A real slowdown from run {SLOW_FROM} on",
        "",
        f"From run {SLOW_FROM} on with HISTORY_SLOWER=1 ({', '.join(SLOWED)}: one more conv "
        "block; its size is in the step section).",
        "",
    ]
    found, _ = check_lines(dbs["slowdown"], SLOW_FROM)
    lines += [*found, "", *size_lines(dbs["slowdown"]), "", "### 30 A/A runs", ""]
    found, _ = check_lines(dbs["aa"], None)
    return lines + found


def step() -> list[str]:
    """The controlled slowdown's size, two ways: in one process, and in runs with the
    histories' own settings."""
    return [*step_in_process(), "", *step_in_runs()]


def step_in_process() -> list[str]:
    """Each slowed model with and without its extra block, timed side by side in this process."""
    import copy
    import statistics

    import history_models
    import torch

    from dscbench.models.twins import to_separable

    torch.set_num_threads(1)
    x = torch.randn(1, 3, 32, 32)
    before = load()
    lines = [
        "## The controlled slowdown's size",
        "",
        "### In one process",
        "",
        f"Each slowed model built as in the history before run {SLOW_FROM} and from it on "
        f"(HISTORY_SLOWER=1: one more block), both twins, one thread, {before} at the start: 31 "
        "interleaved pairs of timings (each ~50 ms of calls), the median ratio slowed / not.",
        "",
        "| model | width | blocks | standard | separable |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in SLOWED:
        width = history_models.WIDTHS[name]
        ratios = {}
        built = {}
        for slower in (False, True):
            torch.manual_seed(0)
            model = history_models.stack(width, history_models.blocks_of(name, slower)).eval()
            built[slower] = {"standard": model,
                             "separable": to_separable(copy.deepcopy(model))[0].eval()}  # fmt: skip
        for variant in ("standard", "separable"):
            base, slow = built[False][variant], built[True][variant]
            n = max(3, int(0.05 / per_call(base, x, 3)))
            pairs = [per_call(slow, x, n) / per_call(base, x, n) for _ in range(31)]
            ratios[variant] = statistics.median(pairs)
        blocks = f"{history_models.blocks_of(name)} -> {history_models.blocks_of(name, True)}"
        lines.append(f"| {name} | {width} | {blocks} | x{ratios['standard']:.3f} | "
                     f"x{ratios['separable']:.3f} |")  # fmt: skip
    return lines


STEP_RUNS = 3


def step_in_runs() -> list[str]:
    """Each slowed model and its slowed version as two models of one run with the histories'
    run settings (so visited in the same rounds, by the same processes), ``STEP_RUNS`` times:
    the step as a history's run measures it."""
    from dscbench import results

    models = ",".join(f"benchmarks.history_models:{m},benchmarks.history_models:{m}_slower"
                      for m in SLOWED)  # fmt: skip
    settings = RUN[2:]  # RUN without its --model
    before, t0 = load(), time.perf_counter()
    ratios: dict[tuple[str, str], list[float]] = {}
    out = fresh("step")
    for i in range(STEP_RUNS):
        run = out / f"run-{i}"
        cli("run", "--model", models, *settings, "-o", str(run))
        rows = results.load_results(run).results
        rows = rows.assign(name=rows["model"].str.split(":").str[-1])
        lat = rows.pivot_table(index="name", columns="variant", values="latency_median_s")
        for m in SLOWED:
            for variant in ("standard", "separable"):
                ratio = lat.loc[f"{m}_slower", variant] / lat.loc[m, variant]
                ratios.setdefault((m, variant), []).append(float(ratio))
    wall = time.perf_counter() - t0
    lines = [
        "### In runs with the histories' settings",
        "",
        f"`dscbench run --model {models} {' '.join(settings)}`, {STEP_RUNS} runs ({wall:.0f} s, "
        f"{before} at the start): the slowed version's median latency over the model's, per run, "
        "and their median. This is the step the histories' runs see.",
        "",
        "| model | variant | per run | median |",
        "|---|---|---|---:|",
    ]
    for (m, variant), values in ratios.items():
        each = ", ".join(f"x{v:.3f}" for v in values)
        lines.append(f"| {m} | {variant} | {each} | x{float(np.median(values)):.3f} |")
    return lines


def per_call(model, x, calls: int) -> float:
    import torch

    with torch.inference_mode():
        for _ in range(3):
            model(x)
        t0 = time.perf_counter()
        for _ in range(calls):
            model(x)
        return (time.perf_counter() - t0) / calls


def size_lines(db: Path) -> list[str]:
    return [f"Database: {db.stat().st_size / 1e6:.2f} MB for {RUNS} runs."]


def methods() -> list[str]:
    """The histories' points judged three ways."""
    from dscbench.history import changes, queries, store

    lines = [
        "## Three methods on the two histories",
        "",
        f"| method | slowdown: the {2 * len(SLOWED)} slowed rows at run 18 (+-1) | slowdown: "
        "elsewhere | A/A |",
        "|---|---:|---:|---:|",
    ]
    stored = {}
    for name in ("slowdown", "aa"):
        with store.opened(str(STORE / name / "history.sqlite"), create=False) as engine:
            points = queries.points(engine)
        stored[name] = points
    labels = {}
    for name, points in stored.items():
        labels[name] = points.drop_duplicates("series").set_index("series")["config_id"]

    def pelt(points, whole_runs):
        return [(c.series, c.position) for c in changes.find_changes(points, whole_runs=whole_runs)
                if c.series != changes.WHOLE_RUN]  # fmt: skip

    def lookback(points, window=10, z=5.0):
        found = []
        for series, one in points.sort_values("started_at").groupby("series"):
            y = np.log(one["value"].to_numpy(dtype=float))
            for i in range(window, len(y)):
                ref = y[i - window : i]
                sd = ref.std(ddof=1)
                if sd > 0 and abs(y[i] - ref.mean()) / sd > z:
                    found.append((series, i))
        return found

    for method, judge in (("runs' shifts out + PELT (history check)", lambda p: pelt(p, True)),
                          ("PELT on raw values", lambda p: pelt(p, False)),
                          ("lookback z-score (10 runs, |z| > 5)", lookback)):  # fmt: skip
        hits = wrong = 0
        for series, at in judge(stored["slowdown"]):
            if slowed(labels["slowdown"][series]) and abs(at - SLOW_FROM) <= 1:
                hits += 1
            else:
                wrong += 1
        aa_found = len(judge(stored["aa"]))
        lines.append(f"| {method} | {hits} | {wrong} | {aa_found} |")
    return lines


def scale() -> list[str]:
    """1,000 copies of one real quick-preset run, samples rescaled with noise."""
    from dscbench import results
    from dscbench.history import record, store

    out = fresh("scale")
    base = out / "base"
    cli("run", "--preset", "quick", "--threads", "1", "--min-time", "0.2", "--rounds", "2",
        "--processes", "2", "-q", "-o", str(base))  # fmt: skip
    rs = results.load_results(base)
    db = out / "history.sqlite"
    rng = np.random.default_rng(0)
    before, t0 = load(), time.perf_counter()
    with store.opened(str(db)) as engine:
        for i in range(SCALE_RUNS):
            factor = math.exp(rng.normal(0, 0.1))  # the whole run's shift
            noise = np.exp(rng.normal(0, 0.03, len(rs.samples)))
            stamp = (START + timedelta(hours=i)).isoformat()
            copy = results.ResultSet(
                dict(rs.meta, started_at=stamp, host=f"copy-{i}"),
                rs.results,
                rs.samples.assign(time_s=rs.samples.time_s * factor * noise),
            )
            record.add(engine, copy, commit_of(i), "main")
    added = time.perf_counter() - t0
    _, check_s, _ = cli("history", "check", "--db", str(db), check=False)
    _, report_s, _ = cli("history", "report", "--db", str(db), "-o", str(out / "site"))
    size = db.stat().st_size / 1e6
    return [
        "## Scale: 1,000 runs x 20 rows",
        "",
        f"One `dscbench run --preset quick --threads 1 --min-time 0.2 --rounds 2 --processes 2` "
        f"copied {SCALE_RUNS} times ({before} at the start), each copy's samples x a run shift "
        f"(10% sd) x noise per sample (3% sd), added with `record.add` in {added:.0f} s "
        f"({added / SCALE_RUNS * 1e3:.0f} ms a run).",
        "",
        f"- `dscbench history check`: **{check_s:.1f} s** with the interpreter (target < 10 s)",
        f"- `dscbench history report -o site`: **{report_s:.1f} s** (target < 30 s)",
        f"- the database file: **{size:.1f} MB** (target < 100 MB)",
    ]


def noise() -> list[str]:
    """What the stored histories' rows do from run to run once each run's common shift is out
    (reads the databases `histories` wrote; measures nothing)."""
    from dscbench.history import changes, queries, store

    lines = [
        "## Noise of the stored histories (no measuring)",
        "",
        "Per row: the sd of its log values over the 30 runs after each run's common shift is "
        "taken out (changes.noise_sigma), and in `slowdown` the step of its mean from run 18 "
        "on; next to it the median of the sd each run's own 95% interval implies (half its width "
        "on the log scale / t(0.975, df)): when the two agree, a run's interval describes "
        "the next run; last, the raw step: its mean log value from run 18 on minus before, "
        "relative to the same step of the mean of the rows not slowed (no shift taken out); "
        "the runs' common shifts' sd.",
        "",
        "| history | row | noise (sd) | own interval (sd) | step from run 18 | raw step |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name in ("slowdown", "aa"):
        with store.opened(str(STORE / name / "history.sqlite"), create=False) as engine:
            points = queries.points(engine)
        ok = points.assign(log=np.log(points["value"].astype(float)))
        ok = ok.sort_values(["started_at", "run_id"])
        effects = changes.run_effects(ok)
        effects = changes.run_effects(ok, changes.levels(ok, effects))
        raw = raw_steps(ok)
        ok["log"] = ok["log"] - ok["run_id"].map(effects)
        for (config, variant), one in ok.groupby(["config_id", "variant"]):
            y = one["log"].to_numpy()
            step = math.exp(y[SLOW_FROM:].mean() - y[:SLOW_FROM].mean()) - 1
            row = f"{config.split(':')[-1].split('_3x')[0]} {variant}"
            own = own_sd(one)
            lines.append(
                f"| {name} | {row} | {changes.noise_sigma(y):.1%} | {own:.1%} | {step:+.1%} | "
                f"{raw[(config, variant)]:+.1%} |"
            )
        lines.append(f"| {name} | runs' common shifts | {float(effects.std()):.1%} | | | |")
    return lines


def raw_steps(points) -> dict[tuple[str, str], float]:
    """Per row: exp(its mean log value from SLOW_FROM on minus before, minus the same of the
    rows not slowed, averaged) - 1: the step against the other rows, no shift taken out."""
    logs = points.pivot_table(index="run_id", columns=["config_id", "variant"], values="log")
    logs = logs.loc[points.drop_duplicates("run_id")["run_id"]]  # oldest first
    step = logs.iloc[SLOW_FROM:].mean() - logs.iloc[:SLOW_FROM].mean()
    others = step[[not slowed(c) for c, _ in step.index]].mean()
    return {key: math.exp(value - others) - 1 for key, value in step.items()}


def own_sd(points) -> float:
    """The median over a row's runs of the sd its 95% interval implies on the log scale (the
    interval is a t interval over the run's RUN_PROCESSES processes)."""
    from scipy import stats

    half = np.log(points["high"].astype(float) / points["low"].astype(float)) / 2
    return float(np.nanmedian(half / stats.t.ppf(0.975, RUN_PROCESSES - 1)))


RUN_PROCESSES = int(RUN[RUN.index("--processes") + 1])

PARTS = {"step": step, "histories": histories, "methods": methods, "scale": scale, "noise": noise}

if __name__ == "__main__":
    main("History: change points, a real slowdown and scale", "bench_history.py", "history",
         PARTS)  # fmt: skip
