"""What `dscbench run` prints after measuring, from a result table and run.json alone, so
`dscbench show` prints a stored run exactly as `run` did."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.text import Text

from dscbench.defaults import THRESHOLD
from dscbench.export.table import breakdown_tables, results_table, summary_lines, warning_lines
from dscbench.stats import DISTURBED_ROUND_SPREAD

MAX_WARNING_LINES = 15


def render_run(
    table: pd.DataFrame,
    meta: dict[str, Any],
    out_dir: Path,
    console: Console,
    quiet: bool = False,
    breakdown: pd.DataFrame | None = None,
    stored: bool = False,
    samples: pd.DataFrame | None = None,
) -> None:
    """The run's table (unless ``quiet``), breakdown (when given), warnings and summary;
    ``stored``: a stored run shown again (``dscbench show``), whose state is said and whose
    exit code is not the run's. With ``samples``, an interleaved run also says what changes
    between its first two environments it can resolve."""
    envs = list(dict.fromkeys(table.env)) or [""]
    if not quiet:
        console.print(results_table(table))
        if breakdown is not None:
            print_breakdown(breakdown, console)
        for line in _capped(warning_lines(table)):
            console.print(Text(f"warning: {line}", style="yellow"), highlight=False)
    for line in summary_lines(table):
        console.print(line, highlight=False)
    failed = failure_line(table, exit_code=not stored)
    if failed:
        console.print(Text(failed, style="red"), highlight=False)
    for line in precision_lines(meta):
        console.print(Text(line, style="yellow" if "did not" in line else ""), highlight=False)
    spread = meta.get("round_spread")
    spread = math.nan if spread is None else float(spread)
    if spread > DISTURBED_ROUND_SPREAD and envs == [""]:
        console.print(
            Text(
                f"warning: this run's rounds disagree by {spread:.1%} (median over rows; steady "
                f"runs stay under {DISTURBED_ROUND_SPREAD:.0%}): the machine was busy while it "
                "ran. Rerun before comparing it with another run.",
                style="yellow",
            ),
            highlight=False,
        )
    if len(envs) > 1:
        console.print(
            f"Environments {', '.join(envs)} were measured interleaved; "
            f"`dscbench compare {out_dir}` judges {envs[1]} against {envs[0]}"
            + (" (--baseline-env/--candidate-env pick others)." if len(envs) > 2 else "."),
            highlight=False,
        )
        for line in interleaved_resolution(table, samples, meta, envs):
            console.print(line, highlight=False)
    crashes = meta.get("worker_crashes") or {}
    if crashes:
        console.print(
            Text(
                f"warning: worker processes died {sum(crashes.values())} time(s) "
                f"({', '.join(f'{e}: {n}' for e, n in crashes.items())}); their rows are "
                f"worker_crashed, logs in {Path(out_dir) / 'workers'}",
                style="yellow",
            ),
            highlight=False,
        )
    t = meta.get("timings") or {}
    if t.get("wall_s"):
        compiled = f", {t['compile_s']:.1f} s compiling" if t.get("compile_s", 0) > 0 else ""
        spent = (
            f"{t['instructions_s'] / t['wall_s']:.0%} counting instructions under valgrind, "
            f"{t.get('worker_start_s', 0) / t['wall_s']:.0%} starting its workers"
            if t.get("instructions_s")
            else f"{t['timed_s'] / t['wall_s']:.0%} in timed blocks, "
            f"{t['warmup_s'] / t['wall_s']:.0%} warming up"
        )
        console.print(
            f"Results in {out_dir}/ ({', '.join(result_files(Path(out_dir)))}); wall "
            f"{t['wall_s']:.1f} s, {spent}{compiled}.",
            highlight=False,
        )
    state = state_line(meta, out_dir) if stored else ""
    if state:
        console.print(Text(state, style="yellow"), highlight=False)


def interleaved_resolution(
    table: pd.DataFrame, samples: pd.DataFrame | None, meta: dict[str, Any], envs: list[str]
) -> list[str]:
    """What an interleaved run can tell apart between its first two environments: compare's
    resolution lines, at ``--decide``'s threshold when the run had one (else compare's
    default)."""
    from dscbench.compare import CompareError, compare_envs
    from dscbench.export.comparison import resolution_lines
    from dscbench.results import ResultSet

    if samples is None or samples.empty:
        return []
    p = meta.get("precision") or {}
    threshold = p.get("target") if p.get("mode") == "decide" else THRESHOLD
    try:
        comparison = compare_envs(
            ResultSet(meta, table, samples),
            baseline_env=envs[0],
            candidate_env=envs[1],
            threshold=threshold,
        )
    except CompareError:
        return []
    return [
        line.replace("this comparison", f"this run ({envs[1]} against {envs[0]})")
        for line in resolution_lines(comparison)
    ]


RESULT_FILES = ("results.parquet", "results.csv", "samples.parquet", "run.json", "journal.jsonl")


def result_files(out_dir: Path) -> list[str]:
    """The result files that exist in ``out_dir`` (a killed run has only its journal)."""
    found = [name for name in RESULT_FILES if (out_dir / name).is_file()]
    if "results.parquet" in found:  # the journal is a run's working copy once consolidated
        found = [name for name in found if name != "journal.jsonl"]
    return found


def state_line(meta: dict[str, Any], out_dir: Path) -> str:
    """What a stored run's status means, and how to finish it; '' for a finished run."""
    status = meta.get("status")
    rounds = (meta.get("settings") or {}).get("rounds", "?")
    done = f"{meta.get('rounds_done', 0)} of {rounds} round(s) done"
    finish = f"`dscbench run --resume {out_dir}` finishes it"
    return {
        "running": f"The run is still being measured ({done} so far).",
        "killed": f"The run was killed before it finished ({done}; no process is writing it "
        f"any more): {finish}.",
        "interrupted": f"The run was interrupted ({done}): {finish}.",
        "crashed": f"The run stopped on an error in dscbench ({done}; its traceback went to "
        "the terminal that ran it): {finish}.",
        "partial": "A partial merge: some shards are missing or unfinished (run.json's "
        "merged_from).",
    }.get(str(status), "")


