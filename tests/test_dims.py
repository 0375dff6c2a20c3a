"""1-D and 3-D layers, dilation and the depth multiplier (issue 22): counts against closed forms,
fvcore and a brute-force count, the ONNX graphs against torch, the axes, labels and ids, and
one line for every combination that cannot run."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dscbench import counting, labels, ops
from dscbench.errors import SpecError
from dscbench.spec import ConvSpec, parse_axis, spec_from_json, spec_problems, spec_to_json
from dscbench.spec.axes import spatial_of

FUNCTIONAL = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
              3: torch.nn.functional.conv3d}  # fmt: skip


def brute_force_forward(x: np.ndarray, w: np.ndarray, stride: int, pad: int, dilation: int,
                        groups: int) -> tuple[np.ndarray, int]:  # fmt: skip
    """A convolution over any number of spatial dimensions by explicit loops, counting every
    multiply-accumulate as it is done (padding taps included, as the closed forms count them)."""
    dims = x.ndim - 2
    k = w.shape[2]
    xp = np.pad(x, [(0, 0), (0, 0), *[(pad, pad)] * dims])
    span = dilation * (k - 1) + 1
    out = [(s + 2 * pad - span) // stride + 1 for s in x.shape[2:]]
    c_out, per_group = w.shape[:2]
    y = np.zeros((x.shape[0], c_out, *out))
    macs = 0
    out_per_group = c_out // groups
    for n, co in itertools.product(range(x.shape[0]), range(c_out)):
        g = co // out_per_group
        for o in itertools.product(*map(range, out)):
            for cl in range(per_group):
                for tap in itertools.product(range(k), repeat=dims):
                    at = tuple(oi * stride + ti * dilation for oi, ti in zip(o, tap, strict=True))
                    y[(n, co, *o)] += w[(co, cl, *tap)] * xp[(n, g * per_group + cl, *at)]
                    macs += 1
    return y, macs


@pytest.mark.parametrize(
    ("spatial", "dilation", "multiplier", "stride"),
    [
        ((9,), 2, 2, 1),
        ((7, 6), 2, 1, 2),
        ((7, 6), 1, 3, 1),
        ((5, 5, 6), 2, 2, 1),
        ((5, 4, 4), 1, 1, 2),
    ],
)
def test_separable_macs_and_outputs_match_a_brute_force_conv(spatial, dilation, multiplier, stride):
    """Each conv of both variants computed by loops: the MACs the loops do equal the closed
    forms, and the loops compute what torch's Conv1d/2d/3d compute."""
    s = ConvSpec(1, 2, 3, spatial, kernel=3, stride=stride, dilation=dilation,
                 depth_multiplier=multiplier)  # fmt: skip
    assert spec_problems(s) == []
    x = ops.make_input(s, 1).double()
    total = {}
    for variant in ("standard", "separable"):
        module = ops.build(s, variant).double()
        convs = [module] if variant == "standard" else [module.depthwise, module.pointwise]
        h, macs = x, 0
        for conv in convs:
            y, n = brute_force_forward(h.numpy(), conv.weight.detach().numpy(), conv.stride[0],
                                       conv.padding[0], conv.dilation[0], conv.groups)  # fmt: skip
            expected = FUNCTIONAL[s.dims](h, conv.weight, None, conv.stride, conv.padding,
                                          conv.dilation, conv.groups)  # fmt: skip
            np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-10)
            h, macs = expected.detach(), macs + n
        assert tuple(h.shape[2:]) == s.out_spatial
        total[variant] = macs
        assert counting.closed_form(s, variant).macs == macs
    # depthwise: M x C_in x K^d per output position, pointwise M x C_in x C_out
    positions = math.prod(s.out_spatial)
    d = len(spatial)
    assert total["separable"] == positions * (multiplier * 2 * 3**d + multiplier * 2 * 3)


