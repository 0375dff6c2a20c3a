"""`dscbench compare`: verdicts on synthetic samples, golden outputs, exit codes, bad input."""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from dscbench import canary as canaries
from dscbench import compare, results, runner, stats
from dscbench.cli import app
from dscbench.export import comparison as render
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, RunSettings
from tests.tables import tables_of

from . import compare_data
from .conftest import FakeBackend, FakeCanary, FakeClock, spec

cli = CliRunner()
DATA = compare_data.DATA
BASE, CAND = DATA / "baseline", DATA / "candidate"
CHANNELS = (8, 16, 24, 32, 40, 48)


def synthetic(
    scale=lambda c, v: 1.0,
    *,
    noise=0.01,
    seed=0,
    rounds=5,
    wander=0.01,
    channels=CHANNELS,
    cpu="Test CPU",
    machine=1.0,
    canary=True,
    phases=lambda t: 1.0,
) -> results.ResultSet:
    """A run of the fake backend: standard 1e-4 s x c/8, separable half that, times ``scale``;
    its machine canary runs ``machine`` times slower than 1 ms (a number, or a function of the
    fake clock's time; ``canary=False``: none, as in files from before schema 3); ``phases``
    (a function of that time) slows the rows and the canary alike, a busy machine."""
    clock = FakeClock()
    backend = FakeBackend(
        clock,
        lambda s, v: (
            (1e-4 if v == "standard" else 5e-5) * s.in_channels / 8 * scale(s.in_channels, v)
        ),
        noise=noise,
        slowdown=lambda t: (1.0 + wander * math.sin(40.0 * t + seed)) * phases(t),
        seed=seed,
    )
    speed = machine if callable(machine) else (lambda t: machine)
    fake_canary = FakeCanary(clock, lambda t: speed(t) * phases(t), seed=seed) if canary else None
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in channels]
    sweep = runner.run_sweep(
        cases,
        RunSettings(min_time=0.05, rounds=rounds, seed=seed, parity=False),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        verify_counts=False,
        canary=fake_canary,
    )
    table, samples = tables_of(sweep, {"fake": ("cpu", cpu)})
    meta = {
        "environment": {"cpu_model": cpu, "machine": "x86_64"},
        "schema_version": results.SCHEMA_VERSION,
    }
    if fake_canary is not None:
        meta["canary"] = {"describe": fake_canary.describe(), "samples": sweep.canary}
    return results.ResultSet(meta, table, samples)


def interleaved(
    factor=lambda c, v: 1.0,
    *,
    seed=0,
    rounds=5,
    drift=lambda t: 1.0,
    noise=0.01,
    channels=CHANNELS,
) -> results.ResultSet:
    """One interleaved run of two environments on one fake machine: 'base' at the synthetic
    costs, 'head' times ``factor``; both slowed alike by ``drift(clock time)``."""
    clock = FakeClock()

    def cost(scale):
        return lambda s, v: (
            (1e-4 if v == "standard" else 5e-5) * s.in_channels / 8 * scale(s.in_channels, v)
        )

    executors = {
        name: runner.LocalExecutor(
            {"fake": FakeBackend(clock, cost(scale), noise=noise, slowdown=drift, seed=seed + i)}
        )
        for i, (name, scale) in enumerate((("base", lambda c, v: 1.0), ("head", factor)))
    }
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in channels]
    sweep = runner.run_sweep(
        cases,
        RunSettings(min_time=0.05, rounds=rounds, seed=seed, parity=False),
        executors,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        verify_counts=False,
    )
    table, samples = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    env = {"cpu_model": "Test CPU", "machine": "x86_64"}
    meta = {
        "environment": env,
        "schema_version": results.SCHEMA_VERSION,
        "environments": {
            "base": {"python": "/usr/bin/python3", "variables": {}, "environment": env},
            "head": {"python": "/usr/bin/python3", "variables": {"X": "1"}, "environment": env},
        },
    }
    return results.ResultSet(meta, table, samples)


def verdicts(comparison: compare.Comparison) -> dict[tuple[int, str], str]:
    out = {}
    for c in comparison.changes:
        channels = int(c.config_id.split("_")[1].split("-")[0][1:])
        out[(channels, c.variant)] = c.verdict
    return out


# ---------------------------------------------------------------------------------------------
# The statistics
# ---------------------------------------------------------------------------------------------


def test_identical_distributions_are_the_same():
    comparison = compare.compare_sets(synthetic(seed=1), synthetic(seed=2))
    assert set(verdicts(comparison).values()) == {"same"}
    assert comparison.exit_code() == 0
    assert all(0.98 < c.ratio < 1.02 for c in comparison.changes)
    # 95% intervals: about one row in twenty may miss the truth
    assert sum(c.ci_low < 1 < c.ci_high for c in comparison.changes) >= 11
    assert all(c.rounds == (5, 5) for c in comparison.changes)


