"""Result tables from a sweep, and their files round-tripping."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dscbench import results, runner
from dscbench.errors import ResultsError
from dscbench.measure import HarnessOptions
from dscbench.results.files import atomic_write
from dscbench.spec import RunSettings
from tests.tables import tables_of

from .conftest import FakeBackend, fake_cases


@pytest.fixture
def sweep(clock):
    backend = FakeBackend(
        clock,
        lambda s, v: (4e-5 if v == "standard" else 1e-5) * s.in_channels / 8,
        fail_prepare=lambda s, v: ValueError("bad") if s.in_channels == 24 else None,
    )
    return runner.run_sweep(
        fake_cases(3),
        RunSettings(min_time=0.02, rounds=2, warmup=0.0, seed=5),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )


def test_tables_have_the_documented_columns_and_values(sweep):
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")}, {"fake": 1e-7})
    assert list(table.columns) == results.RESULT_COLUMNS
    assert list(samples.columns) == results.SAMPLE_COLUMNS
    assert len(table) == 6
    ok = table[table.in_channels == 16].set_index("variant")
    assert ok.loc["standard", "latency_median_s"] == pytest.approx(8e-5)
    assert ok.loc["separable", "latency_median_s"] == pytest.approx(2e-5)
    assert ok.loc["separable", "speedup"] == pytest.approx(4.0)
    assert ok.loc["separable", "speedup_ci_low"] == pytest.approx(4.0)
    assert pd.isna(ok.loc["standard", "speedup"])  # pair columns live on the separable row
    mac_red = ok.loc["standard", "macs"] / ok.loc["separable", "macs"]
    assert ok.loc["separable", "mac_reduction"] == pytest.approx(mac_red)
    assert ok.loc["separable", "efficiency"] == pytest.approx(4.0 / mac_red)
    assert ok.loc["separable", "flops"] == 2 * ok.loc["separable", "macs"]
    assert (ok.rounds == 2).all() and (ok.status == "ok").all() and (ok.seed == 5).all()
    assert (
        ok.loc["standard", "n_samples"]
        == (samples.query("config_id == @ok.config_id.iloc[0] and variant == 'standard'").shape[0])
    )
    failed = table[table.in_channels == 24]
    assert (failed.status == "build_error").all()
    assert (failed.error == "ValueError: bad").all()
    assert failed.latency_median_s.isna().all()
    assert failed.macs.gt(0).all()  # counts are known even when timing failed
    assert (table.device_name == "fake cpu").all() and (ok.execution == "fake engine").all()
    assert ok.parity_max_rel_err.lt(1e-6).all() and (ok.parity_tolerance == 1e-3).all()
    assert ok.compile_s.isna().all() and ok.peak_memory_bytes.isna().all()
    assert ok.prepare_s.ge(0).all()


def test_files_round_trip(sweep, tmp_path):
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    out = results.prepare_output_dir(tmp_path / "run", force=False)
    results.write_run(out, table, samples, {"status": "complete"})
    assert sorted(p.name for p in out.iterdir()) == [
        "results.csv",
        "results.parquet",
        "run.json",
        "samples.parquet",
    ]
    from_dir = results.load_results(out)
    from_csv = results.load_results(out / "results.csv")
    pd.testing.assert_frame_equal(from_dir.results, table)
    pd.testing.assert_frame_equal(from_csv.results, table)
    pd.testing.assert_frame_equal(from_dir.samples, samples)
    assert from_dir.meta["schema_version"] == results.SCHEMA_VERSION


def test_output_dir_is_never_overwritten_without_force(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "results.csv").write_text("old")
    with pytest.raises(ResultsError, match="directory exists and is not empty \\(use --force\\)"):
        results.prepare_output_dir(tmp_path / "x", force=False)
    assert results.prepare_output_dir(tmp_path / "x", force=True) == tmp_path / "x"
    (tmp_path / "f").write_text("")
    with pytest.raises(ResultsError, match="exists and is not a directory"):
        results.prepare_output_dir(tmp_path / "f", force=True)


def test_atomic_write_leaves_no_partial_file(tmp_path, sweep):
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    results.write_run(tmp_path, table, samples, {})

    class Boom(Exception):
        pass

    def explode(path):
        path.write_text("half")
        raise Boom

    with pytest.raises(Boom):
        atomic_write(tmp_path / "results.csv", explode)
    assert results.load_results(tmp_path / "results.csv").results.shape == table.shape
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"schema_version": 99}, "schema_version 99 is newer than this dscbench reads"),
        ({"hello": 1}, "no integer schema_version"),
        ([], "not a JSON object"),
    ],
)
def test_bad_metadata_is_refused(tmp_path, sweep, meta, message):
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    results.write_run(tmp_path, table, samples, {})
    (tmp_path / "run.json").write_text(json.dumps(meta))
    with pytest.raises(ResultsError, match=message):
        results.load_results(tmp_path)


def test_corrupt_and_missing_inputs(tmp_path, sweep):
    with pytest.raises(ResultsError, match="no such file or directory"):
        results.load_results(tmp_path / "nope")
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    results.write_run(tmp_path, table, samples, {})
    (tmp_path / "results.parquet").write_bytes(b"not parquet")
    with pytest.raises(ResultsError, match=r"results\.parquet: unreadable"):
        results.load_results(tmp_path)
    (tmp_path / "results.csv").write_text("config_id,variant\nx,standard\n")
    with pytest.raises(ResultsError, match="missing columns backend"):
        results.load_results(tmp_path / "results.csv")
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(ResultsError, match=r"run\.json: unreadable"):
        results.load_results(tmp_path)


def test_a_half_finished_pair_is_kept_but_not_paired(sweep):
    case = next(c for c in sweep.cases if c.only.status == "ok")
    std = case.only.series["standard"]
    std.times.append(1.0)  # the interrupt landed before its partner block
    std.rounds.append(1)
    std.pairs.append(10_000)
    std.processes.append(0)
    table, _ = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    rows = table[table.config_id == case.case.spec.config_id].set_index("variant")
    assert rows.loc["standard", "n_samples"] == rows.loc["separable", "n_samples"] + 1
    assert rows.loc["standard", "latency_max_s"] == 1.0
    assert rows.loc["separable", "speedup"] == pytest.approx(4.0)


def test_an_unwritable_directory_is_a_one_line_error(tmp_path, sweep):
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    with pytest.raises(ResultsError, match=r"cannot write results to .*gone"):
        results.write_run(tmp_path / "gone", table, samples, {})


@pytest.mark.parametrize("suffix", ["", "results.csv"])
def test_a_version_1_run_is_upgraded_on_reading(sweep, tmp_path, suffix):
    """Runs written by dscbench 0.1.0 (schema 1) lack the backend columns; they read back with
    empty values, and device_name from run.json's backends section."""
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    old = table.drop(columns=list(results.ADDED_IN_V2))
    out = tmp_path / "v1"
    out.mkdir()
    old.to_parquet(out / "results.parquet", index=False)
    old.to_csv(out / "results.csv", index=False)
    samples.to_parquet(out / "samples.parquet", index=False)
    meta = {"schema_version": 1, "backends": {"fake": {"device_name": "Old CPU"}}}
    (out / "run.json").write_text(json.dumps(meta))
    loaded = results.load_results(out / suffix if suffix else out).results
    assert list(loaded.columns) == results.RESULT_COLUMNS
    assert (loaded.device_name == "Old CPU").all() and (loaded.execution == "").all()
    assert loaded.compile_s.isna().all() and loaded.parity_max_rel_err.isna().all()
    same = [
        c
        for c in results.RESULT_COLUMNS
        if c
        not in (
            *results.ADDED_IN_V2,
            *results.ADDED_IN_V4,
            *results.ADDED_IN_V6,
            *results.ADDED_IN_V7,
        )
    ]
    pd.testing.assert_frame_equal(loaded[same], table[same])