layer_specs = st.builds(
    lambda dims, sizes, **kw: ConvSpec(spatial=tuple(sizes[:dims]), **kw),
    dims=st.sampled_from([1, 2, 3]),
    sizes=st.lists(st.integers(5, 11), min_size=3, max_size=3),
    batch=st.integers(1, 2),
    in_channels=st.integers(1, 6),
    out_channels=st.integers(1, 6),
    kernel=st.sampled_from([1, 3, 5]),
    stride=st.integers(1, 2),
    dilation=st.integers(1, 3),
    depth_multiplier=st.integers(1, 3),
    bias=st.booleans(),
    mode=st.sampled_from(["inference", "training"]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=layer_specs, variant=st.sampled_from(["standard", "separable"]))
def test_closed_forms_equal_fvcore_and_the_modules_for_every_new_axis(s, variant):
    """Any 1-D, 2-D or 3-D layer, dilated or not, with any depth multiplier: params and MACs
    equal fvcore's and the module's own; the output shape is the spec's; the training step's
    MACs equal the layer-by-layer count of the built module."""
    if spec_problems(s):  # a dilated kernel wider than the input: refused, one line each
        assert all("kernel" in p for p in spec_problems(s))
        return
    module = ops.build(s, variant)
    x = ops.make_input(s)
    c = counting.closed_form(s, variant)
    assert counting.fvcore_counts(module, x) == (c.params, c.macs)
    assert sum(p.numel() for p in module.parameters()) == c.params
    assert tuple(module(x).shape) == (s.batch, s.out_channels, *s.out_spatial)
    records = counting.layer_counts(module, s.input_dims(), s.mode == "training")
    assert counting.model_counts(records).step_macs == c.step_macs
    assert counting.model_counts(records).macs == c.macs


def test_the_depth_multiplier_widens_the_intermediate_and_its_traffic():
    plain = ConvSpec(1, 8, 16, (10, 10), kernel=3)
    wide = ConvSpec(1, 8, 16, (10, 10), kernel=3, depth_multiplier=2)
    a, b = counting.closed_form(plain, "separable"), counting.closed_form(wide, "separable")
    assert b.params == 16 * 9 + 16 * 16 and a.params == 8 * 9 + 8 * 16
    assert b.macs == 100 * (16 * 9 + 16 * 16)
    intermediate = 100 * 16
    assert b.bytes == 4 * (8 * 100 + b.params + 2 * intermediate + 16 * 100)
    # the standard conv does not change
    assert counting.closed_form(wide, "standard") == counting.closed_form(plain, "standard")


def test_dilation_keeps_the_output_size_and_the_macs():
    """'Same' padding grows with the dilation, so the output and the MACs do not change; the
    kernel's span does (refused when it exceeds the input)."""
    s = ConvSpec(1, 4, 4, (16, 16), kernel=3, dilation=4)
    assert s.padding == 4 and s.span == 9 and s.out_spatial == (16, 16)
    base = ConvSpec(1, 4, 4, (16, 16), kernel=3)
    assert counting.closed_form(s, "separable").macs == counting.closed_form(base, "separable").macs
    wide = ConvSpec(1, 4, 4, (8, 8), kernel=3, dilation=5)
    assert spec_problems(wide) == [
        "kernel 3 at dilation 5 (spanning 11) is larger than the 8x8 input "
        "(the window would be mostly padding)"
    ]


def test_sizes_and_dims():
    assert parse_axis("size", "56,8x56x56,56x48", "--size") == [56, (8, 56, 56), (56, 48)]
    assert spatial_of(56, None, "x") == (56, 56)
    assert spatial_of(56, 1, "x") == (56,)
    assert spatial_of(56, 3, "x") == (56, 56, 56)
    assert spatial_of((8, 56, 56), None, "x") == (8, 56, 56)
    with pytest.raises(SpecError, match=r"--size: size 8x56x56 has 3 dimensions, not the 2 of"):
        spatial_of((8, 56, 56), 2, "--size")
    with pytest.raises(SpecError, match=r"--dims: dims '4': not one of 1, 2, 3"):
        parse_axis("dims", "4", "--dims")
    with pytest.raises(SpecError, match=r"--size: size '1x2x3x4' is not a size like 56"):
        parse_axis("size", "1x2x3x4", "--size")


def test_ids_labels_and_json_of_new_layers():
    one = ConvSpec(2, 64, 64, (16000,), kernel=11, dilation=2, depth_multiplier=2)
    three = ConvSpec(1, 8, 16, (8, 28, 28), kernel=3)
    assert one.config_id == "n2_c64-64_16000_k11s1d2_float32_inference_t1_dm2"
    assert three.config_id == "n1_c8-16_8x28x28_k3s1_float32_inference_t1"
    # a 2-D layer at the defaults keeps the id and JSON it had before these axes existed
    plain = ConvSpec(1, 8, 8, (8, 8), kernel=3)
    assert plain.config_id == "n1_c8-8_8x8_k3s1_float32_inference_t1"
    assert "dilation" not in spec_to_json(plain) and "depth_multiplier" not in spec_to_json(plain)
    for s in (one, three, plain):
        assert spec_from_json(spec_to_json(s)) == s
    assert spec_to_json(one)["width"] == 16000 and "height" not in spec_to_json(one)
    assert spec_to_json(three)["frames"] == 8
    assert one.label() == "n2 64->64 @L16000 k11s1d2 dm2 float32 t1"
    assert three.label() == "n1 8->16 @8x28x28 k3s1 float32 t1"
    row = dict(spec_to_json(plain), height=8, width=8, dilation=1, depth_multiplier=1)
    assert labels.shape_label(row) == "8->8 @8 k3s1"


def test_channels_last_on_a_1d_layer_is_refused():
    s = ConvSpec(1, 4, 4, (32,), kernel=3, memory_format="channels_last")
    assert spec_problems(s) == [
        "memory format channels_last applies to 2-D and 3-D inputs, not the 1-D 32"
    ]
    three = ConvSpec(1, 4, 4, (4, 8, 8), kernel=3, memory_format="channels_last")
    assert spec_problems(three) == []
    module, x = ops.to_memory_format(ops.build(three, "separable"), ops.make_input(three),
                                     "channels_last")  # fmt: skip
    assert x.is_contiguous(memory_format=torch.channels_last_3d)
    assert module.depthwise.weight.is_contiguous(memory_format=torch.channels_last_3d)


@pytest.mark.parametrize("spatial", [(20,), (9, 8), (4, 7, 7)])
@pytest.mark.parametrize("variant", ["standard", "separable"])
def test_onnx_graphs_of_new_layers_compute_what_torch_does(spatial, variant):
    ort = pytest.importorskip("onnxruntime")
    from dscbench.backends import onnx_graph

    s = ConvSpec(2, 3, 5, spatial, kernel=3, stride=2, dilation=2, depth_multiplier=2, bias=True)
    module = ops.build(s, variant)
    x = ops.make_input(s, 1)
    model = onnx_graph.build_model(s, variant, module)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {onnx_graph.INPUT: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(y, module(x).numpy(), rtol=1e-4, atol=1e-5)
    assert list(y.shape) == [2, 5, *s.out_spatial]


def test_a_run_of_1d_and_3d_layers_on_torch_and_onnxruntime(tmp_path):
    """End to end: a dilated 1-D layer with a depth multiplier and a 3-D layer in
    channels_last, on torch and ONNX Runtime: every row measured, parity within tolerance,
    and the new columns as the specs say."""
    pytest.importorskip("onnxruntime")
    from typer.testing import CliRunner

    from dscbench import results
    from dscbench.cli import app

    out = tmp_path / "run"
    args = ["run", "--in-channels", "4", "--out-channels", "8", "--size", "24,4x6x6",
            "--kernel", "3", "--stride", "1", "--dilation", "2", "--depth-multiplier", "2",
            "--backend", "torch-cpu,onnxruntime-cpu", "--min-time", "0.02", "--rounds", "2",
            "--warmup", "0", "--processes", "1", "--threads", "1", "--dims", "1,3", "-q", "-o",
            str(out)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    # 24 is a length at --dims 1 and a cube at --dims 3; 4x6x6 has 3 dimensions: refused at 1
    assert res.exit_code == 2, res.output
    assert "size 4x6x6 has 3 dimensions, not the 1 of dims 1" in res.output
    args[args.index("24,4x6x6")] = "24"
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    table = results.load_results(out).results.set_index(["config_id", "backend", "variant"])
    assert len(table) == 8 and (table.status == "ok").all()
    one = table[table.dims == 1]
    assert one.width.tolist() == [24] * 4 and one.height.isna().all() and one.frames.isna().all()
    three = table[table.dims == 3]
    assert three.frames.tolist() == [24] * 4 and three.out_frames.tolist() == [24] * 4
    assert (table.dilation == 2).all() and (table.padding == 2).all()
    assert (table.depth_multiplier == 2).all()
    assert (table.parity_max_rel_err <= table.parity_tolerance).all()
    sep = table.xs("separable", level="variant")
    assert (sep.params == 4 * 2 * 3**sep.dims + 8 * 8).all()


def test_break_even_and_plots_keep_new_kernel_shapes_apart():
    import pandas as pd

    from dscbench.analysis import kernel_shapes, shape_order

    table = pd.DataFrame({"kernel": [3, 3, 33, 3, 3, 5], "dims": [2, 3, 1, 2, 2, 2],
                          "dilation": [1, 1, 1, 2, 1, 1],
                          "depth_multiplier": [1, 1, 1, 1, 2, 1]})  # fmt: skip
    shapes = kernel_shapes(table)
    assert shapes.tolist() == ["3x3", "3x3x3", "33", "3x3 d2", "3x3 dm2", "5x5"]
    assert shape_order(table.assign(kernel_shape=shapes)) == [
        "33", "3x3", "3x3 dm2", "3x3 d2", "5x5", "3x3x3"
    ]  # fmt: skip


def test_a_preset_of_1d_layers_takes_a_3d_size_from_the_command_line():
    from dscbench import api

    sweep = api.build_sweep({"size": "4x8x8"}, preset="quartznet-5x5")
    spatials = {case.spec.spatial for case in sweep.cases(1)}
    assert spatials == {(4, 8, 8)}


@pytest.mark.slow
@pytest.mark.parametrize("spatial", [(20,), (3, 6, 6)])
@pytest.mark.parametrize("variant", ["standard", "separable"])
def test_torch_compile_runs_new_layers_as_the_reference_does(spatial, variant):
    """torch.compile (Inductor, CPU) on a dilated 1-D layer with a depth multiplier and on a 3-D
    layer: its output matches the float64 reference, and its convs are accounted for."""
    from dscbench import backends, parity

    if not backends.availability("torch-compile-cpu").available:
        pytest.skip(backends.availability("torch-compile-cpu").reason)
    s = ConvSpec(1, 4, 6, spatial, 3, dilation=2, depth_multiplier=2)
    prepared = backends.create("torch-compile-cpu").prepare(s, variant, seed=2)
    assert prepared.compile_s > 0
    check = parity.check(prepared.output(), parity.reference_output(s, variant, 2), s.dtype)
    assert check.passed, check
    assert len(prepared.kernels().kernels) == (2 if variant == "separable" else 1)
