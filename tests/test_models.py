"""Model twins: counts against the papers, width and resolution scaling, the fvcore cross-check,
breakdowns, user models and the twin transforms."""

from __future__ import annotations

import sys

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from dscbench import counting, ops, results
from dscbench.cli import app
from dscbench.errors import ModelError
from dscbench.models import CALLER_CWD_VARIABLE, CATALOG, twins
from dscbench.spec import ModelSpec
from dscbench.workers import checks

cli = CliRunner()
QUICK = ["--input-shape", "3,8,8", "--min-time", "0.02", "--rounds", "2", "--warmup", "0",
         "--threads", "1", "--no-canary"]  # fmt: skip

FC_IN, CLASSES = 1024, 1000


def v1_by_hand() -> dict[str, dict[str, int]]:
    """MobileNetV1 1.0/224 from Table 1 of Howard et al. 2017, row by row (the last depthwise
    layer's "s2" is the table's typo: its input and output are both 7x7).

    Rows: (type, input channels, output channels, stride, input side). Output side = input side
    / stride. A 3x3 conv: out^2 * C_out * C_in * 9 MACs, C_out * C_in * 9 weights; depthwise
    3x3: out^2 * C * 9 MACs, C * 9 weights; pointwise: out^2 * C_in * C_out MACs and weights.
    Each conv has BN (2 params per channel) and no bias; the FC layer has 1024 x 1000 weights
    and 1000 biases. The standard twin (Conv MobileNet, Table 4) turns each dw + pw pair into
    one 3x3 conv from the dw's input channels to the pw's output channels, at the dw's stride.
    """
    table = [
        ("conv", 3, 32, 2, 224),
        ("dw", 32, 32, 1, 112),
        ("pw", 32, 64, 1, 112),
        ("dw", 64, 64, 2, 112),
        ("pw", 64, 128, 1, 56),
        ("dw", 128, 128, 1, 56),
        ("pw", 128, 128, 1, 56),
        ("dw", 128, 128, 2, 56),
        ("pw", 128, 256, 1, 28),
        ("dw", 256, 256, 1, 28),
        ("pw", 256, 256, 1, 28),
        ("dw", 256, 256, 2, 28),
        ("pw", 256, 512, 1, 14),
        *[("dw", 512, 512, 1, 14), ("pw", 512, 512, 1, 14)] * 5,
        ("dw", 512, 512, 2, 14),
        ("pw", 512, 1024, 1, 7),
        ("dw", 1024, 1024, 1, 7),
        ("pw", 1024, 1024, 1, 7),
    ]
    sep = {"conv1x1": [0, 0], "depthwise": [0, 0], "dense": [0, 0], "bn": 0}
    std_macs = std_params = std_bn = 0
    for kind, cin, cout, stride, side in table:
        out = side // stride
        if kind == "conv":
            macs, weights = out * out * cout * cin * 9, cout * cin * 9
            sep["dense"][0] += macs
            sep["dense"][1] += weights
            std_macs += macs
            std_params += weights
            std_bn += 2 * cout
        elif kind == "dw":
            sep["depthwise"][0] += out * out * cin * 9
            sep["depthwise"][1] += cin * 9
            dw_in, dw_stride = cin, stride
        else:
            sep["conv1x1"][0] += out * out * cin * cout
            sep["conv1x1"][1] += cin * cout
            std_macs += out * out * cout * dw_in * 9  # the pair's 3x3 conv, dw_stride applied
            std_params += cout * dw_in * 9
            std_bn += 2 * cout
            assert dw_stride in (1, 2)
        sep["bn"] += 2 * cout
    fc_macs, fc_params = FC_IN * CLASSES, FC_IN * CLASSES + CLASSES
    sep_macs = sum(v[0] for k, v in sep.items() if k != "bn") + fc_macs
    sep_params = sum(v[1] for k, v in sep.items() if k != "bn") + fc_params + sep["bn"]
    return {
        "separable": {"macs": sep_macs, "params": sep_params, "bn": sep["bn"], **{
            f"{k}_macs": v[0] for k, v in sep.items() if k != "bn"
        }, **{f"{k}_params": v[1] for k, v in sep.items() if k != "bn"}},
        "standard": {
            "macs": std_macs + fc_macs,
            "params": std_params + fc_params + std_bn,
        },
    }  # fmt: skip