def older_run(tmp_path, table, samples, version: int, added) -> pd.DataFrame:
    """``table`` written without the columns ``added`` (by the version after ``version``),
    as a run of schema ``version``, and read back (with every current column)."""
    out = tmp_path / f"v{version}"
    out.mkdir()
    table.drop(columns=list(added)).to_parquet(out / "results.parquet", index=False)
    samples.to_parquet(out / "samples.parquet", index=False)
    (out / "run.json").write_text(json.dumps({"schema_version": version}))
    loaded = results.load_results(out).results
    assert list(loaded.columns) == results.RESULT_COLUMNS
    return loaded


def test_a_version_5_run_reads_back_without_rerun_intervals(sweep, tmp_path):
    """Schema 6 added the rerun interval; older files read back with it empty, every other
    column as written."""
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    assert table.speedup_rerun_low.notna().any()  # this dscbench writes it
    loaded = older_run(tmp_path, table, samples, 5, results.ADDED_IN_V6)
    assert loaded.speedup_rerun_low.isna().all() and loaded.speedup_rerun_high.isna().all()
    same = [
        c for c in results.RESULT_COLUMNS if c not in (*results.ADDED_IN_V6, *results.ADDED_IN_V7)
    ]
    pd.testing.assert_frame_equal(loaded[same], table[same])
    assert (loaded.kernels == "").all()  # schema 7's column, empty in older files