def test_a_25_percent_slower_row_is_slower_and_only_that_row():
    slow = synthetic(lambda c, v: 1.25 if (c, v) == (16, "standard") else 1.0, seed=2)
    comparison = compare.compare_sets(synthetic(seed=1), slow)
    found = verdicts(comparison)
    assert found.pop((16, "standard")) == "slower"
    assert set(found.values()) == {"same"}
    change = next(c for c in comparison.changes if c.verdict == "slower")
    assert change.ratio == pytest.approx(1.25, rel=0.02)
    assert change.ci_low > 1.05
    assert comparison.exit_code() == 1 and comparison.regressions == [change]


def test_a_faster_row_is_faster_and_does_not_fail_the_gate():
    fast = synthetic(lambda c, v: 0.8 if (c, v) == (24, "separable") else 1.0, seed=2)
    comparison = compare.compare_sets(synthetic(seed=1), fast)
    assert verdicts(comparison)[(24, "separable")] == "faster"
    assert comparison.exit_code() == 0


def test_two_percent_under_heavy_noise_is_rarely_slower_and_its_intervals_cover_it():
    """A 2% change under 40% block noise, below the 5% threshold: calling it slower takes an
    interval whose low end missed the truth by more than 3%, which a 95% interval does at most
    2.5% of the time (one side). Over 20 pairs of runs (240 rows): at most that share, and the
    intervals cover the true 1.02 about 95% of the time."""
    noisy = dict(noise=0.4, wander=0.05)
    changes = []
    for seed in range(20):
        base = synthetic(seed=100 + seed, **noisy)
        cand = synthetic(lambda c, v: 1.02, seed=200 + seed, **noisy)
        changes += compare.compare_sets(base, cand).changes
    slower = sum(c.verdict == "slower" for c in changes)
    covered = sum(c.ci_low <= 1.02 <= c.ci_high for c in changes)
    assert len(changes) == 240 and slower <= 0.025 * 240
    assert covered >= 0.9 * 240
    assert {c.verdict for c in changes} <= {"same", "inconclusive", "slower"}


def test_a_whole_run_moving_with_the_canary_is_a_machine_shift_not_a_regression():
    base = synthetic(seed=1)
    everything = synthetic(lambda c, v: 1.15, seed=2, machine=1.15)
    comparison = compare.compare_sets(base, everything)
    (shift,) = comparison.shifts
    assert shift.detected and shift.ratio == pytest.approx(1.15, rel=0.01)
    assert shift.cause == "machine"
    assert comparison.canary.available and comparison.canary.ratio == pytest.approx(1.15, rel=0.02)
    assert set(verdicts(comparison).values()) == {"inconclusive"}
    assert all(
        c.note == "moved with the whole run (see the machine shift)" for c in comparison.changes
    )
    assert comparison.exit_code() == 0 and comparison.exit_code(fail_on_inconclusive=True) == 3
    # A row that moved beyond the shared shift is still a regression.
    worse = synthetic(
        lambda c, v: 1.15 * (1.3 if (c, v) == (24, "standard") else 1.0), seed=3, machine=1.15
    )
    comparison = compare.compare_sets(base, worse)
    assert verdicts(comparison)[(24, "standard")] == "slower"
    assert comparison.exit_code() == 1
    # The speedup metric cancels machine speed: every pair is the same.
    comparison = compare.compare_sets(base, everything, metric="speedup")
    assert set(verdicts(comparison).values()) == {"same"}


def test_speedup_metric_flags_a_separable_variant_that_lost_its_advantage():
    worse = synthetic(lambda c, v: 1.3 if (c, v) == (32, "separable") else 1.0, seed=2)
    comparison = compare.compare_sets(synthetic(seed=1), worse, metric="speedup")
    found = verdicts(comparison)
    assert found.pop((32, "pair")) == "slower"
    assert set(found.values()) == {"same"}
    change = comparison.regressions[0]
    assert change.baseline == pytest.approx(2.0, rel=0.02)  # standard takes twice separable
    assert change.ratio == pytest.approx(1 / 1.3, rel=0.02)


def test_a_regression_of_every_row_that_the_canary_does_not_share_fails_the_gate():
    base = synthetic(seed=1)
    slower = synthetic(lambda c, v: 1.25, seed=2)  # the canary did not move
    comparison = compare.compare_sets(base, slower)
    (shift,) = comparison.shifts
    assert shift.detected and shift.cause == "rows"
    assert shift.ratio == pytest.approx(1.25, rel=0.01)
    assert comparison.canary.ratio == pytest.approx(1.0, abs=0.02)
    assert set(verdicts(comparison).values()) == {"slower"}
    assert all(c.ratio == pytest.approx(1.25, rel=0.02) for c in comparison.changes)
    assert comparison.exit_code() == 1
    lines = render.shift_lines(comparison)
    assert "so every row itself changed" in lines[0]
    assert lines[1].startswith("Machine canary (a fixed workload timed every round): moved x")


