"""Counts against closed forms worked by hand, fvcore, and the modules themselves."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from dscbench import counting, ops
from dscbench.spec import ConvSpec

from .conftest import conv_specs, spec


def test_standard_counts_by_hand():
    # 32 -> 64 channels, 56x56, 3x3, stride 1: 64*32*9 weights, each output pixel 32*9 MACs.
    s = spec(in_channels=32, out_channels=64, height=56, width=56)
    c = counting.closed_form(s, "standard")
    assert c.params == 18432
    assert c.macs == 64 * 56 * 56 * 32 * 9 == 57_802_752
    assert c.flops == 2 * c.macs
    # float32: input 32*56*56, weights 18432, output 64*56*56, 4 bytes each.
    assert c.bytes == 4 * (100_352 + 18_432 + 200_704)
    assert c.intensity == pytest.approx(c.flops / c.bytes)


def test_separable_counts_by_hand():
    s = spec(in_channels=32, out_channels=64, height=56, width=56)
    c = counting.closed_form(s, "separable")
    assert c.params == 32 * 9 + 32 * 64 == 2336
    assert c.macs == 32 * 56 * 56 * 9 + 64 * 56 * 56 * 32 == 7_325_696
    intermediate = 32 * 56 * 56
    assert c.bytes == 4 * (100_352 + 2336 + 2 * intermediate + 200_704)


def test_footprint_holds_the_intermediate_once():
    s = spec(in_channels=32, out_channels=64, height=56, width=56)
    assert counting.footprint_bytes(s, "standard") == counting.closed_form(s, "standard").bytes
    assert counting.footprint_bytes(s, "separable") == 4 * (100_352 + 2336 + 100_352 + 200_704)


def test_reduction_matches_textbook_ratio():
    # MACs(separable) / MACs(standard) = 1/C_out + 1/K^2 exactly when stride keeps sizes equal.
    s = spec(in_channels=128, out_channels=256, height=14, width=14, kernel=5)
    std = counting.closed_form(s, "standard")
    sep = counting.closed_form(s, "separable")
    assert sep.macs / std.macs == pytest.approx(1 / 256 + 1 / 25)
    assert sep.params / std.params == pytest.approx(1 / 256 + 1 / 25)


def test_bias_counts_parameters_not_macs():
    plain = spec(in_channels=16, out_channels=24)
    biased = spec(in_channels=16, out_channels=24, bias=True)
    assert (
        counting.closed_form(biased, "standard").params
        == counting.closed_form(plain, "standard").params + 24
    )
    assert (
        counting.closed_form(biased, "separable").params
        == counting.closed_form(plain, "separable").params + 16 + 24
    )
    assert (
        counting.closed_form(biased, "standard").macs
        == counting.closed_form(plain, "standard").macs
    )


def test_stride_and_odd_sizes_output_shape():
    s = spec(height=15, width=9, kernel=5, stride=2)
    out = ops.build(s, "standard")(ops.make_input(s))
    assert out.shape[2:] == (s.out_height, s.out_width) == (8, 5)


def test_bytes_scale_with_dtype():
    s32 = spec(dtype="float32")
    s16 = spec(dtype="bfloat16")
    s64 = spec(dtype="float64")
    b = counting.closed_form(s32, "separable").bytes
    assert counting.closed_form(s16, "separable").bytes * 2 == b
    assert counting.closed_form(s64, "separable").bytes == 2 * b


specs = conv_specs(max_channels=24, max_size=20)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=specs, variant=st.sampled_from(["standard", "separable"]))
def test_closed_form_equals_fvcore_and_module(s: ConvSpec, variant: str):
    module = ops.build(s, variant)
    x = ops.make_input(s)
    c = counting.closed_form(s, variant)
    params, macs = counting.fvcore_counts(module, x)
    assert (params, macs) == (c.params, c.macs)
    assert sum(p.numel() for p in module.parameters()) == c.params
    assert counting.cross_check(c, module, x) == ""
    out = module(x)
    assert tuple(out.shape) == (s.batch, s.out_channels, s.out_height, s.out_width)


@settings(max_examples=30, deadline=None)
@given(
    groups_and_channels=st.sampled_from([(1, 4, 8), (2, 4, 6), (4, 8, 8), (8, 8, 16), (3, 9, 6)]),
    k=st.sampled_from([1, 3, 5]),
    hw=st.integers(5, 12),
    stride=st.integers(1, 2),
)
def test_grouped_conv_formula_equals_fvcore(groups_and_channels, k, hw, stride):
    groups, cin, cout = groups_and_channels
    conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
    x = torch.randn(2, cin, hw, hw)
    out = conv(x)
    expected = counting.conv_macs(2, cin, cout, k, out.shape[2:], groups=groups)
    assert counting.fvcore_counts(conv, x) == (counting.conv_params(cin, cout, k, groups), expected)


def test_cross_check_reports_a_wrong_count():
    s = spec()
    module = ops.build(s, "standard")
    wrong = counting.Counts(params=1, macs=2, bytes=3)
    message = counting.cross_check(wrong, module, ops.make_input(s))
    assert "params: closed form 1, fvcore 576" in message
    assert "macs: closed form 2" in message


def test_variants_are_seeded_and_share_output_shape():
    s = spec(in_channels=6, out_channels=10, height=11, width=11, kernel=5, stride=2)
    a = ops.build(s, "separable", seed=3)
    b = ops.build(s, "separable", seed=3)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    x = ops.make_input(s, 1)
    assert torch.equal(x, ops.make_input(s, 1))
    assert ops.build(s, "standard")(x).shape == a(x).shape
    assert isinstance(a.depthwise, nn.Conv2d) and a.depthwise.groups == 6


def test_unknown_variant_is_rejected():
    with pytest.raises(ValueError):
        counting.closed_form(spec(), "grouped")
    with pytest.raises(ValueError):
        ops.build(spec(), "grouped")


@pytest.mark.parametrize("spatial", [(12,), (9, 7), (5, 6, 7)])
@pytest.mark.parametrize("variant", ["standard", "separable"])
def test_closed_forms_are_written_over_the_spatial_shape(spatial, variant):
    """The place for 1-D and 3-D twins: the closed forms of a spec with 1, 2 or 3 spatial
    dimensions equal fvcore's count of the matching torch convolutions (Conv1d/2d/3d)."""
    s = ConvSpec(1, 6, 10, spatial, kernel=3, stride=2, bias=True)
    conv = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[len(spatial)]
    if variant == "standard":
        layers = [conv(6, 10, 3, 2, 1, bias=True)]
    else:
        layers = [conv(6, 6, 3, 2, 1, groups=6, bias=True), conv(6, 10, 1, bias=True)]
    module = torch.nn.Sequential(*layers)
    x = torch.zeros(s.input_dims())
    params, macs = counting.fvcore_counts(module, x)
    closed = counting.closed_form(s, variant)
    assert (closed.params, closed.macs) == (params, macs)
    assert module(x).shape[2:] == s.out_spatial
    assert s.config_id.split("_")[2] == "x".join(map(str, spatial))
