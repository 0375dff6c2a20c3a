"""The Python API (dscbench/api.py): what the CLI does, as functions; the CLI is a shell over
them, so both build the same sweep and reach the same verdicts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import dscbench
from dscbench.cli import app
from dscbench.errors import SpecError

cli = CliRunner()
DATA = Path(__file__).parent / "data" / "compare"
TINY = dict(in_channels=[4, 8], size=8, kernel=3, stride=1, threads=1, min_time=0.02, rounds=2,
            warmup=0)  # fmt: skip
TINY_FLAGS = ["--in-channels", "4,8", "--size", "8", "--kernel", "3", "--stride", "1",
              "--threads", "1", "--min-time", "0.02", "--rounds", "2", "--warmup", "0"]  # fmt: skip


def test_import_dscbench_is_light():
    code = "import sys, dscbench; print('pandas' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["False", "False"], out.stderr


def test_sweep_from_keywords_is_the_sweep_the_flags_build():
    from dscbench.commands.run.recorder import configurations_digest

    sweep = dscbench.sweep(**TINY)
    assert (sweep.settings.min_time, sweep.settings.rounds, sweep.settings.warmup) == (0.02, 2, 0)
    cases = sweep.cases(1)
    assert [c.spec.config_id for c in cases] == [
        "n1_c4-4_8x8_k3s1_float32_inference_t1",
        "n1_c8-8_8x8_k3s1_float32_inference_t1",
    ]
    from dscbench import api

    flags = dict(zip(TINY_FLAGS[::2], TINY_FLAGS[1::2], strict=True))
    axes = {k.lstrip("-").replace("-", "_"): v for k, v in flags.items()}
    settings = {k: axes.pop(k) for k in ("min_time", "rounds", "warmup")}
    from_flags = api.build_sweep(axes, settings=settings, name=api.flag)
    assert configurations_digest(from_flags.cases(1)) == configurations_digest(cases)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"inchannels": 4}, "inchannels=: not an axis"),
        ({"preset": "quick", "spec": "x.toml"}, "give either spec= or preset=, not both"),
        ({"model": "mobilenet-v1", "preset": "full"}, "model= builds its own sweep"),
        ({"kernel": "2,x"}, "kernel="),
        ({"min_time": -1.0}, "--min-time -1"),
        ({"rounds": 2.5}, "rounds=2.5: not an integer"),
        ({"seed": -1}, "--seed -1: must be zero or positive"),
        ({"min_time": "fast"}, "min_time='fast': not a number"),
    ],
)
def test_bad_keywords_are_one_clear_error(kwargs, message):
    with pytest.raises(SpecError, match=message.replace("(", r"\(")):
        dscbench.sweep(**kwargs)


def test_load_and_compare_give_what_the_cli_prints():
    base = dscbench.load(DATA / "baseline")
    assert isinstance(base, dscbench.ResultSet) and isinstance(base.results, pd.DataFrame)
    comparison = dscbench.compare(base, DATA / "candidate")
    assert isinstance(comparison, dscbench.Comparison)
    res = cli.invoke(app, ["compare", str(DATA / "baseline"), str(DATA / "candidate"),
                           "--format", "json"])  # fmt: skip
    shown = {
        (c["config_id"], c["variant"]): c["verdict"] for c in json.loads(res.output)["changes"]
    }
    mine = {(c.config_id, c.variant): c.shown.value for c in comparison.changes}
    assert mine == shown and len(mine) == 14
    assert comparison.exit_code(False) == res.exit_code == 1
    again = dscbench.compare(DATA / "baseline", DATA / "candidate", metric="speedup")
    assert {c.variant for c in again.changes} == {"pair"}


@pytest.mark.slow
def test_run_returns_the_run_it_wrote(tmp_path):
    rs = dscbench.run(**TINY, processes=1, canary=False, output=tmp_path / "r")
    assert rs.meta["status"] == "complete" and len(rs.results) == 4
    assert set(rs.results.status) == {"ok"} and rs.results.speedup.notna().sum() == 2
    assert sorted(rs.samples["round"].unique()) == [0, 1]  # two rounds of both variants
    assert set(rs.samples.variant) == {"standard", "separable"}
    again = dscbench.load(tmp_path / "r")
    pd.testing.assert_frame_equal(again.results, rs.results)
    assert rs.meta["command"]  # run.json records how it was made, as for the CLI
    with pytest.raises(SpecError, match="kernel 2 is even"):
        dscbench.run(in_channels=4, size=8, kernel=2, processes=1, output=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_a_spec_files_settings_are_checked_like_the_flags(tmp_path):
    spec = tmp_path / "s.toml"
    spec.write_text("[run]\nseed = -1\n[[grid]]\nin_channels = 8\nsize = 8\n")
    with pytest.raises(SpecError, match="--seed -1: must be zero or positive"):
        dscbench.sweep(spec=spec)
    res = cli.invoke(app, ["run", "--spec", str(spec), "--dry-run"])
    assert res.exit_code == 2 and "--seed -1: must be zero or positive" in res.output
