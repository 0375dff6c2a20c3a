"""dscbench predict: a network as conv layers, features from shapes, the candidate models and
their cross-validation, the predictor stored with its run, and the command end to end on a
fake sweep whose latencies follow a known law."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dscbench import counting, results, runner
from dscbench.cli import app
from dscbench.measure import HarnessOptions
from dscbench.predict import features, fit
from dscbench.predict.network import conv_layers, other_ops
from dscbench.spec import Case, ConvSpec, ModelSpec, RunSettings
from tests.report_data import fake_calibration
from tests.tables import tables_of

from .conftest import FakeBackend, FakeClock


def law(spec: ConvSpec, variant: str) -> float:
    """The fake machine: dense convs at 40 GFLOP/s, depthwise at 4, pointwise at 30, all
    moving bytes at 15 GB/s, plus a fixed cost per call."""
    counts = counting.closed_form(spec, variant)
    if variant == "standard":
        return counts.macs / 40e9 + counts.bytes / 15e9 + 4e-6
    n, cin, cout, k = spec.batch, spec.in_channels, spec.out_channels, spec.kernel
    out = spec.out_spatial
    dw = counting.conv_macs(n, cin, cin, k, out, groups=cin)
    pw = counting.conv_macs(n, cin, cout, 1, out)
    return dw / 4e9 + pw / 30e9 + counts.bytes / 15e9 + 6e-6


GRID = [
    ConvSpec(batch=1, in_channels=cin, out_channels=cout, spatial=(size, size), kernel=3,
             stride=stride)
    for cin in (8, 16, 32, 64) for cout in (16, 32, 64, 128) for size in (8, 16, 32)
    for stride in (1, 2)
]  # fmt: skip


@pytest.fixture(scope="module")
def fake_sweep(tmp_path_factory) -> results.ResultSet:
    """The GRID measured on a fake clock with 1% noise, calibrated at 10 GB/s, written."""
    clock = FakeClock()
    backend = FakeBackend(clock, law, noise=0.01, seed=3)
    sweep = runner.run_sweep(
        [Case(s, "fake") for s in GRID],
        RunSettings(min_time=0.002, rounds=2, seed=1),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-4, warmup=0.0),
        verify_counts=False,
    )
    calibration = [fake_calibration()]
    table, samples = tables_of(sweep, {"fake": ("cpu", "Test CPU")}, calibrations=calibration)
    meta = {"tool": "dscbench", "status": "complete", "started_at": "2026-12-01T00:00:00+00:00",
            "calibration": calibration, "settings": {"min_time": 0.002, "rounds": 2},
            "environment": {"cpu_model": "Test CPU", "cpu_count": 2, "machine": "x86_64",
                            "libraries": {"torch": "2.13.0"}}}  # fmt: skip
    directory = tmp_path_factory.mktemp("sweep") / "run"
    directory.mkdir()
    results.write_run(directory, table, samples, meta)
    return results.load_results(directory), directory


def test_mobilenet_v1_is_fourteen_layers_per_twin():
    spec = ModelSpec(batch=1, model="mobilenet-v1", input_shape=(3, 224, 224))
    std, sep = conv_layers(spec, "standard"), conv_layers(spec, "separable")
    assert [layer.kind for layer in std] == ["standard"] * 14
    assert [layer.kind for layer in sep] == ["standard"] + ["separable"] * 13
    assert std[0].label() == sep[0].label() == "3->32 @224 k3s2"
    assert [layer.label() for layer in sep[1:3]] == ["32->64 @112 k3s1", "64->128 @112 k3s2"]
    assert [layer.label() for layer in std[1:]] == [layer.label() for layer in sep[1:]]
    assert sep[-1].label() == "1024->1024 @7 k3s1"
    # 27 batch norms and 27 ReLUs, the pooling and the classifier (the flatten is a view)
    assert other_ops(spec, "separable").count == 27 * 2 + 2
    assert other_ops(spec, "standard").count == 14 * 2 + 2
    # the first batch norm: reads and writes 32 x 112 x 112 floats, and its 2 x 32 parameters
    assert other_ops(spec, "standard").traffic[0] == (2 * 32 * 112 * 112 + 2 * 32) * 4


def test_a_lone_pointwise_conv_is_named_unsupported():
    spec = ModelSpec(batch=1, model="tests.user_models:predict_net", input_shape=(16, 16, 16),
                     twin="separable")  # fmt: skip
    std = conv_layers(spec, "standard")
    assert [(x.kind, x.label()) for x in std] == [
        ("standard", "16->32 @16 k3s1"), ("standard", "32->64 @16 k3s2"),
        ("unsupported", "5 (1x1 conv alone)")]  # fmt: skip
    assert [x.kind for x in conv_layers(spec, "separable")] == ["separable", "separable",
                                                                 "unsupported"]  # fmt: skip


def test_features_are_the_closed_forms_in_logs():
    s = GRID[5]
    v = features.vector(s, "separable")
    assert len(v) == len(features.names("separable")) == 10
    c = counting.closed_form(s, "separable")
    assert v[0] == pytest.approx(math.log(c.macs)) and v[1] == pytest.approx(math.log(c.bytes))
    assert v[8] + 0 == pytest.approx(math.log(s.out_spatial[0] ** 2 * s.in_channels * 9))
    assert len(features.vector(s, "standard")) == 8


def test_cross_validation_scores_and_the_choice():
    pytest.importorskip("sklearn")
    x = features.matrix(GRID, "standard")
    y = np.log([law(s, "standard") for s in GRID])
    scores = fit.cross_validate(x, y)
    assert set(scores) == set(fit.METHODS) and all(s.n == len(GRID) for s in scores.values())
    best = fit.choose(scores)
    assert scores[best].mean_abs_log_error == min(s.mean_abs_log_error for s in scores.values())
    assert scores[best].within_15 >= 0.9  # a smooth law: easy to learn
    exact = fit.score(y, y)
    assert (exact.mean_abs_log_error, exact.within_10, exact.within_15) == (0.0, 1.0, 1.0)
    half = fit.score(np.log([1.05, 1.2]), np.log([1.0, 1.0]))
    assert (half.within_10, half.within_15) == (0.5, 0.5)
    with pytest.raises(fit.PredictError, match="3 measured layers; a predictor needs"):
        fit.check_enough(3, "fake")


def test_fit_run_predicts_an_unmeasured_shape(fake_sweep):
    pytest.importorskip("sklearn")
    from dscbench.predict.apply import Group, fit_run

    rs, _ = fake_sweep
    fits = fit_run(rs.results, Group("fake", 1, "float32"))
    assert fits["standard"].n == fits["separable"].n == len(GRID)
    unseen = ConvSpec(batch=1, in_channels=24, out_channels=48, spatial=(24, 24), kernel=3)
    for variant in ("standard", "separable"):
        (predicted,) = fits[variant].seconds([unseen])
        assert predicted == pytest.approx(law(unseen, variant), rel=0.15), variant


def run_predict(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, ["predict", *args])
    return res.exit_code, res.output


@pytest.mark.slow
def test_predict_command_end_to_end(fake_sweep, tmp_path):
    pytest.importorskip("sklearn")
    _, directory = fake_sweep
    code, out = run_predict("--model", "tests.user_models:predict_net", "--input-shape",
                            "16,16,16", "--from", str(directory), "--backend", "fake",
                            "--format", "json")  # fmt: skip
    assert code == 0, out
    doc = json.loads(out[: out.rindex("}") + 1])
    assert [x["kind"] for x in doc["layers"]["standard"]] == ["standard", "standard",
                                                              "unsupported"]  # fmt: skip
    spec = ConvSpec(batch=1, in_channels=16, out_channels=32, spatial=(16, 16), kernel=3)
    first = doc["layers"]["standard"][0]
    assert first["predicted_s"] == pytest.approx(law(spec, "standard"), rel=0.15)
    assert first["measured_s"] == pytest.approx(law(spec, "standard"), rel=0.05)  # measured
    for v in ("standard", "separable"):
        other = doc["other_ops"][v]
        # the fake calibration has no copy ladder: its DRAM copy rate (median 0.99e10) for all
        assert other["costed_as"] == "DRAM copy bandwidth (no ladder)"
        assert other["seconds"] == pytest.approx(other["bytes"] / 0.99e10)
        assert other["seconds"] == pytest.approx(
            sum(k["seconds"] for k in other["by_kind"].values())
        )
        assert {k: x["modules"] for k, x in other["by_kind"].items()} == {
            "batchnorm": 1, "relu": 2, "copy": 2}  # fmt: skip
        convs = sum(x["predicted_s"] for x in doc["layers"][v] if x["predicted_s"] is not None)
        assert doc["total"][v] == pytest.approx(convs + other["seconds"])
    assert doc["hit_rate"]["standard"]["layers"] == 2  # both dense layers were in the sweep
    assert doc["unsupported"]["standard"] == ["5 (1x1 conv alone)"]
    assert doc["total_leaves_out"]["standard"] == ["5 (1x1 conv alone): unsupported"]
    stored = json.loads((directory / "predictor.json").read_text())
    assert set(stored["groups"]["fake/t1/float32"]) == {"standard", "separable"}
    assert stored["fingerprint"]["cpu_model"] == "Test CPU"
    code, text = run_predict("--model", "tests.user_models:predict_net", "--input-shape",
                             "16,16,16", "--from", str(directory), "--backend", "fake")  # fmt: skip
    assert code == 0 and "other ops" in text and "cross-validation, standard" in text


def test_predict_refuses_another_machine_and_bad_input(fake_sweep, tmp_path):
    pytest.importorskip("sklearn")
    _, directory = fake_sweep
    other = tmp_path / "other"
    shutil.copytree(directory, other)
    meta = json.loads((other / "run.json").read_text())
    meta["environment"]["cpu_model"] = "Another CPU"
    (other / "run.json").write_text(json.dumps(meta))
    base = ["--model", "tests.user_models:predict_net", "--input-shape", "16,16,16", "--from",
            str(directory), "--backend", "fake"]  # fmt: skip
    code, out = run_predict(*base, "--against", str(other))
    assert code == 2 and "measured on another machine or stack (cpu_model 'Another CPU'" in out
    code, out = run_predict(*base[:-1], "torch-cpu")
    assert code == 2 and "0 measured layers; a predictor needs at least 12" in out
    code, out = run_predict(*base[:5], str(tmp_path / "absent"), *base[6:])
    assert code == 2 and "absent" in out and "Traceback" not in out


def test_op_cost_interpolates_each_ladder_in_log_log():
    from dscbench.predict.apply import Group, OpCost, op_cost

    cpu = Group("torch-cpu", 1, "float32")
    copies = {
        "4096": {"per_repeat": [8e10, 1e11, 9e10]},  # 90 GB/s of traffic in cache
        "1048576": {"per_repeat": [1e10]},
    }  # 10 GB/s at 1 MiB
    calibration = {"device": "cpu", "threads": 1, "copy_ladder": copies, "bandwidth": {}}
    cost = op_cost({"calibration": [calibration]}, cpu)
    assert cost.source == "copies of 2 sizes (the calibration has no module ladder), calibrated"
    assert cost.seconds(2 * 4096) == pytest.approx(8192 / 9e10)
    assert cost.seconds(2 * 1048576) == pytest.approx(2 * 1048576 / 1e10)
    # halfway in log size (64 KiB arrays): the geometric mean of the rates, 30 GB/s
    assert cost.seconds(2 * 65536) == pytest.approx(2 * 65536 / 3e10)
    assert cost.seconds(2 * 2**30) == pytest.approx(2 * 2**30 / 1e10)  # the last rate beyond
    assert cost.seconds(100) == pytest.approx(8192 / 9e10)  # below: the smallest call's time
    assert cost.seconds(8192, "batchnorm") == pytest.approx(8192 / 9e10)  # no ladder: copies
    calibration["module_ladder"] = {
        "batchnorm": {"4096": {"per_repeat": [4e8]}, "1048576": {"per_repeat": [4e9]}},
        "relu": {},
    }
    cost = op_cost({"calibration": [calibration]}, cpu)
    assert cost.source == (
        "batch norm modules timed at 2 sizes, the rest as copies, calibrated"
    )  # the empty ReLU ladder is none
    assert cost.seconds(8192, "batchnorm") == pytest.approx(8192 / 4e8)  # 20 us a call
    assert cost.seconds(2 * 65536, "batchnorm") == pytest.approx(2 * 65536 / math.sqrt(1.6e18))
    assert cost.seconds(8192, "relu") == pytest.approx(8192 / 9e10)  # an empty ladder: copies
    # a backend that may fuse them: copies, and it says so; another dtype: said
    fused = op_cost({"calibration": [calibration]}, Group("onnxruntime-cpu", 1, "float32"))
    assert fused.seconds(8192, "batchnorm") == pytest.approx(8192 / 9e10)
    assert "onnxruntime-cpu may fuse batch norms and activations" in fused.source
    half = op_cost({"calibration": [calibration]}, Group("torch-cpu", 1, "bfloat16"))
    assert "(timed in float32; these layers are bfloat16)" in half.source
    assert math.isnan(OpCost().seconds(100.0))
    assert math.isnan(op_cost({"calibration": []}, cpu).seconds(1.0))
    assert math.isnan(op_cost({"calibration": [calibration]}, Group("torch-cpu", 2, "float32"))
                      .seconds(1.0))  # fmt: skip
    # torch-cuda reads the CUDA calibration (threads 0), never the CPU's
    gpu = dict(calibration, device="cuda", threads=0, copy_ladder={"4096": {"per_repeat": [1e9]}})
    both = {"calibration": [calibration, gpu]}
    assert op_cost(both, Group("torch-cuda", 1, "float32")).seconds(8192) == pytest.approx(8.192e-6)


def test_op_cost_reads_a_stored_calibration():
    from dscbench import calibrate
    from dscbench.predict.apply import Group, op_cost

    ladder = {"4096": calibrate.Rate([2e9]), "16384": calibrate.Rate([8e9])}
    stored = calibrate.Calibration(
        "cpu", "Test CPU", 1, {"torch": "x"}, copy_ladder={"4096": calibrate.Rate([1e10])},
        module_ladder={"batchnorm": ladder, "relu": {"4096": calibrate.Rate([4e9])}},
    ).to_json()  # fmt: skip
    cost = op_cost(
        {"calibration": [json.loads(json.dumps(stored))]}, Group("torch-cpu", 1, "float32")
    )
    assert cost.source == (
        "batch norm and activation modules timed at 2 sizes, the rest as copies, calibrated"
    )
    assert cost.seconds(2 * 4096, "batchnorm") == pytest.approx(4.096e-6)  # 8192 B at 2 GB/s
    assert cost.seconds(2 * 16384, "batchnorm") == pytest.approx(4.096e-6)  # 4x the bytes, 4x rate
    assert cost.seconds(2 * 4096, "relu") == pytest.approx(2.048e-6)
    assert cost.seconds(2 * 4096, "copy") == pytest.approx(0.8192e-6)


def test_other_ops_are_costed_by_their_kind():
    from dscbench.predict.apply import Ladder, OpCost

    spec = ModelSpec(
        batch=1, model="tests.user_models:predict_net", input_shape=(16, 16, 16), twin="separable"
    )
    ops = other_ops(spec, "standard")
    # BN (32x16x16 in and out, 64 weights), two in-place ReLUs, the pool and the classifier
    assert ops.kinds == ("batchnorm", "relu", "relu", "copy", "copy")
    assert ops.traffic == (4 * (2 * 32 * 256 + 64), 4 * 2 * 32 * 256, 4 * 2 * 64 * 64,
                           4 * (64 * 64 + 64), 4 * (64 + 10 + 650))  # fmt: skip
    assert ops.counts() == {"batchnorm": 1, "relu": 2, "copy": 2}
    flat = OpCost((("copy", Ladder((), (1e10,))), ("batchnorm", Ladder((), (1e9,)))))
    seconds = ops.seconds(flat)
    assert seconds["batchnorm"] == pytest.approx(ops.traffic[0] / 1e9)
    assert seconds["relu"] == pytest.approx(sum(ops.traffic[1:3]) / 1e10)  # falls back
    assert seconds["copy"] == pytest.approx(sum(ops.traffic[3:]) / 1e10)


def test_hit_rates():
    from dscbench.predict.apply import hit_rates

    rates = hit_rates([1.05, 1.12, 2.0, math.nan], [1.0, 1.0, 1.0, 1.0])
    assert rates == {"layers": 3, "within_10": pytest.approx(1 / 3),
                     "within_15": pytest.approx(2 / 3)}  # fmt: skip
    assert pd.isna(hit_rates([], [])["within_10"])


def test_the_method_choices_are_the_fitted_methods():
    from dscbench.commands.predict import Method

    assert [m.value for m in Method] == ["auto", *fit.METHODS]