def test_a_copy_of_a_busy_run_with_every_latency_x125_fails_the_gate():
    """The issue's case: on a busy machine (rounds far apart) a copy of a run with every
    latency x1.25 and its canary untouched. The canary's interval is that of each run's own
    average, so it says the machine did not move, and every row is a regression."""
    import copy

    # The machine's speed swings by +/-15% over about 6 rounds, for the canary as for the rows.
    base = synthetic(seed=1, phases=lambda t: 1.0 + 0.15 * math.sin(8.0 * t))
    assert np.ptp(list(canaries.per_round(base.meta["canary"]["samples"]).values())) > 0.15
    cand = copy.deepcopy(base)
    cand.samples["time_s"] *= 1.25
    for column in results.LATENCY_COLUMNS:
        if column in cand.results and cand.results[column].dtype.kind == "f":
            cand.results[column] *= 1.25
    comparison = compare.compare_sets(base, cand)
    c = comparison.canary
    assert c.ratio == pytest.approx(1.0) and c.ci_high / c.ci_low < 1.05  # rounds: 1.45
    assert comparison.shifts[0].cause == "rows"
    # Each row on its own is as uncertain as a busy run makes it; none reads as unchanged.
    found = list(verdicts(comparison).values())
    assert set(found) <= {"slower", "inconclusive"} and found.count("slower") >= 6
    assert comparison.exit_code() == 1
    assert comparison.shifts[0].drift == pytest.approx(compare.CANARY_TRACKING_SD)
    # A canary whose rounds do not follow the rows' (its machine swings, the rows' does not):
    # the runs' own rounds show it, and compare allows that much more drift between them.
    loose = synthetic(seed=1, machine=lambda t: 1.0 + 0.15 * math.sin(8.0 * t))
    copy_ = copy.deepcopy(loose)
    copy_.samples["time_s"] *= 1.25
    looser = compare.compare_sets(loose, copy_)
    (shift,) = looser.shifts
    assert shift.drift > 2 * compare.CANARY_TRACKING_SD
    # Each row's own change is uncertain by that drift; together they are clearly slower.
    assert shift.cause == "rows" and set(verdicts(looser).values()) == {"inconclusive"}
    assert shift.verdict == "slower" and 1.05 < shift.beyond_low < 1.25 < shift.beyond_high
    assert looser.run_regressions == [shift] and looser.exit_code() == 1
    line = " ".join(render.shift_lines(looser)[0].split())
    assert "so every row itself changed" in line
    assert "together, net of the canary, the run is slower by more than the threshold" in line
    assert "how much each row changed is uncertain by how far rows and canary drift" in line
    assert "every row slower together" in render.summary(looser)
    assert render.decision(looser, compare.FailOn()) == (
        "REGRESSION: 0 row(s) got worse, and every row of 1 backend(s) together (exit 1)."
    )


def test_a_small_uniform_shift_the_canary_cannot_explain_is_said_to_be_undetermined():
    """Every row 4% slower, the canary still: a shift within how far rows and canary drift
    apart on a machine alone (CANARY_TRACKING_SD). The comparison says it cannot tell, in one
    line, and the rows are inconclusive: exit 0, or 3 with --fail-on-inconclusive."""
    comparison = compare.compare_sets(synthetic(seed=1), synthetic(lambda c, v: 1.04, seed=2))
    (shift,) = comparison.shifts
    assert shift.detected and shift.cause == "undetermined" and shift.verdict == ""
    assert set(verdicts(comparison).values()) <= {"inconclusive", "same"}
    assert "inconclusive" in set(verdicts(comparison).values())
    assert comparison.exit_code() == 0 and comparison.exit_code(fail_on_inconclusive=True) == 3
    (line,) = [x for x in render.shift_lines(comparison) if "cannot tell" in x]
    assert "so it cannot tell a machine that changed speed from code that did" in line
    assert "drift apart by 3.0% (sd) on this machine alone" in line and "`dscbench gate`" in line
    assert shift.drift == pytest.approx(compare.CANARY_TRACKING_SD)  # steady runs: the floor


def test_the_printed_canary_interval_has_the_confidence_asked_for():
    """--confidence 0.9 gives the machine canary a 90% interval too, like every row's."""
    res = cli.invoke(
        app, ["compare", str(BASE), str(CAND), "--confidence", "0.9", "--format", "markdown"]
    )
    assert "Threshold 5%, 90% intervals." in res.output
    (line,) = [x for x in res.output.splitlines() if x.startswith("- Machine canary")]
    base, cand = results.load_results(BASE), results.load_results(CAND)
    eb, ec = (canaries.run_estimate(rs.meta["canary"]["samples"]) for rs in (base, cand))
    var, df = stats.welch(*([np.array([x]) for x in (eb.se2, eb.df, ec.se2, ec.df)]))
    m, half = ec.mean - eb.mean, float(stats.t_quantile(0.9, df[0])) * math.sqrt(var[0])
    shown = f"x{math.exp(m):.3f} [{math.exp(m - half):.3f}, {math.exp(m + half):.3f}]"
    assert line == f"- Machine canary (a fixed workload timed every round): moved {shown}."
    at_95 = compare.compare_sets(base, cand).canary
    at_90 = compare.compare_sets(base, cand, confidence=0.9).canary
    assert math.log(at_90.ci_high / at_90.ratio) / math.log(at_95.ci_high / at_95.ratio) == (
        pytest.approx(stats.t_quantile(0.9, df[0]) / stats.t_quantile(0.95, df[0]))
    )