def model(name: str, **fields) -> ModelSpec:
    info = CATALOG.get(name)
    shape = fields.pop("input_shape", None) or info.input_shape(fields.pop("resolution", None))
    return ModelSpec(batch=fields.pop("batch", 1), model=name, input_shape=shape, **fields)


def test_mobilenet_v1_counts_match_table_1_derivation_and_the_paper():
    hand = v1_by_hand()
    spec = model("mobilenet-v1")
    for variant in ("separable", "standard"):
        c = counting.counts_of(spec, variant)
        assert c.macs == hand[variant]["macs"], variant
        assert c.params == hand[variant]["params"], variant
    sep, std = (counting.counts_of(spec, v) for v in ("separable", "standard"))
    # Table 4: 569 million mult-adds and 4.2 million params; Conv MobileNet 4866M and 29.3M.
    assert round(sep.macs / 1e6) == 569 and round(sep.params / 1e5) / 10 == 4.2
    assert abs(std.macs / 1e6 - 4866) < 2 and round(std.params / 1e5) / 10 == 29.3


def test_mobilenet_v1_breakdown_is_table_2():
    """Table 2 shares: the paper counts conv and FC weights (no batch norm, no FC bias).
    It prints 1.19% for the first 3x3 conv's mult-adds; its four rows then sum to 99.29%. The
    layer's 10.8M MACs are 1.91% of 569M (the rows sum to 100%): a transposed digit."""
    hand = v1_by_hand()["separable"]
    records = counting.network_records(model("mobilenet-v1"), "separable")
    rows = {r["layer_type"]: r for r in counting.breakdown(records)}
    assert rows["conv1x1"]["macs"] == hand["conv1x1_macs"]
    assert rows["depthwise"]["params"] == hand["depthwise_params"]
    assert rows["norm"]["params"] == hand["bn"]
    weights = {
        k: rows[k]["params"] - (CLASSES if k == "fc" else 0)
        for k in ("conv1x1", "depthwise", "dense", "fc")
    }
    total_w = sum(weights.values())
    published = {  # (mult-adds %, params %)
        "conv1x1": (94.86, 74.59),
        "depthwise": (3.06, 1.06),
        "dense": (1.91, 0.02),
        "fc": (0.18, 24.33),
    }
    for kind, (macs_pct, params_pct) in published.items():
        assert round(100 * rows[kind]["macs_share"], 2) == macs_pct, kind
        assert round(100 * weights[kind] / total_w, 2) == params_pct, kind


@pytest.mark.parametrize(
    ("width", "resolution", "macs_m", "params_m"),
    [  # Table 6 (width multiplier) and Table 7 (resolution) of Howard et al. 2017
        (1.0, 224, 569, 4.2),
        (0.75, 224, 325, 2.6),
        (0.5, 224, 149, 1.3),
        (0.25, 224, 41, 0.5),
        (1.0, 192, 418, 4.2),
        (1.0, 160, 290, 4.2),
        (1.0, 128, 186, 4.2),
    ],
)
def test_mobilenet_v1_scales_with_width_and_resolution(width, resolution, macs_m, params_m):
    c = counting.counts_of(
        model("mobilenet-v1", width_mult=width, resolution=resolution), "separable"
    )
    assert round(c.macs / 1e6) == macs_m or int(c.macs / 1e6) == macs_m
    assert round(c.params / 1e5) / 10 == params_m


def test_mobilenet_v1_macs_scale_as_the_paper_says():
    """Section 4: width multiplier a scales cost by about a^2; resolution by (r/224)^2."""
    base = counting.counts_of(model("mobilenet-v1"), "separable").macs
    half = counting.counts_of(model("mobilenet-v1", width_mult=0.5), "separable").macs
    small = counting.counts_of(model("mobilenet-v1", resolution=112), "separable").macs
    assert half / base == pytest.approx(0.25, rel=0.08)
    assert small / base == pytest.approx(0.25, rel=0.06)  # 112 / 32 = 3.5 sides round up


def test_mobilenet_v2_matches_its_paper():
    """Sandler et al. 2018, Table 4: MobileNetV2 (1.0, 224) has 300M mult-adds and 3.4M
    params. The multiply-adds agree; the weights (without batch norm) are 3.47M, which the
    paper truncates to 3.4M and the reference TF-slim implementation reports as 3.47M."""
    spec = model("mobilenet-v2")
    c = counting.counts_of(spec, "separable")
    assert c.macs == 300_774_272
    assert round(c.macs / 1e6) == 301 and abs(c.macs / 300e6 - 1) < 0.003
    records = counting.network_records(spec, "separable")
    weights = c.params - sum(r.params for r in records if r.layer_type == "norm")
    assert weights == 3_470_760
    assert 3.4e6 <= weights < 3.5e6
    # The twin only swaps depthwise 3x3 for dense 3x3 of the same shape: one more factor C.
    std = counting.counts_of(spec, "standard")
    assert std.macs > 10 * c.macs and std.other_flops == c.other_flops


