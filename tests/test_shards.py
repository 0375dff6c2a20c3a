"""Shards: a stable partition of the configurations, from flags or a scheduler's environment."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from dscbench import results, shards
from dscbench.cli import app
from dscbench.errors import SpecError

cli = CliRunner()
KEYS = st.lists(st.text(min_size=1, max_size=40), min_size=0, max_size=60, unique=True)


@given(keys=KEYS, count=st.integers(1, 12))
def test_shards_partition_the_configurations(keys, count):
    parts = [shards.select(keys, str, shards.Shard(k, count)) for k in range(1, count + 1)]
    assert sorted(k for part in parts for k in part) == sorted(keys)  # complete, and ...
    assert sum(len(p) for p in parts) == len(keys)  # ... disjoint
    for part in parts:  # each keeps the sweep's order
        assert part == [k for k in keys if k in set(part)]


def test_shards_are_stable_across_machines_and_versions():
    """Sorted by SHA-256 and dealt in turn: these values must never change (other machines
    rely on them; tests/test_hostile.py pins a 12-configuration sweep too)."""
    keys = [f"n1_c{c}-{c}_56x56_k3s1_float32_inference_t2@torch-cpu" for c in (8, 16, 32, 64)]
    assert [shards.owners(keys, n)[keys[0]] for n in (1, 2, 3, 4)] == [1, 2, 1, 4]
    assert [shards.owners(keys, 2)[k] for k in keys] == [2, 1, 2, 1]


@pytest.mark.parametrize(
    ("env", "count", "expected"),
    [
        ({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "4",
          "SLURM_ARRAY_TASK_COUNT": "3"}, None, (1, 3, "slurm")),
        ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "4",
          "SLURM_ARRAY_TASK_COUNT": "3"}, None, (3, 3, "slurm")),
        ({"SLURM_ARRAY_TASK_ID": "0", "SLURM_ARRAY_TASK_MIN": "0",
          "SLURM_ARRAY_TASK_COUNT": "8"}, None, (1, 8, "slurm")),
        ({"JOB_COMPLETION_INDEX": "0"}, 4, (1, 4, "kubernetes")),
        ({"JOB_COMPLETION_INDEX": "3"}, 4, (4, 4, "kubernetes")),
    ],
)  # fmt: skip
def test_auto_reads_slurm_arrays_and_kubernetes_indexed_jobs(env, count, expected):
    shard = shards.parse("auto", env, count)
    assert (shard.index, shard.count, shard.source) == expected


@pytest.mark.parametrize(
    ("text", "env", "count", "message"),
    [
        ("auto", {}, None, "no scheduler found"),
        ("auto", {"JOB_COMPLETION_INDEX": "1"}, None, "needs --shards N"),
        ("auto", {"JOB_COMPLETION_INDEX": "4"}, 4, "gives shard 5 of 4"),
        ("auto", {"SLURM_ARRAY_TASK_ID": "1"}, None, "without SLURM_ARRAY_TASK_COUNT"),
        ("auto", {"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_MIN": "0",
                  "SLURM_ARRAY_TASK_COUNT": "2"}, None, "SLURM_ARRAY_TASK_ID='x' is not"),
        ("3/2", {}, None, "K/N needs 1 <= K <= N"),
        ("0/2", {}, None, "K/N needs 1 <= K <= N"),
        ("two", {}, None, "expected K/N (like 2/8) or auto"),
        (None, {}, 3, "--shards N goes with --shard auto"),
    ],
)  # fmt: skip
def test_bad_shards_are_one_line(text, env, count, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(").replace(")", r"\)")):
        shards.parse(text, env, count)


def _dry_run_configs(*args: str) -> set[str]:
    res = cli.invoke(app, ["run", "--in-channels", "4,8,16,32,64", "--size", "8,16", "--dry-run",
                           "--backend", "torch-cpu", *args])  # fmt: skip
    assert res.exit_code == 0, res.output
    return {line.split()[1] for line in res.output.splitlines() if "_float32_" in line}


def test_the_shards_of_a_sweep_add_up_to_the_sweep():
    whole = _dry_run_configs()
    parts = [_dry_run_configs("--shard", f"{k}/3") for k in (1, 2, 3)]
    assert set().union(*parts) == whole and sum(map(len, parts)) == len(whole)


def test_a_sharded_run_records_its_shard(tmp_path):
    out = tmp_path / "run"
    args = ["run", "--in-channels", "4,8", "--size", "8", "--kernel", "3", "--stride", "1",
            "--min-time", "0.02", "--rounds", "2", "--processes", "1", "--shard", "auto",
            "-o", str(out)]  # fmt: skip
    env = {"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "2"}
    res = cli.invoke(app, args, env=env)
    assert res.exit_code == 0, res.output
    meta = results.load_results(out).meta
    assert meta["shard"] == {
        "index": 2,
        "count": 2,
        "source": "slurm",
        "partition": shards.PARTITION,
        "sweep_configurations": 2,
        "sweep_sha256": meta["shard"]["sweep_sha256"],
    }
    assert meta["n_configurations"] == 1 and len(meta["shard"]["sweep_sha256"]) == 64
    assert meta["shard"]["sweep_sha256"] != meta["configurations_sha256"]  # the whole sweep's


SHARD_RUN = ["run", "--in-channels", "4,8,16,32", "--size", "8", "--kernel", "3", "--stride",
             "1", "--min-time", "0.02", "--rounds", "2", "--processes", "1", "--threads", "1",
             "-q"]  # fmt: skip


@pytest.fixture(scope="module")
def shard_runs(tmp_path_factory):
    """Shards 1/3, 2/3 and 3/3 of one small sweep, and shard 1/3 again at another min-time."""
    base = tmp_path_factory.mktemp("shards")
    for k in (1, 2, 3):
        res = cli.invoke(app, [*SHARD_RUN, "--shard", f"{k}/3", "-o", str(base / f"s{k}")])
        assert res.exit_code == 0, res.output
    other = ["0.03" if a == "0.02" else a for a in SHARD_RUN]
    res = cli.invoke(app, [*other, "--shard", "1/3", "-o", str(base / "other")])
    assert res.exit_code == 0, res.output
    return base


@pytest.mark.slow
def test_a_merge_of_shards_is_the_unsharded_sweep(shard_runs, tmp_path):
    out = tmp_path / "merged"
    res = cli.invoke(
        app, ["merge", *(str(shard_runs / f"s{k}") for k in (1, 2, 3)), "-o", str(out)]
    )
    assert res.exit_code == 0, res.output
    merged = results.load_results(out)
    whole = _dry_run_configs_of(SHARD_RUN)
    assert set(merged.results.config_id) == whole and len(merged.results) == 2 * len(whole)
    assert merged.meta["status"] == "complete" and len(merged.meta["merged_from"]) == 3
    assert set(merged.results.shard) == {1, 2, 3} and (merged.results.host != "").all()
    assert set(merged.samples.config_id) == whole
    assert cli.invoke(app, ["compare", str(out), str(out)]).exit_code == 0


def _dry_run_configs_of(args: list[str]) -> set[str]:
    dry = [a for a in args[1:] if a != "-q"]
    res = cli.invoke(app, ["run", *dry, "--dry-run"])
    return {line.split()[1] for line in res.output.splitlines() if "_float32_" in line}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("inputs", "flags", "message"),
    [
        (["s1", "s1"], [], "overlapping shards"),
        (["s1", "other"], [], "its settings differ"),
        (["s1", "s2"], [], "incomplete: shard(s) 3 of 3 missing"),
        (["s1"], [], "merge needs two or more shard runs"),
    ],
)
def test_merges_that_cannot_be_trusted_are_refused(shard_runs, tmp_path, inputs, flags, message):
    res = cli.invoke(app, ["merge", *(str(shard_runs / i) for i in inputs), *flags,
                           "-o", str(tmp_path / "m")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert message in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_partial_and_mixed_hardware_merges_on_request(shard_runs, tmp_path):
    import json
    import shutil

    partial = tmp_path / "partial"
    res = cli.invoke(app, ["merge", str(shard_runs / "s1"), str(shard_runs / "s2"),
                           "--allow-partial", "-o", str(partial)])  # fmt: skip
    assert res.exit_code == 0 and results.load_results(partial).meta["status"] == "partial"
    elsewhere = tmp_path / "s3-elsewhere"
    shutil.copytree(shard_runs / "s3", elsewhere)
    meta = json.loads((elsewhere / "run.json").read_text())
    meta["environment"]["cpu_model"] = "Another CPU"
    (elsewhere / "run.json").write_text(json.dumps(meta))
    inputs = [str(shard_runs / "s1"), str(shard_runs / "s2"), str(elsewhere)]
    refused = cli.invoke(app, ["merge", *inputs, "-o", str(tmp_path / "m")])
    assert refused.exit_code == 2 and "different hardware" in refused.output
    mixed = tmp_path / "mixed"
    ok = cli.invoke(app, ["merge", *inputs, "--allow-different-hardware", "-o", str(mixed)])
    assert ok.exit_code == 0 and results.load_results(mixed).meta["mixed_hardware"] is True
    judged = cli.invoke(app, ["compare", str(mixed), str(mixed)])
    assert judged.exit_code == 2 and "merges shards measured on different hardware" in (
        judged.output
    )