def test_a_machine_that_slowed_under_a_real_regression_is_taken_out():
    # The machine ran 10% slow (canary and rows) and every row regressed 25% on top.
    comparison = compare.compare_sets(
        synthetic(seed=1), synthetic(lambda c, v: 1.1 * 1.25, seed=2, machine=1.1)
    )
    assert comparison.shifts[0].cause == "rows"
    assert set(verdicts(comparison).values()) == {"slower"}
    assert comparison.exit_code() == 1


def test_without_a_canary_a_uniform_shift_stays_a_machine_shift_and_says_so():
    base = synthetic(seed=1, canary=False)
    slower = synthetic(lambda c, v: 1.25, seed=2)
    comparison = compare.compare_sets(base, slower)
    assert not comparison.canary.available
    assert comparison.shifts[0].cause == "machine"
    assert set(verdicts(comparison).values()) == {"inconclusive"}
    assert comparison.exit_code() == 0
    assert comparison.notes[0] == (
        "no machine canary in the baseline: a regression of every row cannot be told from a "
        "machine that changed speed (runs from dscbench 0.3 on time a canary in every round)"
    )
    assert "without a canary on both sides" in render.shift_lines(comparison)[0]


def test_canaries_of_different_implementations_are_not_compared():
    base, cand = synthetic(seed=1), synthetic(lambda c, v: 1.25, seed=2)
    cand.meta["canary"]["describe"]["implementation"] = {"version": 2}
    comparison = compare.compare_sets(base, cand)
    assert not comparison.canary.available
    assert comparison.canary.reason.startswith("the canaries differ (implementation")
    assert comparison.exit_code() == 0


def test_a_single_round_cannot_be_judged():
    comparison = compare.compare_sets(synthetic(seed=1, rounds=1), synthetic(seed=2, rounds=1))
    assert {c.verdict for c in comparison.changes} == {"inconclusive"}
    assert comparison.changes[0].note.startswith("fewer than 2 rounds on a side")


GOLDEN_INTERLEAVED = Path(__file__).parent / "data" / "golden" / "interleaved"

# synthetic() runs were measured in one process, and compare says what that means
ONE_PROCESS_NOTES = [
    f"{side}: measured in one process, so intervals are over rounds and miss what differs "
    "between processes (benchmarks/REPORT-noise.md); run with --processes 3 or more"
    for side in ("baseline", "candidate")
]


def test_few_rows_cannot_estimate_run_to_run_noise():
    comparison = compare.compare_sets(
        synthetic(seed=1, channels=(8,)), synthetic(seed=2, channels=(8,))
    )
    assert comparison.notes == [
        *ONE_PROCESS_NOTES,
        "fake: fewer than 5 comparable rows, so run-to-run noise cannot be estimated; "
        "intervals cover round-to-round noise only",
    ]
    assert not comparison.shifts[0].detected  # one row is no whole run


def test_changed_counts_are_reported():
    base, cand = synthetic(seed=1), synthetic(seed=2)
    cand.results.loc[cand.results.in_channels == 8, "macs"] += 1
    comparison = compare.compare_sets(base, cand)
    notes = {c.variant: c.note for c in comparison.changes if c.config_id.startswith("n1_c8-")}
    macs = base.results[base.results.in_channels == 8].set_index("variant").macs
    assert (
        notes["standard"]
        == f"counts changed: standard macs {macs['standard']} -> {macs['standard'] + 1}"
    )


def test_different_hardware_is_refused_unless_allowed():
    base, cand = synthetic(seed=1), synthetic(seed=2, cpu="Other CPU")
    with pytest.raises(compare.CompareError) as err:
        compare.compare_sets(base, cand)
    assert str(err.value) == (
        "the runs were measured on different hardware (cpu_model 'Test CPU' vs 'Other CPU'); "
        "pass --allow-different-hardware to compare anyway"
    )
    allowed = compare.compare_sets(base, cand, allow_different_hardware=True)
    assert allowed.hardware_differs
    assert ("environment.cpu_model", "Test CPU", "Other CPU") in allowed.environment


# ---------------------------------------------------------------------------------------------
# Golden outputs on the checked-in result sets
# ---------------------------------------------------------------------------------------------


def test_checked_in_data_is_what_the_generator_makes():
    for role, directory in (("baseline", BASE), ("candidate", CAND)):
        fresh = compare_data.make_run(role)
        stored = results.load_results(directory)
        pd.testing.assert_frame_equal(stored.samples, fresh.samples)
        columns = [c for c in results.RESULT_COLUMNS if c != "prepare_s"]  # wall-clock time
        pd.testing.assert_frame_equal(stored.results[columns], fresh.results[columns])


def golden_comparison() -> compare.Comparison:
    return compare.compare_sets(results.load_results(BASE), results.load_results(CAND))


def test_golden_table():
    buffer = Console(width=160, file=io.StringIO(), record=True, color_system=None)
    buffer.print(render.rich_table(golden_comparison()))
    assert buffer.export_text() == (DATA / "expected-table.txt").read_text()


def test_golden_markdown():
    assert render.markdown(golden_comparison()) == (DATA / "expected.md").read_text()