def test_xception_middle_flow_block_by_hand():
    """One middle-flow block at 19x19x728: three SeparableConvs of 728 * 9 depthwise and
    728 * 728 pointwise weights, each MAC count times 19 * 19 positions; three BNs."""
    c, hw = 728, 19 * 19
    for depth in (1, 3):
        sep = counting.counts_of(model("xception-middle", depth=depth), "separable")
        std = counting.counts_of(model("xception-middle", depth=depth), "standard")
        assert sep.macs == depth * 3 * hw * (c * 9 + c * c)
        assert sep.params == depth * 3 * (c * 9 + c * c + 2 * c)
        assert std.macs == depth * 3 * hw * c * c * 9
        # per block: 3 ReLU + 3 BN (2 each) + 1 residual add, all on 19x19x728
        assert sep.other_flops == depth * (3 + 6 + 1) * hw * c


def test_article_network_is_the_keras_example():
    """DepthwiseConv2D(3) on 28x28x3 with bias, Conv2D(16, 1) with bias, then Dense(10)."""
    spec = model("article")
    sep = counting.counts_of(spec, "separable")
    std = counting.counts_of(spec, "standard")
    pixels = 28 * 28
    assert sep.macs == pixels * 3 * 9 + pixels * 3 * 16 + pixels * 16 * 10
    assert sep.params == (3 * 9 + 3) + (3 * 16 + 16) + (pixels * 16 * 10 + 10)
    assert std.macs == pixels * 16 * 27 + pixels * 16 * 10
    assert std.params == (16 * 27 + 16) + (pixels * 16 * 10 + 10)


@pytest.mark.parametrize(
    "spec",
    [
        model("mobilenet-v1", width_mult=0.25, resolution=64),
        model("mobilenet-v2", width_mult=0.35, resolution=64),
        model("xception-middle", depth=1),
        model("article"),
        model("tests.user_models:small_cnn", input_shape=(3, 16, 16), twin="separable"),
    ],
    ids=lambda s: s.model,
)
@pytest.mark.parametrize("variant", ["separable", "standard"])
def test_closed_forms_equal_fvcore_on_every_model(spec, variant):
    module, x = ops.instance(spec, variant, seed=0)
    expected = counting.counts_of(spec, variant)
    assert counting.cross_check(expected, module, x) == ""


def test_a_count_disagreement_is_reported():
    spec = model("article")
    module, x = ops.instance(spec, "separable", seed=0)
    wrong = counting.Counts(params=1, macs=2, bytes=3)
    problem = counting.cross_check(wrong, module, x)
    assert "params: closed form 1, fvcore 125544" in problem
    assert "macs: closed form 2, fvcore 184240" in problem


def test_training_counts_the_backward_pass():
    """Every conv and FC layer costs 3x its forward MACs in a training step, except the first,
    whose input (the data) needs no gradient: 2x."""
    inference = model("mobilenet-v1", width_mult=0.25, resolution=64)
    training = model("mobilenet-v1", width_mult=0.25, resolution=64, mode="training")
    for variant in ("separable", "standard"):
        records = counting.network_records(training, variant)
        first = next(r for r in records if r.macs)
        fwd = counting.counts_of(inference, variant)
        step = counting.counts_of(training, variant)
        assert step.macs == fwd.macs and fwd.step_macs == fwd.macs
        assert step.step_macs == 3 * fwd.macs - first.macs


# ---------------------------------------------------------------------------------------------
# User models and twin transforms
# ---------------------------------------------------------------------------------------------


def user(name: str, twin: str = "separable", shape=(3, 16, 16), **fields) -> ModelSpec:
    return model(f"tests.user_models:{name}", input_shape=shape, twin=twin, **fields)


def test_a_user_model_and_its_separable_twin():
    spec = user("small_cnn")
    std = ops.build(spec, "standard")
    sep = ops.build(spec, "separable")
    convs = [m for m in sep.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.groups, c.kernel_size) for c in convs] == [
        (3, (3, 3)), (1, (1, 1)),  # 3->8 3x3 became depthwise + pointwise
        (8, (5, 5)), (1, (1, 1)),  # 8->16 5x5 stride 2 likewise
        (1, (1, 1)),  # a 1x1 conv stays
    ]  # fmt: skip
    assert convs[2].stride == (2, 2) and convs[3].bias is not None
    x = ops.make_input(spec, 1)
    assert std(x).shape == sep(x).shape == (1, 4)