def failure_line(table: pd.DataFrame, exit_code: bool = True) -> str:
    """'3 configuration(s) failed: build_error 2, parity_failed 1 (exit 1)'; '' if none;
    ``exit_code``: name the exit code the run ended with."""
    per_config = table.drop_duplicates(["config_id", "backend", "env"])
    bad = per_config[~per_config.status.isin(("ok", "skipped"))]
    if bad.empty:
        return ""
    kinds = ", ".join(f"{kind} {n}" for kind, n in bad.status.value_counts().items())
    code = " (exit 1)" if exit_code else ""
    return f"{len(bad)} configuration(s) failed or were not measured: {kinds}{code}."


def precision_lines(meta: dict[str, Any]) -> list[str]:
    """What ``--precision`` did (run.json's ``precision`` after the run)."""
    p = meta.get("precision")
    if not p or "extra_rounds" not in p:
        return []
    rounds = (meta.get("settings") or {}).get("rounds", "?")
    decide = p.get("mode") == "decide"
    flag = "--decide" if decide else "--precision"
    line = (
        f"{flag} {p['target']:.1%}: {p['extra_rounds']} extra round(s) after "
        f"{rounds}; stopped because {p['stopped']}."
    )
    unmet = p.get("unmet") or []
    if not unmet:
        return [line]
    widths = ", ".join(
        f"{u['config_id']} {u['backend']}{' {' + u['env'] + '}' if u['env'] else ''} "
        f"(±{u['relative_half_width']:.1%})"
        for u in unmet[:5]
    )
    more = f" and {len(unmet) - 5} more" if len(unmet) > 5 else ""
    goal = f"a decision at {p['target']:.1%}" if decide else f"±{p['target']:.1%}"
    return [line, f"{len(unmet)} row(s) did not reach {goal}: {widths}{more}."]


def print_breakdown(breakdown: pd.DataFrame | None, console: Console) -> None:
    if breakdown is None or breakdown.empty:
        console.print("--breakdown: no model configurations (it applies to --model runs).")
        return
    for table in breakdown_tables(breakdown, {}):
        console.print(table)


def _capped(lines: list[str]) -> list[str]:
    if len(lines) <= MAX_WARNING_LINES:
        return lines
    more = len(lines) - MAX_WARNING_LINES
    return [*lines[:MAX_WARNING_LINES], f"... and {more} more (see the warnings column)"]