def test_golden_verdicts_match_the_design_of_the_data():
    # The design (tests/compare_data.py) says 32 channels is "same or inconclusive, never
    # slower"; on the checked-in data, with its seeds, both variants come out inconclusive.
    assert verdicts(golden_comparison()) == {
        (8, "standard"): "same",
        (8, "separable"): "same",
        (16, "standard"): "slower",
        (16, "separable"): "same",
        (24, "standard"): "same",
        (24, "separable"): "faster",
        (32, "standard"): "inconclusive",
        (32, "separable"): "inconclusive",
        (40, "standard"): "failed",
        (40, "separable"): "failed",
        (48, "standard"): "removed",
        (48, "separable"): "removed",
        (56, "standard"): "added",
        (56, "separable"): "added",
    }


def test_json_and_github_benchmark_formats():
    comparison = golden_comparison()
    doc = json.loads(render.as_json(comparison))
    assert doc["exit_code"] == 1 and doc["summary"]["regressions"] == 3
    assert doc["summary"]["slower"] == 1 and doc["summary"]["added"] == 2
    assert doc["changes"][0]["verdict"] == "slower"
    assert doc["environment_differences"][0] == {
        "what": "environment.libraries.torch",
        "baseline": "2.12.0",
        "candidate": "2.13.0",
    }
    entries = json.loads(render.github_benchmark(comparison))
    assert all(set(e) == {"name", "unit", "value", "range", "extra"} for e in entries)
    first = entries[0]
    assert first["name"] == "n1 16->16 @8 k3s1 float32 t1 standard [fake]"
    assert first["unit"] == "us" and first["value"] == pytest.approx(251, rel=0.01)
    assert first["extra"].startswith("verdict: slower; candidate/baseline 1.2")
    assert len(entries) == 10  # every row with a candidate value: 8 compared + 2 added


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------


def test_exit_codes(tmp_path):
    res = cli.invoke(app, ["compare", str(BASE), str(CAND)])
    assert res.exit_code == 1, res.output
    assert "REGRESSION: 3 row(s) got worse (exit 1)." in res.output
    same = cli.invoke(app, ["compare", str(BASE), str(BASE)])
    assert same.exit_code == 0 and "No regression (exit 0)." in same.output
    shifted = {"a": synthetic(seed=1), "b": synthetic(lambda c, v: 1.15, seed=2, machine=1.15)}
    for name, rs in shifted.items():
        (tmp_path / name).mkdir()
        results.write_run(tmp_path / name, rs.results, rs.samples, rs.meta)
    args = ["compare", str(tmp_path / "a"), str(tmp_path / "b")]
    assert cli.invoke(app, args).exit_code == 0
    assert cli.invoke(app, [*args, "--fail-on-inconclusive"]).exit_code == 3


def test_markdown_and_json_go_to_stdout_or_a_file(tmp_path):
    res = cli.invoke(app, ["compare", str(BASE), str(CAND), "--format", "markdown"])
    assert res.exit_code == 1
    assert res.output == (DATA / "expected.md").read_text()
    out = tmp_path / "summary.json"
    res = cli.invoke(app, ["compare", str(BASE), str(CAND), "--format", "json", "-o", str(out)])
    assert res.exit_code == 1
    assert json.loads(out.read_text())["metric"] == "latency"
    assert "REGRESSION" in res.output  # the log still gets the table