def test_a_version_8_run_reads_back_as_2d_layers_without_dilation(sweep, tmp_path):
    """Schema 9 added 1-D and 3-D layers, dilation and the depth multiplier: every layer of an
    older file was a 2-D conv at dilation 1 with one filter per channel, and reads back so."""
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    assert (table.dims == 2).all() and (table.dilation == 1).all()
    loaded = older_run(tmp_path, table, samples, 8, results.ADDED_IN_V9)
    assert loaded.dims.tolist() == [2] * len(table)
    assert loaded.dilation.tolist() == loaded.depth_multiplier.tolist() == [1] * len(table)
    assert loaded.frames.isna().all() and loaded.out_frames.isna().all()
    pd.testing.assert_frame_equal(loaded, table)


@pytest.mark.parametrize("processes", [None, 1, 3])
def test_a_version_4_run_gets_the_process_its_rounds_ran_in(sweep, tmp_path, processes):
    """Samples written before schema 5 have no process column: runs then measured round r in
    worker process r mod run.json's ``processes`` (one process when it is absent), and that is
    what they read back with."""
    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    out = tmp_path / "v4"
    out.mkdir()
    table.to_parquet(out / "results.parquet", index=False)
    samples.drop(columns=["process"]).to_parquet(out / "samples.parquet", index=False)
    meta = {"schema_version": 4}
    if processes is not None:
        meta["processes"] = processes
    (out / "run.json").write_text(json.dumps(meta))
    loaded = results.load_results(out).samples
    assert loaded["process"].tolist() == (loaded["round"] % (processes or 1)).tolist()
    rounds = loaded["round"].nunique()
    assert set(loaded["process"]) == set(range(min(processes or 1, rounds)))


def test_a_version_2_run_is_upgraded_and_compares_without_a_canary(sweep, tmp_path):
    """Runs written by dscbench 0.2 (schema 2) have no env column in results or samples and no
    canary: they read back as a plain run, and compare says it cannot tell a uniform regression
    from the machine."""
    from dscbench import compare

    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    out = tmp_path / "v2"
    out.mkdir()
    table.drop(columns=["env"]).to_parquet(out / "results.parquet", index=False)
    samples.drop(columns=["env"]).to_parquet(out / "samples.parquet", index=False)
    meta = {"schema_version": 2, "environment": {"cpu_model": "X", "machine": "x86_64"}}
    (out / "run.json").write_text(json.dumps(meta))
    loaded = results.load_results(out)
    assert list(loaded.results.columns) == results.RESULT_COLUMNS
    assert list(loaded.samples.columns) == results.SAMPLE_COLUMNS
    assert (loaded.results.env == "").all() and (loaded.samples.env == "").all()
    pd.testing.assert_frame_equal(loaded.samples, samples)
    comparison = compare.compare_sets(loaded, loaded)
    assert not comparison.canary.available
    assert comparison.canary.reason == "no machine canary in the baseline and candidate"
    # Identical runs: the rows that ran are the same, the 24-channel one failed in both.
    found = {(c.config_id.split("_")[1], c.variant): c.verdict for c in comparison.changes}
    assert found == {
        (f"c{n}-{n}", v): "failed" if n == 24 else "same"
        for n in (8, 16, 24)
        for v in ("standard", "separable")
    }


