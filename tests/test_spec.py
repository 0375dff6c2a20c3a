"""Spec parsing, presets, expansion and every validation error."""

from __future__ import annotations

import pytest

from dscbench.errors import SpecError
from dscbench.plan import validate_cases
from dscbench.spec import (
    Case,
    ConvSpec,
    load_preset,
    parse_axis,
    parse_size,
    parse_spec_text,
    preset_names,
    spec_problems,
)

from .conftest import spec


def test_parse_axis_lists_and_scalars():
    assert parse_axis("batch", "1, 2,8", "--batch") == [1, 2, 8]
    assert parse_axis("kernel", [3, 5], "x") == [3, 5]
    assert parse_axis("stride", 2, "x") == [2]
    assert parse_axis("size", "56,56x48", "--size") == [56, (56, 48)]
    assert parse_axis("dtype", "fp32,bf16,half,double", "--dtype") == [
        "float32",
        "bfloat16",
        "float16",
        "float64",
    ]
    assert parse_axis("threads", "1,default", "--threads") == [1, None]
    assert parse_axis("bias", "true,no", "x") == [True, False]


@pytest.mark.parametrize(
    ("axis", "raw", "message"),
    [
        ("batch", "1,x", "--batch: batch 'x' is not an integer"),
        ("batch", "1,,2", "--batch: '1,,2' is not a comma-separated list (empty item)"),
        ("size", "56x", "--size: size '' is not an integer"),
        (
            "size",
            "5x6x7x8",
            "--size: size '5x6x7x8' is not a size like 56, 56x48 (HxW) or 8x56x56 (DxHxW)",
        ),
        (
            "dtype",
            "int8",
            "--dtype: unknown dtype 'int8' (known: float32, float16, bfloat16, float64)",
        ),
        ("kernel", "3.5", "--kernel: kernel '3.5' is not an integer"),
        ("bias", "maybe", "--bias: bias 'maybe' is not true or false"),
    ],
)
def test_parse_axis_errors_name_the_value(axis, raw, message):
    with pytest.raises(SpecError) as err:
        parse_axis(axis, raw, f"--{axis}")
    assert str(err.value) == message


def test_parse_size_forms():
    assert parse_size(7) == 7  # in every dimension (--dims, 2 unless told)
    assert parse_size("12X10") == (12, 10)
    assert parse_size([4, 5]) == (4, 5)
    assert parse_size("4x5x6") == (4, 5, 6)
    with pytest.raises(SpecError):
        parse_size(True)


@pytest.mark.parametrize(
    ("overrides", "fragment"),
    [
        ({"batch": 0}, "batch 0 must be positive"),
        ({"in_channels": -1}, "in-channels -1 must be positive"),
        ({"height": 0}, "height 0 must be positive"),
        ({"stride": 0}, "stride 0 must be positive"),
        ({"threads": 0}, "threads 0 must be positive"),
        ({"kernel": 4}, "kernel 4 is even"),
        ({"kernel": 9, "height": 7, "width": 7}, "kernel 9 is larger than the 7x7 input"),
        ({"dtype": "int8"}, "unknown dtype 'int8'"),
        ({"mode": "training", "optimizer": "rmsprop"}, "unknown optimizer 'rmsprop'"),
        ({"mode": "eval"}, "unknown mode 'eval'"),
        ({"memory_format": "nhwc"}, "unknown memory format 'nhwc'"),
    ],
)
def test_spec_problems(overrides, fragment):
    problems = spec_problems(spec(**overrides))
    assert len(problems) == 1
    assert fragment in problems[0]


def test_valid_spec_has_no_problems():
    assert spec_problems(spec(kernel=7, height=7, width=9, stride=3)) == []


def test_validate_cases_lists_every_invalid_case_one_line_each():
    cases = [
        Case(spec(kernel=4), "torch-cpu"),
        Case(spec(), "torch-cpu"),
        Case(spec(batch=2), "tpu"),
        Case(spec(dtype="float16"), "torch-cpu"),
    ]
    with pytest.raises(SpecError) as err:
        validate_cases(cases)
    lines = str(err.value).splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(
        "config n1_c8-8_8x8_k4s1_float32_inference_t1 on torch-cpu: kernel 4"
    )
    assert "unknown backend 'tpu' (known: torch-cpu, torch-cuda, " in lines[1]


