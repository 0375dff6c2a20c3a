"""Crash-consistent result files and --resume (issue 11): the journal, its manifest, a run
interrupted and resumed in-process on the fake clock and as a real subprocess, kill -9 at
random moments, and every reason a resume is refused."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dscbench import results, runner
from dscbench.cli import app
from dscbench.commands.run.planning import Plan
from dscbench.commands.run.recorder import Recorder
from dscbench.commands.run.resume import resume_command, resume_point, resumed_meta
from dscbench.errors import ResultsError
from dscbench.measure import HarnessOptions
from dscbench.spec import RunSettings

from .conftest import FakeBackend, fake_cases, start_run
from .journal_writer import expected_times

WRITER = Path(__file__).with_name("journal_writer.py")

cli = CliRunner()
SETTINGS = dict(min_time=0.008, rounds=4, warmup=0.0, parity=False, seed=3)
HARNESS = HarnessOptions(block_time=1e-3, warmup=0.0)


def cost(s, v):
    return s.in_channels * (2e-6 if v == "standard" else 1e-6)


def recorder(out: Path, cases, previous=None) -> Recorder:
    """The checkpoint `dscbench run` uses, over a plan of fake cases measured in-process."""
    out.mkdir(exist_ok=True)
    plan = Plan(cases, [""], {"": []})
    plan.backends = {"fake": {"device": "cpu", "device_name": "fake cpu"}}
    if previous is not None:
        return Recorder(
            out, plan, resumed_meta(previous, previous.meta), time.perf_counter(),
            previous,
        )  # fmt: skip
    meta = {
        "settings": dict(SETTINGS), "environment": {"hostname": "testhost"},
        "backends": plan.backends,
    }  # fmt: skip
    return Recorder(out, plan, meta, time.perf_counter())


def sweep(clock, out: Path, cases, *, stop_at: int | None = None, previous=None):
    """Measure ``cases`` into ``out``; a KeyboardInterrupt at the ``stop_at``-th timed call."""
    calls = [0]

    def fail_run(s, v, n):
        calls[0] += 1
        return KeyboardInterrupt() if calls[0] == stop_at else None

    backend = FakeBackend(clock, cost, fail_run=fail_run)
    return runner.run_sweep(
        cases,
        RunSettings(**SETTINGS),
        runner.local({"fake": backend}),
        checkpoint=recorder(out, cases, previous),
        harness=HARNESS,
        verify_counts=False,
        resume=previous.point if previous is not None else None,
    )


def rounds_per_block(samples: pd.DataFrame) -> pd.Series:
    return samples.groupby(["config_id", "variant"])["round"].agg(lambda r: tuple(sorted(set(r))))


def test_an_interrupted_run_resumed_equals_an_uninterrupted_one(clock, tmp_path):
    cases = fake_cases(4)
    whole = sweep(clock, tmp_path / "whole", cases)
    assert whole.status == "complete"
    with pytest.raises(KeyboardInterrupt):
        sweep(clock, tmp_path / "cut", cases, stop_at=2600)  # inside round 3 of 4
    cut = results.load_results(tmp_path / "cut")
    assert cut.meta["status"] == "interrupted" and 0 < cut.meta["rounds_done"] < 4
    assert len(cut.results) == 8

    previous = resume_point(tmp_path / "cut")
    done = previous.point.rounds_done
    resumed = sweep(clock, tmp_path / "cut", cases, previous=previous)
    assert resumed.status == "complete"
    a, b = results.load_results(tmp_path / "whole"), results.load_results(tmp_path / "cut")
    # The same rows, every one measured in every round exactly once: the interrupted round
    # was redone, not half counted, and nothing was measured twice.
    key = ["config_id", "variant"]
    assert a.results[key].equals(b.results[key]) and (b.results.status == "ok").all()
    assert (b.results.rounds == 4).all()
    assert (rounds_per_block(b.samples) == (0, 1, 2, 3)).all()
    assert not b.samples.duplicated(["config_id", "variant", "pair"]).any()
    per_round = ["config_id", "variant", "round"]
    assert b.samples.groupby(per_round).size().equals(a.samples.groupby(per_round).size())
    # the rounds measured before the interrupt are kept as they were
    before = cut.samples[cut.samples["round"] < done].reset_index(drop=True)
    kept = b.samples[b.samples["round"] < done].reset_index(drop=True)
    pd.testing.assert_frame_equal(before, kept)
    assert b.meta["resumed"][0]["rounds_done"] == done
    # the fake clock makes costs exact, so both runs find the same latencies
    np.testing.assert_allclose(a.results.latency_median_s, b.results.latency_median_s)


def test_every_manifest_counts_rounds_from_the_first(clock, tmp_path, monkeypatch):
    """Readers poll manifest.json while a run goes on: even generation 0, written before the
    first checkpoint's lines, says a status and a count (it said null, and a reader comparing
    counts crashed: CI stop 24)."""
    from dscbench.results import journal

    written = []
    real = journal.write_json

    def spy(path, doc, **kwargs):
        if Path(path).name == results.MANIFEST:
            written.append(dict(doc))
        return real(path, doc, **kwargs)

    monkeypatch.setattr(journal, "write_json", spy)
    cases = fake_cases(2)
    runner.run_sweep(
        cases,
        RunSettings(**SETTINGS),
        runner.local({"fake": FakeBackend(clock, cost)}),
        checkpoint=recorder(tmp_path, cases),
        harness=HARNESS,
        verify_counts=False,
    )
    assert [m["generation"] for m in written] == list(range(1, len(written) + 1))
    assert written[0]["rounds_done"] == 0 and written[0]["status"] == "running"
    counts = [m["rounds_done"] for m in written]
    assert all(isinstance(c, int) for c in counts) and counts == sorted(counts)
    assert counts[-1] == SETTINGS["rounds"] and written[-1]["status"] == "complete"


def test_the_journal_is_read_while_a_run_is_going(clock, tmp_path, monkeypatch):
    """Between checkpoints nothing is consolidated: readers rebuild the tables from the
    journal, with the same rows the final files have."""
    monkeypatch.setattr(runner, "CHECKPOINT_INTERVAL_S", float("inf"))  # only the fixed ones
    cases = fake_cases(3)
    seen = []
    inner = recorder(tmp_path, cases)

    def checkpoint(state):
        inner(state)
        manifest = results.read_manifest(tmp_path)
        seen.append((manifest["consolidated"], results.load_results(tmp_path)))

    runner.run_sweep(
        cases,
        RunSettings(**SETTINGS),
        runner.local({"fake": FakeBackend(clock, cost)}),
        checkpoint=checkpoint,
        harness=HARNESS,
        verify_counts=False,
    )
    consolidated = [c for c, _ in seen]
    assert consolidated == [False] * (len(seen) - 1) + [True] and len(seen) == 5
    first = seen[0][1]
    assert (first.results.status == "not_measured").all() and len(first.samples) == 0
    assert [rs.meta["rounds_done"] for _, rs in seen] == [0, 1, 2, 3, 4]
    final = seen[-1][1]
    from_journal = results.read_journal(tmp_path, results.read_manifest(tmp_path)["journal_bytes"])
    meta = results.meta_from_journal(final.meta, results.read_manifest(tmp_path), from_journal)
    table, samples = results.build_tables(from_journal.records, from_journal.samples, meta)
    pd.testing.assert_frame_equal(table, final.results)
    pd.testing.assert_frame_equal(samples, final.samples)


def journal_with(tmp_path: Path, batches: list[dict]) -> results.Journal:
    journal = results.Journal.create(tmp_path, {"schema_version": 4, "status": "running"})
    for batch in batches:
        journal.append([batch], {"status": "running"})
    return journal


def samples_of(values: list[float], round_: int) -> dict:
    n = len(values)
    return {
        "config_id": ["c"] * n, "variant": ["standard"] * n, "backend": ["fake"] * n,
        "env": [""] * n, "round": [round_] * n, "pair": list(range(n)),
        "iterations": [1] * n, "time_s": values,
    }  # fmt: skip


def test_readers_trust_only_committed_bytes(tmp_path):
    journal = journal_with(tmp_path, [{"samples": samples_of([1.0, 2.0], 0)}])
    committed = journal.committed
    with open(tmp_path / results.JOURNAL, "ab") as f:  # an append a kill cut short
        f.write(b'{"samples": {"time_s": [3.0, 4')
    contents = results.read_journal(tmp_path, results.read_manifest(tmp_path)["journal_bytes"])
    assert contents.samples.time_s.tolist() == [1.0, 2.0]
    reopened = results.Journal.reopen(tmp_path)  # --resume drops the torn tail
    assert (tmp_path / results.JOURNAL).stat().st_size == committed
    reopened.append([{"resume_from": 0}, {"samples": samples_of([5.0], 0)}], {"status": "running"})
    contents = results.read_journal(tmp_path, reopened.committed)
    assert contents.samples.time_s.tolist() == [5.0]  # the redone round replaced round 0


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / results.MANIFEST).write_text("{"), "manifest.json: unreadable"),
        (lambda d: (d / results.MANIFEST).write_text("[]"), "not a dscbench manifest"),
        (lambda d: (d / results.JOURNAL).write_bytes(b"x" * 10), "shorter than its manifest"),
        (
            lambda d: (d / results.JOURNAL).write_bytes(
                b"{" * (d / results.JOURNAL).stat().st_size
            ),
            "line 1 is corrupt",
        ),
    ],
    ids=["manifest-json", "manifest-kind", "journal-short", "journal-garbage"],
)
def test_a_damaged_journal_is_one_error_line(tmp_path, damage, message):
    journal_with(tmp_path, [{"samples": samples_of([1.0], 0)}])
    damage(tmp_path)
    with pytest.raises(ResultsError, match=message):
        results.load_results(tmp_path)


def kill_and_check(directory: Path, delay: float) -> int:
    """Start a process that appends to a journal as fast as it can, kill -9 it after
    ``delay`` seconds, and check that the last committed state reads back whole."""
    directory.mkdir()
    proc = subprocess.Popen([sys.executable, str(WRITER), str(directory)])
    deadline = time.monotonic() + 60
    while not (directory / results.MANIFEST).exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(delay)
    proc.kill()
    proc.wait()
    manifest = results.read_manifest(directory)
    contents = results.read_journal(directory, manifest["journal_bytes"])
    assert contents.samples.time_s.tolist() == expected_times(manifest["generation"])
    return manifest["generation"] - 1


@pytest.mark.slow
def test_kill_9_at_random_moments_leaves_the_last_checkpoint_readable(tmp_path):
    rng = np.random.default_rng(11)
    appended = [kill_and_check(tmp_path / f"k{i}", float(rng.uniform(0, 0.3))) for i in range(12)]
    assert sum(appended) > 0  # the kills landed while it was writing, not before


# ---------------------------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------------------------

SUB = ["--in-channels", "4,8", "--size", "8", "--kernel", "3", "--stride", "1", "--min-time", "3",
       "--rounds", "6", "--threads", "1", "--processes", "1", "--no-canary"]  # fmt: skip


@pytest.mark.slow
def test_a_double_ctrl_c_then_resume_gives_exactly_the_full_run(tmp_path):
    out = tmp_path / "run"
    proc = start_run(out, SUB, rounds=2)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stdout + stderr
    cut = results.load_results(out)
    assert cut.meta["status"] == "interrupted" and 2 <= cut.meta["rounds_done"] < 6, cut.meta

    done = subprocess.run(
        [sys.executable, "-m", "dscbench", "run", *SUB, "--resume", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    said = " ".join(done.stdout.split())
    assert f"resuming {out}: {cut.meta['rounds_done']} of 6 round(s) done" in said, said
    final = results.load_results(out)
    rows = final.results[["config_id", "variant", "status", "rounds", "error"]].to_string()
    assert final.meta["status"] == "complete" and len(final.results) == 4, rows
    assert (final.results.status == "ok").all() and (final.results.rounds == 6).all(), rows
    per_block = rounds_per_block(final.samples)
    assert (per_block == tuple(range(6))).all(), per_block.to_string()
    assert not final.samples.duplicated(["config_id", "variant", "pair"]).any()


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("resume") / "run"
    res = cli.invoke(app, ["run", *TINY, "-o", str(out)])
    assert res.exit_code == 0, res.output
    return out


TINY = ["--in-channels", "4", "--out-channels", "4", "--size", "8", "--kernel", "3",
        "--min-time", "0.02", "--rounds", "2", "--warmup", "0", "--threads", "1",
        "--processes", "1", "--no-canary"]  # fmt: skip


def copy_of(finished: Path, tmp_path: Path, status: str = "interrupted", **environment) -> Path:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished, out)
    manifest = json.loads((out / results.MANIFEST).read_text())
    (out / results.MANIFEST).write_text(json.dumps(dict(manifest, status=status)))
    meta = json.loads((out / results.RUN_JSON).read_text())
    meta["environment"].update(environment)
    (out / results.RUN_JSON).write_text(json.dumps(meta))
    return out


@pytest.mark.parametrize(
    ("change", "args", "message"),
    [
        ({}, ["--rounds", "3"], "the settings differ (rounds 2 -> 3); resume it with the "
         "command it was started with: dscbench "),
        ({}, ["--in-channels", "8"], "the configurations differ (2 in the run, 2 now)"),
        ({}, ["--seed", "9"], "the settings differ (seed 0 -> 9)"),
        ({"dscbench": "0.0.1"}, [], "the dscbench version differs ('0.0.1' -> "),
        ({"cpu_model": "Z80"}, [], "the hardware (CPU model) differs ('Z80' -> "),
    ],
    ids=["rounds", "configurations", "seed", "version", "hardware"],
)  # fmt: skip
def test_a_different_sweep_is_not_resumed(finished, tmp_path, change, args, message):
    out = copy_of(finished, tmp_path, **change)
    res = cli.invoke(app, ["run", *TINY, *args, "--resume", str(out)])
    assert res.exit_code == 2, res.output
    assert message in res.output.replace("\n", " ")
    assert "Traceback" not in res.output


def test_what_cannot_be_resumed_is_one_line(finished, tmp_path):
    complete = cli.invoke(app, ["run", *TINY, "--resume", str(finished)])
    assert complete.exit_code == 2
    assert "the run is complete; there is nothing to resume" in complete.output
    out = copy_of(finished, tmp_path)
    (out / results.MANIFEST).unlink()
    old = cli.invoke(app, ["run", *TINY, "--resume", str(out)])
    assert old.exit_code == 2 and "it cannot be resumed" in old.output
    missing = cli.invoke(app, ["run", *TINY, "--resume", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "not a dscbench run directory" in missing.output
    both = cli.invoke(app, ["run", *TINY, "--resume", str(out), "-o", str(tmp_path / "x")])
    assert both.exit_code == 2 and "leave out -o" in both.output
    dry = cli.invoke(app, ["run", *TINY, "--resume", str(out), "--dry-run"])
    assert dry.exit_code == 2 and "cannot be combined with --dry-run" in dry.output


@pytest.mark.slow
def test_resuming_a_run_after_its_last_round_only_consolidates(finished, tmp_path):
    """A kill after the last round's checkpoint: --resume measures nothing more and writes the
    final files with the rows it had."""
    out = copy_of(finished, tmp_path, status="running")
    before = results.load_results(finished)
    res = cli.invoke(app, ["run", *TINY, "--resume", str(out)])
    assert res.exit_code == 0, res.output
    after = results.load_results(out)
    assert after.meta["status"] == "complete"
    pd.testing.assert_frame_equal(before.samples, after.samples)
    assert results.read_manifest(out)["consolidated"] is True


def test_the_command_to_resume_with_is_the_one_the_run_was_started_with():
    argv = ["/x/dscbench", "run", "--preset", "full", "-o", "r1", "--force", "--threads", "2"]
    assert resume_command(argv, Path("r1")) == (
        "dscbench run --preset full --threads 2 --resume r1"
    )


def test_a_run_killed_before_its_first_checkpoint_says_so(tmp_path):
    """Between run.json and the first manifest there is nothing to read: one clear line."""
    results.Journal.create(tmp_path, {"schema_version": 4, "status": "running"})
    (tmp_path / results.MANIFEST).unlink()
    with pytest.raises(ResultsError, match="stopped before its first checkpoint"):
        results.load_results(tmp_path)
