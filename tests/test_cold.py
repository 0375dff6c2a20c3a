"""Cold-cache timing (--cache cold, dscbench/cold.py): the last-level cache as the machine
reports it, the copies that exceed it, the rotation through them, the columns that say how a
row was made cold, and the one-line refusals where a backend cannot make a row cold."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import torch

from dscbench import cold, labels
from dscbench.analysis import kernel_shapes
from dscbench.backends.torch_eager import TorchCPU
from dscbench.spec import ConvSpec, ModelSpec, parse_axis, spec_from_json, spec_to_json

MIB = 1 << 20


def fake_sysfs(root, caches: dict[int, list[tuple[int, str, str, str]]]) -> None:
    """``caches``: cpu -> its cache indexes as (level, type, size, shared_cpu_list)."""
    for cpu, indexes in caches.items():
        for i, (level, kind, size, shared) in enumerate(indexes):
            d = root / f"cpu{cpu}" / "cache" / f"index{i}"
            d.mkdir(parents=True)
            (d / "level").write_text(f"{level}\n")
            (d / "type").write_text(f"{kind}\n")
            (d / "size").write_text(f"{size}\n")
            (d / "shared_cpu_list").write_text(f"{shared}\n")


def test_cache_sizes_read_as_sysfs_writes_them():
    assert cold.parse_cache_size("307200K") == 300 * MIB
    assert cold.parse_cache_size("32M") == 32 * MIB
    assert cold.parse_cache_size("1G") == 1 << 30
    assert cold.parse_cache_size("4096") == 4096


def test_the_last_level_cache_counts_each_instance_the_process_runs_on_once(tmp_path, monkeypatch):
    # two sockets, two cores each: one 32 MiB L3 per socket; the L2s and the L1i are not it
    per_cpu = {
        cpu: [(1, "Data", "48K", str(cpu)), (1, "Instruction", "32K", str(cpu)),
              (2, "Unified", "2048K", str(cpu)),
              (3, "Unified", "32768K", "0-1" if cpu < 2 else "2-3")]
        for cpu in range(4)
    }  # fmt: skip
    fake_sysfs(tmp_path, per_cpu)
    monkeypatch.delenv(cold.LLC_ENV, raising=False)
    monkeypatch.setattr(cold.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    llc = cold.cpu_last_level_cache(tmp_path)
    assert (llc.bytes, llc.source) == (64 * MIB, "L3 x2 from sysfs")
    monkeypatch.setattr(cold.os, "sched_getaffinity", lambda _pid: {2, 3})  # one socket
    assert cold.cpu_last_level_cache(tmp_path).bytes == 32 * MIB
    monkeypatch.setenv(cold.LLC_ENV, "8M")
    assert cold.cpu_last_level_cache(tmp_path) == cold.LastLevelCache(8 * MIB, cold.LLC_ENV)
    monkeypatch.delenv(cold.LLC_ENV)
    nothing = cold.cpu_last_level_cache(tmp_path / "absent")
    assert nothing.bytes == cold.FALLBACK_LLC_BYTES and "assumed" in nothing.source


@pytest.mark.parametrize("copy_bytes", [1, 1000, 3 * MIB, 16 * MIB, 64 * MIB])
def test_the_copies_not_in_use_take_twice_the_last_level_cache(copy_bytes):
    llc = cold.LastLevelCache(16 * MIB, "test")
    n = cold.copies_for(copy_bytes, llc)
    assert n >= 2
    assert (n - 1) * copy_bytes >= cold.FACTOR * llc.bytes or n == 2
    if n > 2:  # and no more copies than that takes
        assert (n - 2) * copy_bytes < cold.FACTOR * llc.bytes


def test_rotating_calls_each_copy_in_turn_and_the_rotation_costs_little():
    seen: list[int] = []
    run = cold.rotating([lambda i=i: seen.append(i) for i in range(3)])
    for _ in range(7):
        run()
    assert seen == [0, 1, 2, 0, 1, 2, 0]
    # an iterator step: tens of nanoseconds, far below any conv call
    assert cold.rotation_cost(100, calls=2000, repeats=3) < 1e-5


def test_cold_is_a_configuration_axis_that_leaves_warm_ids_and_json_alone():
    warm = ConvSpec(1, 8, 16, (14, 14), 3)
    cold_spec = ConvSpec(1, 8, 16, (14, 14), 3, cache="cold")
    assert warm.config_id == "n1_c8-16_14x14_k3s1_float32_inference_t1"
    assert cold_spec.config_id == warm.config_id + "_cold"
    assert "cache" not in spec_to_json(warm)
    assert spec_from_json(spec_to_json(cold_spec)) == cold_spec
    model = ModelSpec(1, "mobilenet-v1", (3, 32, 32), cache="cold")
    assert model.config_id.endswith("_cold") and "cache" not in spec_to_json(
        ModelSpec(1, "mobilenet-v1", (3, 32, 32))
    )
    assert spec_from_json(spec_to_json(model)) == model
    assert parse_axis("cache", "warm,COLD", "--cache") == ["warm", "cold"]
    with pytest.raises(Exception, match="--cache: cache 'tepid': not one of warm, cold"):
        parse_axis("cache", "tepid", "--cache")
    assert labels.row_label(spec_to_json(cold_spec)).endswith("t1 cold")
    table = pd.DataFrame({"kernel": [3, 3], "dims": [2, 2], "cache": ["warm", "cold"]})
    assert kernel_shapes(table).tolist() == ["3x3", "3x3 cold"]


@pytest.mark.parametrize("variant", ["standard", "separable"])
def test_a_cold_variant_rotates_through_copies_past_the_cache(monkeypatch, variant):
    monkeypatch.setenv(cold.LLC_ENV, "1M")
    rotated: list[list] = []
    real = cold.rotating
    monkeypatch.setattr(cold, "rotating", lambda calls: rotated.append(calls) or real(calls))
    spec = ConvSpec(1, 8, 16, (14, 14), 3, cache="cold")
    backend = TorchCPU()
    warm = backend.prepare(ConvSpec(1, 8, 16, (14, 14), 3), variant, seed=3)
    p = backend.prepare(spec, variant, seed=3)
    calls = rotated[-1]  # (rotation_cost rotates empty calls first)
    module_bytes = sum(t.numel() * 4 for t in p.module.parameters())
    copy_bytes = module_bytes + 8 * 14 * 14 * 4
    copies = cold.copies_for(copy_bytes, cold.LastLevelCache(MIB, cold.LLC_ENV))
    assert p.cache["copies"] == copies and p.cache["copy_bytes"] == copy_bytes
    assert p.cache["rotated_bytes"] == copies * copy_bytes >= 2 * MIB
    assert p.cache["llc"] == {"bytes": MIB, "source": cold.LLC_ENV}
    assert p.cache["method"].startswith(f"rotate {copies} copies of weights and input")
    assert 0 <= p.cache["rotation_s"] < 1e-5
    assert warm.cache == {}
    # each copy its own storage: weights and input
    assert len(calls) == copies
    pointers = [[t.data_ptr() for t in (*c.func.parameters(), *c.args)] for c in calls]
    assert len({ptr for ptrs in pointers for ptr in ptrs}) == copies * len(pointers[0])
    # each timed call runs the next copy, round and round, and each computes the warm output
    ran = [0] * copies
    for i, c in enumerate(calls):
        c.func.register_forward_hook(lambda *_, i=i: ran.__setitem__(i, ran[i] + 1))
    with torch.inference_mode():
        for _ in range(copies + 1):
            p.run()
        outputs = [c() for c in calls]
    assert ran == [3] + [2] * (copies - 1)
    for y in outputs:
        torch.testing.assert_close(y, warm.output())


def test_backends_that_cannot_make_a_row_cold_say_so_one_line_each(monkeypatch):
    from dscbench import backends

    cold_spec = ConvSpec(1, 8, 8, (8, 8), 3, cache="cold")
    training = ConvSpec(1, 8, 8, (8, 8), 3, cache="cold", mode="training")
    warm = ConvSpec(1, 8, 8, (8, 8), 3)
    assert backends.unsupported("torch-cpu", cold_spec) == []
    assert backends.unsupported("torch-cuda", cold_spec) == []
    assert backends.unsupported("onnxruntime-cpu", warm) == []
    assert backends.unsupported("torch-cpu", training) == [
        "--cache cold with --mode training: cold caches are timed for inference only (a "
        "training step updates one set of weights)"
    ]
    colds = "(cold caches run on torch-cpu, torch-cuda)"
    assert backends.unsupported("torch-compile-cpu", cold_spec) == [
        f"--cache cold is not supported by torch-compile-cpu: each copy of the weights would "
        f"be compiled apart {colds}"
    ]
    (ort,) = backends.unsupported("onnxruntime-cpu", cold_spec)
    assert ort.startswith("--cache cold is not supported by onnxruntime-cpu: an onnxruntime")
    # copies that would not fit: 2 variants x 3 x a 4 GiB cache on an 8 GiB machine
    monkeypatch.setenv(cold.LLC_ENV, "4G")
    monkeypatch.setattr(backends, "physical_memory_bytes", lambda: 8 << 30)
    (memory,) = backends.unsupported("torch-cpu", cold_spec)
    assert memory.startswith("--cache cold needs about 24.0 GiB per worker process for its ")
    assert "this machine has 8.0 GiB (set DSCBENCH_LLC_BYTES if the cache is smaller)" in memory


def test_a_cold_row_faster_than_dram_is_flagged_and_a_warm_one_is_not():
    from dscbench.roofline import add_efficiency

    calibration = {"device": "cpu", "threads": 1, "peak_flops_per_s": {"float32": 1e11},
                   "peak_bytes_per_s": 1e10}  # fmt: skip
    # a warm row above DRAM (in cache), a cold one reading its copy at 1.5e10 and one at 1.5e9
    rows = pd.DataFrame({
        "latency_median_s": [1e-4, 1e-4, 1e-3], "step_flops": [2e6] * 3, "flops": [2e6] * 3,
        "bytes": [2e6] * 3, "device": ["cpu"] * 3, "threads": [1] * 3, "dtype": ["float32"] * 3,
        "mode": ["inference"] * 3, "warnings": [""] * 3, "cache": ["warm", "cold", "cold"],
        "cache_copy_bytes": [math.nan, 1.5e6, 1.5e6],
    })  # fmt: skip
    out = add_efficiency(rows, [calibration])
    assert out.achieved_bytes_per_s.tolist() == pytest.approx([2e10, 2e10, 2e9])
    assert out.warnings[0] == "" and out.warnings[2] == ""
    assert out.warnings[1].startswith(
        "above_dram: a cold row read its weights and input at 1.5e+10 bytes/s, above the "
    )


def test_a_run_measures_warm_and_cold_rows_and_says_how_each_was_made_cold(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from dscbench import results
    from dscbench.cli import app

    monkeypatch.setenv(cold.LLC_ENV, "2M")
    out = tmp_path / "run"
    args = ["run", "--in-channels", "8", "--out-channels", "16", "--size", "12", "--kernel", "3",
            "--stride", "1", "--cache",
            "warm,cold", "--min-time", "0.02", "--rounds", "2", "--warmup", "0", "--processes",
            "1", "--threads", "1", "-q", "-o", str(out)]  # fmt: skip
    dry = CliRunner().invoke(app, [*args[:-3], "--dry-run", "--backend", "onnxruntime-cpu"])
    assert dry.exit_code == 2 and "--cache cold is not supported by onnxruntime-cpu" in dry.output
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    table = results.load_results(out).results
    assert len(table) == 4 and (table.status == "ok").all()
    warm, cold_rows = table[table.cache == "warm"], table[table.cache == "cold"]
    assert (warm.cache_method == "").all() and warm.cache_rotated_bytes.isna().all()
    assert cold_rows.config_id.str.endswith("_cold").all()
    assert cold_rows.cache_method.str.startswith("rotate ").all()
    assert (cold_rows.cache_rotated_bytes >= 2 * 2 * MIB).all()
    copies = cold_rows.cache_rotated_bytes / cold_rows.cache_copy_bytes
    assert (copies == copies.round()).all() and (copies > 2).all()
    assert cold_rows.cache_rotation_s.between(0, 1e-5).all()
    assert (cold_rows.parity_max_rel_err <= cold_rows.parity_tolerance).all()
    assert math.isfinite(cold_rows.latency_median_s.min())


def test_a_cold_sweep_on_a_backend_that_cannot_is_refused_in_one_line(tmp_path):
    from typer.testing import CliRunner

    from dscbench.cli import app

    pytest.importorskip("onnxruntime")
    args = ["run", "--in-channels", "8", "--size", "12", "--cache", "cold", "--backend",
            "onnxruntime-cpu", "--min-time", "0.02", "--rounds", "1", "--processes", "1",
            "--threads", "1", "-q", "-o", str(tmp_path / "r")]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 2, res.output
    assert "--cache cold is not supported by onnxruntime-cpu: an onnxruntime session" in res.output
    assert "Traceback" not in res.output
    res = CliRunner().invoke(app, [*args[:7], "--measure", "instructions", "-o", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert "--cache cold with --measure instructions: a call's instructions" in res.output