def test_empty_sweep_is_an_error():
    with pytest.raises(SpecError, match="the sweep is empty"):
        validate_cases([])


def test_config_id_and_label():
    s = ConvSpec(2, 32, 64, (56, 48), 5, 2, "bfloat16", "inference", 4, bias=True)
    assert s.config_id == "n2_c32-64_56x48_k5s2_bfloat16_inference_t4_bias"
    assert s.padding == 2 and (s.out_height, s.out_width) == (28, 24)
    assert "32->64" in s.label()


SPEC = """
description = "test"
[run]
min_time = 0.5
rounds = 3
[defaults]
batch = 2
kernel = [3, 5]
[[grid]]
in_channels = [8, 16]
size = 14
[[grid]]
in_channels = 8
out_channels = 32
size = "14x10"
stride = 2
kernel = 3
"""


def test_spec_file_expands_grids_with_defaults():
    sweep = parse_spec_text(SPEC, "t.toml")
    assert sweep.settings.min_time == 0.5 and sweep.settings.rounds == 3
    cases = sweep.cases(default_threads=2)
    specs = [c.spec for c in cases]
    assert len(specs) == 5
    assert {(s.in_channels, s.out_channels, s.kernel) for s in specs[:4]} == {
        (8, 8, 3),
        (8, 8, 5),
        (16, 16, 3),
        (16, 16, 5),
    }
    last = specs[4]
    assert (last.batch, last.out_channels, last.height, last.width, last.stride) == (
        2,
        32,
        14,
        10,
        2,
    )
    assert all(
        s.threads == 2 and c.backend == "torch-cpu" for s, c in zip(specs, cases, strict=True)
    )


def test_flag_override_replaces_axis_in_every_grid_and_dedups():
    sweep = parse_spec_text(SPEC, "t.toml")
    sweep.override("kernel", [3])
    sweep.override("stride", [1])
    sweep.override("out_channels", [8])
    cases = sweep.cases(default_threads=1)
    # grid 1 -> (8->8), (16->8); grid 2 -> (8->8) again, size 14x10 differs so it stays.
    assert [(c.spec.in_channels, c.spec.height, c.spec.width) for c in cases] == [
        (8, 14, 14),
        (16, 14, 14),
        (8, 14, 10),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[grid]]\nin_channels = 8\n", "t.toml [[grid]] 1: missing 'size'"),
        (
            "[[grid]]\nin_channels = 8\nsize = 8\ncolour = 1\n",
            "t.toml [[grid]] 1: unknown key 'colour'",
        ),
        ("[run]\nmin_time = 'x'\n[[grid]]\n", "t.toml [run] min_time: 'x' is not a number"),
        ("[run]\nfast = 1\n", "t.toml [run]: unknown key 'fast'"),
        ("grids = 1\n", "t.toml: unknown top-level key 'grids'"),
        ("description = 'x'\n", "t.toml: needs at least one [[grid]] table"),
        ("[[grid]\n", "t.toml: not valid TOML"),
        (
            "[[grid]]\nin_channels = 8\nsize = 8\nkernel = 'big'\n",
            "t.toml [[grid]] 1 kernel: kernel 'big'",
        ),
    ],
)
def test_spec_file_errors(text, message):
    with pytest.raises(SpecError) as err:
        parse_spec_text(text, "t.toml")
    assert str(err.value).startswith(message)


def test_presets_ship_and_are_valid():
    assert {"quick", "mobilenet-v1", "full"} <= set(preset_names())
    for name in preset_names():
        sweep = load_preset(name)
        cases = sweep.cases(default_threads=1)
        validate_cases(cases)
        assert sweep.description
    assert 8 <= len(load_preset("quick").cases(1)) <= 12


def test_mobilenet_preset_is_table_1():
    cases = load_preset("mobilenet-v1").cases(1)
    layers = [
        (c.spec.in_channels, c.spec.out_channels, c.spec.height, c.spec.stride) for c in cases
    ]
    assert layers == [
        (32, 64, 112, 1),
        (64, 128, 112, 2),
        (128, 128, 56, 1),
        (128, 256, 56, 2),
        (256, 256, 28, 1),
        (256, 512, 28, 2),
        (512, 512, 14, 1),
        (512, 1024, 14, 2),
        (1024, 1024, 7, 1),
    ]
    # Each layer's output resolution is the next layer's input resolution, as in Table 1.
    outs = [c.spec.out_height for c in cases]
    assert outs == [112, 56, 56, 28, 28, 14, 14, 7, 7]
    assert all(c.spec.kernel == 3 and c.spec.batch == 1 for c in cases)