def test_a_user_model_and_its_dense_twin():
    spec = user("small_separable", twin="dense")
    sep = ops.build(spec, "separable")
    std = ops.build(spec, "standard")
    assert sum(isinstance(m, nn.Conv2d) and m.groups > 1 for m in sep.modules()) == 2
    assert all(m.groups == 1 for m in std.modules() if isinstance(m, nn.Conv2d))
    dense = [m for m in std.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert [(d.in_channels, d.out_channels, d.stride, d.bias is None) for d in dense] == [
        (3, 3, (1, 1), False),
        (8, 8, (2, 2), True),
    ]


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("no_such_pkg_qq.models:build", "cannot import 'no_such_pkg_qq.models'"),
        ("tests.user_models:missing", "'tests.user_models' has no attribute 'missing'"),
        ("tests.user_models:NOT_CALLABLE", "'NOT_CALLABLE' is not callable"),
        ("tests.user_models:raises", "calling it raised RuntimeError: weights file not found"),
        ("tests.user_models:not_a_module", "returned dict, not a torch.nn.Module"),
        ("tests.user_models:only_pointwise", "has no dense KxK conv (K > 1) for --twin"),
    ],
)
def test_user_models_that_cannot_load_are_one_line(target, message):
    with pytest.raises(ModelError) as info:
        twins.user_variant(target, "separable", "separable")
    assert message in str(info.value) and "\n" not in str(info.value)


OUTPUTS = "tests.output_models"


@pytest.mark.parametrize(
    ("name", "mode", "returned"),
    [
        ("two_outputs", "inference", "a tuple of 2 (Tensor, Tensor)"),
        ("a_dict", "inference", "a dict with keys 'out', 'aux'"),
        ("nothing", "inference", "None"),
        ("aux_in_training", "training", "a tuple of 2 (Tensor, Tensor)"),
        ("aux_in_training", "inference", ""),  # one tensor in eval mode: nothing to say
    ],
)
def test_a_user_model_must_return_one_tensor(name, mode, returned):
    spec = model(f"{OUTPUTS}:{name}", input_shape=(3, 8, 8), twin="separable", mode=mode)
    expected = f"--model '{OUTPUTS}:{name}' (standard): its forward returned {returned}, not "
    assert checks.user_model_problems([spec]) == ([expected + "one tensor"] if returned else [])


def test_a_user_model_returning_a_tuple_is_one_line_and_exit_2(tmp_path):
    models = f"{OUTPUTS}:two_outputs,tests.user_models:small_cnn"
    res = cli.invoke(app, ["run", "--model", models, *QUICK, "--processes", "1",
                           "-o", str(tmp_path / "run")])  # fmt: skip
    assert res.exit_code == 2, res.output
    assert res.output.strip() == (
        f"error: --model '{OUTPUTS}:two_outputs' (standard): its forward returned a tuple of 2 "
        "(Tensor, Tensor), not one tensor"
    )
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_user_model_failing_at_run_time_fails_its_rows_and_the_sweep_goes_on(tmp_path):
    """Both models pass validation on the meta device and then fail in the worker processes'
    parity check: their rows fail, with the reason, and the third model is measured."""
    out = tmp_path / "run"
    models = f"{OUTPUTS}:tuple_off_meta,{OUTPUTS}:float32_only,tests.user_models:small_cnn"
    res = cli.invoke(app, ["run", "--model", models, *QUICK, "--processes", "2", "-o", str(out)])
    assert res.exit_code == 1, res.output  # some rows failed; the run did not crash
    rows = results.load_results(out).results
    by_model = {
        name: rows[rows.config_id.str.contains(f".{name}_", regex=False)]
        for name in ("tuple_off_meta", "float32_only", "small_cnn")
    }
    assert by_model["small_cnn"].status.tolist() == ["ok", "ok"]
    tuple_rows = by_model["tuple_off_meta"]
    assert tuple_rows.status.tolist() == ["runtime_error"] * 2
    assert set(tuple_rows.error) == {
        f"parity check: --model '{OUTPUTS}:tuple_off_meta' (standard): its forward returned a "
        "tuple of 2 (Tensor, Tensor), not one tensor"
    }
    float32_rows = by_model["float32_only"]
    assert float32_rows.status.tolist() == ["runtime_error"] * 2
    assert all(e.startswith("parity check: RuntimeError: ") for e in float32_rows.error)