def test_one_schema_describes_the_columns_the_files_and_the_readme(sweep, tmp_path):
    """RESULT_SCHEMA is the single source of truth: the parquet files carry it (types, units,
    meanings), and the README's Columns table documents exactly its columns."""
    import re

    import pyarrow.parquet as pq

    table, samples = tables_of(sweep, {"fake": ("cpu", "fake cpu")})
    results.write_run(tmp_path, table, samples, {})
    written = pq.read_schema(tmp_path / results.RESULTS_PARQUET)
    assert written.names == results.RESULT_COLUMNS
    for name in ("latency_median_s", "macs", "shard", "bias"):
        assert written.field(name).type == results.RESULT_SCHEMA.field(name).type
    assert written.field("latency_median_s").metadata[b"unit"] == b"s"
    assert pq.read_schema(tmp_path / results.SAMPLES_PARQUET).field("round").type == "int32"
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    section = readme.split("## Columns", 1)[1].split("\n## ", 1)[0]
    documented = [
        name
        for line in section.splitlines()
        if line.startswith("| `")
        for name in re.findall(r"`([a-z_0-9]+)`", line.split(" | ")[0])
    ]
    assert sorted(documented) == sorted(results.RESULT_COLUMNS)


@pytest.mark.slow
def test_the_command_gives_pyarrow_the_system_allocator_unless_told_otherwise():
    """pyarrow's default pool keeps what it frees, so a long sweep's tables grew its peak RSS
    (benchmarks/REPORT-robust.md); `dscbench` switches to the system allocator, and a user's
    ARROW_DEFAULT_MEMORY_POOL wins."""
    import os
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['dscbench', 'show', '/nonexistent']\n"
        "from dscbench.cli import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "import pyarrow as pa; print(pa.default_memory_pool().backend_name)"
    )
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.stdout.split()[-1] == "system", run.stdout + run.stderr
    env["ARROW_DEFAULT_MEMORY_POOL"] = "jemalloc"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert run.stdout.split()[-1] == "jemalloc", run.stdout + run.stderr


def test_statuses_are_the_strings_the_files_hold():
    """Status and RunStatus are str enums: a member is equal to, hashes as, prints as and
    serializes as the string result files have always held."""
    from dscbench.status import HEALTHY

    assert [s.value for s in results.Status] == [
        "ok",
        "not_measured",
        "count_mismatch",
        "build_error",
        "runtime_error",
        "out_of_memory",
        "compile_error",
        "parity_failed",
        "skipped",
        "worker_crashed",
    ]
    ok = results.Status.OK
    assert ok == "ok" and {"ok": 1}[ok] == 1 and str(ok) == f"{ok}" == f"{ok:>3}".strip() == "ok"
    assert json.dumps({"status": ok}) == '{"status": "ok"}'
    assert pd.Series(["ok", "skipped"]).eq(ok).tolist() == [True, False]
    assert "not_measured" in HEALTHY and "build_error" not in HEALTHY
    assert results.RUN_STATUSES == (
        "running", "complete", "interrupted", "crashed", "partial", "killed",
    )  # fmt: skip
    assert results.KILLED == "killed" and ", ".join(results.RUN_STATUSES).startswith("running, ")


def test_json_safe_writes_null_for_every_missing_number():
    import math

    import numpy as np

    doc = {
        "a": math.nan,
        "b": [math.inf, -math.inf, 1.5, np.float64("nan"), np.float32(2.0)],
        "c": (np.int64(3), np.bool_(True), "x", None),
        "d": {"e": np.float64(0.25)},
    }
    safe = results.json_safe(doc)
    assert safe == {"a": None, "b": [None, None, 1.5, None, 2.0], "c": [3, True, "x", None],
                    "d": {"e": 0.25}}  # fmt: skip
    assert json.dumps(safe, allow_nan=False)
    assert type(safe["c"][0]) is int and type(safe["d"]["e"]) is float


def test_results_imports_nothing_above_it_and_workers_import_no_pandas():
    """results/ sits below compare and export (no cycle back up); the statuses a worker process
    reports come from a module that pulls in neither pandas nor pyarrow."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import dscbench.workers, dscbench.status\n"
        "print('pandas' in sys.modules, 'pyarrow' in sys.modules)\n"
        "import dscbench.results\n"
        "print(sorted(m for m in sys.modules if m.startswith(('dscbench.compare', "
        "'dscbench.export', 'dscbench.commands', 'dscbench.cli'))))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.stdout.splitlines() == ["False False", "[]"], run.stdout + run.stderr