def test_unknown_preset():
    with pytest.raises(
        SpecError,
        match="unknown preset 'nope' \\(available: full, mobilenet-v1, quartznet-5x5, quick\\)",
    ):
        load_preset("nope")


def test_a_configuration_larger_than_memory_is_refused(monkeypatch):
    from dscbench import backends

    monkeypatch.setattr(backends, "physical_memory_bytes", lambda: 2**30)
    big = spec(batch=64, in_channels=256, out_channels=256, height=112, width=112)
    with pytest.raises(SpecError) as err:
        validate_cases([Case(big, "torch-cpu")])
    assert "needs at least 2.3 GiB for its tensors; this machine has 1.0 GiB" in str(err.value)
    validate_cases([Case(spec(), "torch-cpu")])


def test_a_broken_spec_on_a_cpu_backend_reports_instead_of_crashing():
    with pytest.raises(SpecError) as err:
        validate_cases([Case(spec(dtype="int8", batch=0), "torch-cpu")])
    text = str(err.value)
    assert (
        text == "config n0_c8-8_8x8_k3s1_int8_inference_t1 on torch-cpu: batch 0 must be positive"
    )


MODEL_SPEC = """
[[grid]]
model = ["mobilenet-v1", "xception-middle"]
width_mult = [0.5, 1.0]
depth = 2
mode = ["inference", "training"]
optimizer = "adam"

[[grid]]
model = "pkg.mod:build"
input_shape = "3,32,32"
twin = "dense"
"""


def test_model_grids_in_spec_files_apply_each_knob_where_it_belongs():
    from dscbench.spec import ModelSpec

    cases = parse_spec_text(MODEL_SPEC, "m.toml").cases(default_threads=2)
    specs = [c.spec for c in cases]
    assert all(isinstance(s, ModelSpec) for s in specs)
    v1 = [s for s in specs if s.model == "mobilenet-v1"]
    xc = [s for s in specs if s.model == "xception-middle"]
    # two widths x two modes; depth does not apply to MobileNetV1
    assert sorted((s.width_mult, s.mode) for s in v1) == [
        (0.5, "inference"), (0.5, "training"), (1.0, "inference"), (1.0, "training"),
    ]  # fmt: skip
    assert {s.depth for s in v1} == {0} and {s.input_shape for s in v1} == {(3, 224, 224)}
    # the width multiplier does not apply to Xception: its two widths collapse into one case
    assert len(xc) == 2 and {(s.depth, s.width_mult, s.input_shape) for s in xc} == {
        (2, 1.0, (728, 19, 19))
    }
    assert {s.optimizer for s in specs if s.mode == "training"} == {"adam"}
    assert {s.optimizer for s in specs if s.mode == "inference"} == {""}
    user = [s for s in specs if s.model == "pkg.mod:build"]
    assert [(s.input_shape, s.twin) for s in user] == [((3, 32, 32), "dense")]
    assert user[0].config_id == "n1_pkg.mod.build_3x32x32_twin-dense_float32_inference_t2"


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ('model = "mobilenet-v1"\ninput_shape = "3,8,8"', "--input-shape applies to models"),
        ('model = "article"\nwidth_mult = 0.5', "--width-mult applies to mobilenet-v1"),
        ('model = "article"\nkernel = 5', "--kernel: single-layer options"),
        ("in_channels = 8\nsize = 8\ndepth = 3", "--depth: model options"),
        ('model = "x:y"\ninput_shape = "3,8"', "input-shape '3,8' is not C,H,W"),
        ('model = "article"\ntwin = "sideways"', "twin 'sideways': not one of separable, dense"),
    ],
)
def test_bad_model_grids_are_one_line(grid, message):
    with pytest.raises(SpecError) as info:
        parse_spec_text(f"[[grid]]\n{grid}\n", "m.toml").cases(default_threads=1)
    assert message in str(info.value)