def test_an_input_too_large_to_allocate_is_out_of_memory(tmp_path):
    """3 x 10^7 x 10^7 float32 is 1.2e15 bytes, more than a 47-bit address space (1.4e14):
    no machine allocates it, whatever its memory or overcommit policy."""
    out = tmp_path / "run"
    args = [a if a != "3,8,8" else "3,10000000,10000000" for a in QUICK]
    res = cli.invoke(app, ["run", "--model", "tests.user_models:small_cnn", *args,
                           "--processes", "1", "-o", str(out)])  # fmt: skip
    assert res.exit_code == 1, res.output
    rows = results.load_results(out).results
    assert rows.status.tolist() == ["out_of_memory", "out_of_memory"]
    assert "can't allocate memory: you tried to allocate 1200000000000000 bytes" in rows.error[0]


@pytest.mark.parametrize(
    ("module", "how"),
    [("cwd_models_dry", ["--dry-run"]), ("cwd_models_local", ["--processes", "1"])],
)
def test_a_user_model_imports_from_the_current_directory(tmp_path, monkeypatch, module, how):
    """The dscbench script does not put the current directory on sys.path: dscbench does, in
    this process (--dry-run, --processes 1) as in workers."""
    (tmp_path / f"{module}.py").write_text(
        "from torch import nn\n\n"
        "def build():\n    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delenv(CALLER_CWD_VARIABLE, raising=False)
    try:
        res = cli.invoke(app, ["run", "--model", f"{module}:build", *QUICK, *how, "-o", "run"])
    finally:
        sys.modules.pop(module, None)
    assert res.exit_code == 0, res.output
    if "--dry-run" in how:
        assert f"n1_{module}.build_3x8x8_twin-separable" in res.output
    else:
        assert results.load_results(tmp_path / "run").results.status.tolist() == ["ok", "ok"]


CONV_LAYER = st.fixed_dictionaries(
    {
        "out_mult": st.sampled_from([1, 2]),
        "kernel": st.sampled_from([1, 2, 3, 5, (1, 3), (3, 1)]),
        "stride": st.sampled_from([1, 2]),
        "padding": st.sampled_from([0, 1, 2]),
        "dilation": st.sampled_from([1, 2]),
        "depthwise": st.booleans(),
        "bias": st.booleans(),
    }
)


def _random_net(channels: int, layers: list[dict]) -> nn.Sequential:
    modules = []
    c = channels
    for layer in layers:
        groups = c if layer["depthwise"] else 1
        out = c * layer["out_mult"]
        modules += [
            nn.Conv2d(
                c,
                out,
                layer["kernel"],
                layer["stride"],
                layer["padding"],
                layer["dilation"],
                groups=groups,
                bias=layer["bias"],
            ),
            nn.ReLU(),
        ]
        c = out
    return nn.Sequential(*modules)


def _shapes(net: nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    """Output shape of every top-level layer, in order."""
    shapes = []
    for layer in net.children():
        x = layer(x)
        shapes.append(tuple(x.shape))
    return shapes


@settings(max_examples=60, deadline=None)
@given(
    channels=st.sampled_from([1, 2, 3, 4]),
    layers=st.lists(CONV_LAYER, min_size=1, max_size=4),
    side=st.integers(12, 20),
    twin=st.sampled_from(["separable", "dense"]),
)
def test_twin_transforms_keep_every_output_shape(channels, layers, side, twin):
    net = _random_net(channels, layers)
    derived, replaced = (twins.to_separable if twin == "separable" else twins.to_dense)(net)
    pick = twins.is_dense_kxk if twin == "separable" else twins.is_depthwise
    assert replaced == sum(isinstance(m, nn.Conv2d) and pick(m) for m in net.modules())
    x = torch.randn(1, channels, side, side)
    with torch.no_grad():
        try:
            expected = _shapes(net, x)
        except RuntimeError:  # the kernel outgrew the feature map: not a network at all
            return
        assert _shapes(derived, x) == expected
    # Nothing left to replace (a depthwise conv over one channel is also a dense one).
    left = [m for m in derived.modules() if isinstance(m, nn.Conv2d) and pick(m)]
    assert all(m.in_channels == 1 for m in left)