def test_every_input_form_gives_the_same_comparison(tmp_path):
    export = tmp_path / "candidate.json"
    res = cli.invoke(app, ["export", str(CAND), "-o", str(export)])
    assert res.exit_code == 0, res.output
    reference = render.as_json(golden_comparison())
    for candidate in (CAND / "results.parquet", CAND / "results.csv", CAND / "run.json", export):
        comparison = compare.compare_sets(
            results.load_results(BASE), results.load_results(candidate)
        )
        assert render.as_json(comparison) == reference, candidate


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--threshold", "5"],
            "--threshold '5': give a fraction (0.05) or a percentage (5%), below 1 (100%)",
        ),
        (["--threshold", "abc"], "--threshold 'abc': not a number like 0.05 or 5%"),
        (["--confidence", "1.5%"], "--confidence 0.015: must be between 0.5 and 1"),
    ],
)
def test_bad_options_are_one_line_exit_2(args, message):
    res = cli.invoke(app, ["compare", str(BASE), str(CAND), *args])
    assert res.exit_code == 2
    assert res.output.strip() == f"error: {message}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metric", "flops"], "'flops' is not one of 'latency', 'speedup'"),
        (["--format", "xml"], "'xml' is not one of 'table', 'markdown', 'json', 'github-"),
    ],
)
def test_bad_choices_are_one_line_exit_2(args, message):
    """--metric and --format are choices typer checks: the console script says so in one line."""
    out = subprocess.run(
        [sys.executable, "-c", "from dscbench.cli import main; main()", "compare", str(BASE),
         str(CAND), *args],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.startswith(f"error: Invalid value for '{args[0]}'")
    assert message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr


def test_bad_inputs_are_one_line_exit_2(tmp_path):
    missing = cli.invoke(app, ["compare", str(tmp_path / "nope"), str(CAND)])
    assert missing.exit_code == 2
    assert missing.output.strip() == f"error: {tmp_path / 'nope'}: no such file or directory"
    corrupt = tmp_path / "corrupt"
    shutil.copytree(CAND, corrupt)
    (corrupt / "results.parquet").write_bytes(b"not parquet")
    res = cli.invoke(app, ["compare", str(BASE), str(corrupt)])
    assert res.exit_code == 2 and res.output.startswith(
        f"error: {corrupt / 'results.parquet'}: unreadable"
    )
    no_samples = tmp_path / "no-samples"
    shutil.copytree(CAND, no_samples)
    (no_samples / "samples.parquet").unlink()
    res = cli.invoke(app, ["compare", str(BASE), str(no_samples)])
    assert res.output.strip() == (
        "error: candidate: no raw samples (samples.parquet) beside the results"
    )
    not_export = tmp_path / "x.json"
    not_export.write_text("[1, 2]")
    res = cli.invoke(app, ["compare", str(BASE), str(not_export)])
    assert res.output.strip() == (
        f"error: {not_export}: not a dscbench JSON export (no format 'dscbench-results')"
    )
    other = tmp_path / "other-cpu"
    shutil.copytree(CAND, other)
    meta = json.loads((other / "run.json").read_text())
    meta["environment"]["cpu_model"] = "Other CPU"
    (other / "run.json").write_text(json.dumps(meta))
    res = cli.invoke(app, ["compare", str(BASE), str(other)])
    assert res.exit_code == 2 and "different hardware" in res.output
    assert (
        cli.invoke(app, ["compare", str(BASE), str(other), "--allow-different-hardware"]).exit_code
        == 1
    )


@pytest.mark.slow
def test_compare_does_not_import_torch():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from dscbench.cli import app\n"
        f"r = CliRunner().invoke(app, ['compare', {str(BASE)!r}, {str(CAND)!r}])\n"
        "assert r.exit_code == 1, r.output\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_the_data_directory_holds_only_what_the_tests_use():
    names = sorted(p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file())
    assert names == [
        "baseline/results.csv",
        "baseline/results.parquet",
        "baseline/run.json",
        "baseline/samples.parquet",
        "candidate/results.csv",
        "candidate/results.parquet",
        "candidate/run.json",
        "candidate/samples.parquet",
        "expected-table.txt",
        "expected.md",
    ]


def test_long_tables_list_what_matters_and_say_what_they_left_out():
    changes = [
        compare.Change(f"c{i}", "fake", "standard", f"row {i}", "same", 1.0, 1.0, 1.0, 0.99, 1.01)
        for i in range(100)
    ]
    changes[70] = compare.Change("c70", "fake", "standard", "row 70", "slower", 1, 2, 2, 1.9, 2.1)
    comparison = compare.Comparison("latency", 0.05, 0.95, changes)
    rows, left_out = render.shown_rows(comparison, 60)
    assert [c.label for c in rows] == ["row 70"]
    assert (
        left_out == "... 99 more rows not listed (99 of them same); --format json lists every row"
    )
    assert len(json.loads(render.as_json(comparison))["changes"]) == 100
    rows, left_out = render.shown_rows(comparison, 100)
    assert len(rows) == 100 and left_out == ""


def test_an_unwritable_output_is_one_line_exit_2(tmp_path):
    target = tmp_path / "missing-dir" / "out.md"
    res = cli.invoke(
        app, ["compare", str(BASE), str(CAND), "--format", "markdown", "-o", str(target)]
    )
    assert res.exit_code == 2
    assert (
        res.output.strip() == f"error: --output {target}: cannot write (No such file or directory)"
    )


def test_the_whole_run_shift_is_reported_in_the_metrics_direction():
    slower_separable = synthetic(lambda c, v: 1.2 if v == "separable" else 1.0, seed=2)
    comparison = compare.compare_sets(synthetic(seed=1), slower_separable, metric="speedup")
    (shift,) = comparison.shifts
    assert shift.detected and shift.ratio == pytest.approx(1 / 1.2, rel=0.01)
    assert shift.ci_low <= shift.ratio <= shift.ci_high
    assert {c.verdict for c in comparison.changes} == {"inconclusive"}


def test_a_disturbed_run_is_called_out():
    calm, busy = synthetic(seed=1), synthetic(seed=2, noise=0.3, wander=0.2)
    comparison = compare.compare_sets(calm, busy)
    assert comparison.round_spread["baseline"] < stats.DISTURBED_ROUND_SPREAD
    assert comparison.round_spread["candidate"] > stats.DISTURBED_ROUND_SPREAD
    (note,) = [n for n in comparison.notes if n.startswith("candidate: its rounds disagree by")]
    assert note.endswith("so the machine was busy during that run and its rows will mostly be "
                         "inconclusive; rerun it")  # fmt: skip
    assert not any(
        n.startswith("baseline:") for n in comparison.notes if n not in ONE_PROCESS_NOTES
    )


# ---------------------------------------------------------------------------------------------
# Interleaved environments: paired rounds
# ---------------------------------------------------------------------------------------------


def _with_kernels(rs: results.ResultSet, kernels, env: str | None = None) -> results.ResultSet:
    """``rs`` with its rows' kernels set by ``kernels(channels, variant)`` (in ``env`` only)."""
    table = rs.results.copy()
    for i, row in table.iterrows():
        if env is None or row.env == env:
            table.at[i, "kernels"] = kernels(int(row.in_channels), row.variant)
    return results.ResultSet(rs.meta, table, rs.samples)


def _onednn(isa):
    return lambda c, v: f"Mkldnn/jit:{isa}" if v == "standard" else f"Mkldnn/jit_dw:{isa} + Slow2d"


def test_a_row_that_ran_another_kernel_gets_a_note_whatever_its_time_and_can_fail_the_gate():
    base = _with_kernels(synthetic(seed=1), _onednn("avx512_core"))
    isa = lambda c, v: "sse41" if (c, v) == (16, "standard") else "avx512_core"  # noqa: E731
    cand = _with_kernels(synthetic(seed=2), lambda c, v: _onednn(isa(c, v))(c, v))
    comparison = compare.compare_sets(base, cand)
    assert set(verdicts(comparison).values()) == {"same"}  # its time did not move
    (changed,) = comparison.kernel_changes
    assert changed.config_id.startswith("n1_c16-")
    assert changed.variant == "standard" and changed.verdict == "same"
    assert (changed.kernels_before, changed.kernels_after) == (
        "Mkldnn/jit:avx512_core",
        "Mkldnn/jit:sse41",
    )
    assert "kernel changed: Mkldnn/jit:avx512_core -> Mkldnn/jit:sse41" in changed.note
    assert comparison.exit_code() == 0
    assert comparison.exit_code(fail_on_kernel_change=True) == 1
    assert render.decision(comparison, compare.FailOn(kernel_change=True)) == (
        "KERNEL CHANGE: 1 row(s) ran another kernel (exit 1, --fail-on-kernel-change)."
    )
    assert "1 row(s) ran a different kernel" in render.summary(comparison)
    doc = json.loads(render.as_json(comparison, compare.FailOn(kernel_change=True)))
    assert doc["exit_code"] == 1 and doc["summary"]["kernel_changes"] == 1
    assert sum(c["kernel_changed"] for c in doc["changes"]) == 1
    # The speedup metric: the pair row names both variants' kernels.
    speed = compare.compare_sets(base, cand, metric="speedup")
    (pair,) = speed.kernel_changes
    assert pair.kernels_after == (
        "standard: Mkldnn/jit:sse41 | separable: Mkldnn/jit_dw:avx512_core + Slow2d"
    )


def test_a_side_without_kernels_is_no_kernel_change():
    # A file from before schema 7 (or a backend that names none) has empty kernels.
    base = synthetic(seed=1)
    cand = _with_kernels(synthetic(seed=2), _onednn("avx2"))
    comparison = compare.compare_sets(base, cand)
    assert comparison.kernel_changes == []
    assert comparison.exit_code(fail_on_kernel_change=True) == 0
    assert not any("kernel" in c.note for c in comparison.changes)


def test_interleaved_kernel_change_between_environments_and_the_cli_flag(tmp_path):
    run = _with_kernels(interleaved(seed=1), _onednn("avx512_core"))
    run = _with_kernels(run, _onednn("sse41"), env="head")
    comparison = compare.compare_envs(run)
    assert set(verdicts(comparison).values()) == {"same"}
    assert len(comparison.kernel_changes) == len(comparison.changes) == 2 * len(CHANNELS)
    a_a = compare.compare_envs(_with_kernels(interleaved(seed=1), _onednn("avx2")))
    assert a_a.kernel_changes == []
    out = tmp_path
    results.write_run(out, run.results, run.samples, run.meta)
    res = cli.invoke(app, ["compare", str(out)])
    assert res.exit_code == 0, res.output
    res = cli.invoke(app, ["compare", str(out), "--fail-on-kernel-change"])
    assert res.exit_code == 1, res.output
    assert "KERNEL CHANGE" in res.output and "Mkldnn/jit:sse41" in res.output


def test_interleaved_a_a_is_the_same_everywhere():
    comparison = compare.compare_envs(interleaved(seed=1))
    assert comparison.design == "interleaved" and comparison.envs == ("base", "head")
    assert set(verdicts(comparison).values()) == {"same"}
    assert comparison.exit_code() == 0
    assert ("variables.X", "-", "1") in comparison.environment


def test_interleaved_a_uniform_slowdown_is_slower_even_while_the_machine_drifts_30_percent():
    # The machine slows down steadily by 30% over the run; both environments see it alike.
    drift = lambda t: 1.0 + 0.3 * min(t / 1.2, 1.0)  # noqa: E731
    run = interleaved(lambda c, v: 1.25, seed=2, drift=drift)
    per_round = run.samples.groupby("round").time_s.median()
    assert per_round.iloc[-1] / per_round.iloc[0] > 1.2  # the drift is really there
    comparison = compare.compare_envs(run)
    assert set(verdicts(comparison).values()) == {"slower"}
    assert all(c.ratio == pytest.approx(1.25, rel=0.01) for c in comparison.changes)
    assert all(c.ci_high < 1.3 and c.ci_low > 1.2 for c in comparison.changes)
    (shift,) = comparison.shifts
    assert shift.detected and shift.cause == "real"
    assert comparison.exit_code() == 1
    # The same data as two sequential runs: only the paired design sees through the drift.
    a_a = compare.compare_envs(interleaved(seed=3, drift=drift))
    assert set(verdicts(a_a).values()) == {"same"}


def test_interleaved_one_slower_row_and_the_speedup_metric():
    run = interleaved(lambda c, v: 1.15 if (c, v) == (24, "separable") else 1.0, seed=4)
    found = verdicts(compare.compare_envs(run))
    assert found.pop((24, "separable")) == "slower"
    assert set(found.values()) == {"same"}
    speed = compare.compare_envs(run, metric="speedup")
    found = verdicts(speed)
    assert found.pop((24, "pair")) == "slower"  # separable lost 15% of its advantage
    assert set(found.values()) == {"same"}


def test_interleaved_envs_are_picked_by_name_and_checked():
    run = interleaved(seed=5)
    swapped = compare.compare_envs(run, baseline_env="head", candidate_env="base")
    assert swapped.envs == ("head", "base")
    with pytest.raises(compare.CompareError, match="--candidate-env 'nope': the run has"):
        compare.compare_envs(run, baseline_env="base", candidate_env="nope")
    with pytest.raises(compare.CompareError, match="both 'base'"):
        compare.compare_envs(run, baseline_env="base", candidate_env="base")
    with pytest.raises(compare.CompareError, match="this run measured one environment"):
        compare.compare_envs(synthetic(seed=1))


def test_one_environment_of_an_interleaved_run_against_a_plain_run():
    run = interleaved(lambda c, v: 1.25, seed=6)
    plain = synthetic(seed=7)
    with pytest.raises(compare.CompareError, match="pick one with --candidate-env"):
        compare.compare_sets(plain, run)
    comparison = compare.compare_sets(plain, run, candidate_env="base")
    assert all(c.env == "" for c in comparison.changes)
    assert {c.verdict for c in comparison.changes} == {"same"}  # base ran at the plain costs


def test_interleaved_compare_from_the_command_line(tmp_path):
    run = interleaved(lambda c, v: 1.25 if (c, v) == (16, "standard") else 1.0, seed=8)
    results.write_run(tmp_path, run.results, run.samples, run.meta)
    res = cli.invoke(app, ["compare", str(tmp_path)])
    assert res.exit_code == 1, res.output
    assert "environment head against base, measured" in res.output
    res = cli.invoke(app, ["compare", str(tmp_path), "--format", "json"])
    doc = json.loads(res.output)
    assert doc["design"] == "interleaved" and doc["environments"] == ["base", "head"]
    bad = cli.invoke(app, ["compare", str(tmp_path), "--baseline-env", "x"])
    assert bad.exit_code == 2
    assert bad.output.strip() == "error: --baseline-env 'x': the run has environments base, head"
    half = cli.invoke(app, ["compare", str(tmp_path), "--baseline-env", "head"])
    assert half.output.strip() == "error: --candidate-env is needed too (the run has base, head)"


def test_every_compared_row_reports_its_minimum_detectable_change():
    """detectable = exp((t_conf + t_power) * se) - 1, se the standard error behind the row's
    interval (interleaved: over its units, units - 1 degrees of freedom); the resolution line
    counts the rows within the threshold and names the coarsest."""
    from scipy import stats as sps

    comparison = compare.compare_envs(results.load_results(GOLDEN_INTERLEAVED))
    judged = [c for c in comparison.changes if c.verdict.comparable]
    assert judged and all(c.units == 5 for c in judged)  # one process: the 5 rounds are units
    for c in judged:
        q = sps.t.ppf(0.975, c.units - 1)
        se = math.log(c.ci_high / c.ci_low) / 2 / q
        expected = math.expm1((q + sps.t.ppf(0.8, c.units - 1)) * se)
        assert c.detectable == pytest.approx(expected, rel=1e-9)
    comparison.threshold = 0.001  # finer than any row: every row is named as coarser
    fine = [c for c in judged if c.detectable <= comparison.threshold]
    lines = render.resolution_lines(comparison)
    assert lines[0].startswith(
        f"Resolution: this comparison can tell changes of 0.1% or more apart in {len(fine)} of "
        f"{len(judged)} rows"
    )
    coarse = max(judged, key=lambda c: c.detectable)
    assert lines[1].startswith("Coarser than the threshold: ") and (
        f"{coarse.detectable:.1%} (5 rounds, interval ±" in lines[1]
    )
    doc = json.loads(render.as_json(comparison))
    assert doc["summary"]["resolved_rows"] == len(fine) and doc["summary"]["power"] == 0.8
    by_key = {(c["config_id"], c["variant"]): c["detectable"] for c in doc["changes"]}
    assert by_key[coarse.config_id, coarse.variant] == pytest.approx(coarse.detectable)
