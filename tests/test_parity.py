"""Output parity: the float64 reference, tolerances per dtype, wrong backends caught."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dscbench import backends, ops, parity, runner
from dscbench.export.table import results_table, summary_lines
from dscbench.spec import Case, ConvSpec, RunSettings
from dscbench.status import Status
from tests.tables import tables_of

from .conftest import FakeBackend, conv_specs, spec


def test_tolerances_are_documented_per_dtype():
    assert parity.TOLERANCES == {
        "float64": 1e-9,
        "float32": 1e-3,
        "float16": 1e-2,
        "bfloat16": 5e-2,
    }
    for dtype, tol in parity.TOLERANCES.items():
        documented = re.search(rf"{dtype} ([0-9.]+e-[0-9]+)", parity.__doc__)
        assert documented is not None and float(documented.group(1)) == tol


def test_reference_uses_the_dtype_rounded_weights_in_float64():
    s = spec(dtype="float16", in_channels=4, out_channels=4)
    ref = parity.reference_output(s, "standard", seed=5)
    assert ref.dtype == np.float64
    module, x = ops.instance(s, "standard", seed=5)
    expected = torch.nn.functional.conv2d(
        x.double(), module.weight.detach().double(), padding=s.padding, stride=s.stride
    )
    np.testing.assert_array_equal(ref, expected.numpy())


def test_check_measures_abs_and_relative_to_the_output_scale():
    ref = np.array([[4.0, -2.0], [0.0, 1.0]])
    out = ref + np.array([[0.0, 0.002], [0.001, 0.0]])
    result = parity.check(out.astype(np.float32), ref, "float32")
    assert result.max_abs_err == pytest.approx(0.002, rel=1e-4)
    assert result.max_rel_err == pytest.approx(0.002 / 4.0, rel=1e-4)
    assert result.tolerance == 1e-3 and result.passed


@pytest.mark.parametrize("dtype", list(parity.TOLERANCES))
def test_errors_just_inside_pass_and_just_outside_fail(dtype):
    ref = np.linspace(-1.0, 1.0, 50)
    tol = parity.TOLERANCES[dtype]
    inside = ref.copy()
    inside[7] += 0.9 * tol
    outside = ref.copy()
    outside[7] += 1.1 * tol
    assert parity.check(inside, ref, dtype).passed
    failed = parity.check(outside, ref, dtype)
    assert not failed.passed
    assert failed.problem.startswith("max relative error 0.0") or "e-" in failed.problem
    assert f"exceeds the {dtype} tolerance {tol:g}" in failed.problem


def test_shape_nan_and_zero_reference_cases():
    ref = np.zeros((1, 2, 3, 3))
    assert parity.check(np.zeros((1, 2, 3, 3)), ref, "float32").passed  # exact zeros
    assert not parity.check(np.full((1, 2, 3, 3), 1e-6), ref, "float32").passed
    shape = parity.check(np.zeros((1, 3, 3, 2)), ref, "float32")
    assert shape.problem == "output shape (1, 3, 3, 2) differs from the reference (1, 2, 3, 3)"
    nan = np.ones((1, 2, 3, 3))
    nan[0, 1, 2, 2] = np.nan
    result = parity.check(nan, np.ones((1, 2, 3, 3)), "float32")
    assert result.problem == "1 output value(s) are NaN or infinite"
    assert math.isinf(result.max_abs_err)


def test_torch_outputs_on_any_device_or_dtype_are_widened_exactly():
    t = torch.tensor([1.5, -2.25], dtype=torch.bfloat16)
    np.testing.assert_array_equal(parity.as_float64(t), [1.5, -2.25])


# ---------------------------------------------------------------------------------------------
# In a sweep
# ---------------------------------------------------------------------------------------------


def _wrong_padding(spec: ConvSpec, variant: str, out: np.ndarray) -> np.ndarray:
    """What a backend that forgot the padding of the separable variant would return: the right
    values in the interior, zeros on the border."""
    if variant != "separable":
        return out
    out = out.copy()
    out[..., 0, :] = 0
    return out


def test_a_wrong_backend_is_caught_not_timed_and_left_out_of_summaries(clock):
    fake = FakeBackend(clock, lambda s, v: 1e-4, corrupt=_wrong_padding)
    cases = [Case(spec(), "fake"), Case(spec(in_channels=16, out_channels=16), "fake")]
    honest = FakeBackend(clock, lambda s, v: 1e-4 if v == "standard" else 5e-5)
    sweep = runner.run_sweep(
        [*cases, Case(spec(in_channels=4, out_channels=4), "honest")],
        RunSettings(min_time=0.01, rounds=2),
        runner.local({"fake": fake, "honest": honest}),
    )
    states = {(s.case.spec.in_channels, s.case.backend): s.only for s in sweep.cases}
    for key in ((8, "fake"), (16, "fake")):
        state = states[key]
        assert state.status == Status.PARITY_FAILED
        assert state.error.startswith("separable: max relative error ")
        assert not state.series  # never timed
        assert state.parity["standard"].passed and not state.parity["separable"].passed
    assert states[(4, "honest")].status == Status.OK
    table, samples = tables_of(sweep, {"fake": ("cpu", ""), "honest": ("cpu", "")})
    assert set(samples.backend) == {"honest"}
    failed = table[table.status == "parity_failed"]
    assert len(failed) == 4 and failed.latency_median_s.isna().all()
    sep = failed[failed.variant == "separable"]
    assert (sep.parity_max_rel_err > sep.parity_tolerance).all()
    lines = summary_lines(table)
    assert lines[0].startswith("fake: separable vs standard: no configuration was measured.")
    assert "2 configuration(s) failed" in lines[0]
    assert lines[1].startswith("honest: separable vs standard over 1 configurations")
    assert "2 out of tolerance" in lines[-1]
    rendered = results_table(table)
    status_cells = list(rendered.columns[3].cells)
    assert [c.plain for c in status_cells[:2]] == ["parity_failed", "parity_failed"]
    assert all(c.style == "red" for c in status_cells[:2])


def test_parity_can_be_switched_off(clock):
    fake = FakeBackend(clock, lambda s, v: 1e-4, corrupt=_wrong_padding)
    sweep = runner.run_sweep(
        [Case(spec(), "fake")],
        RunSettings(min_time=0.01, rounds=1, parity=False),
        runner.local({"fake": fake}),
    )
    assert sweep.cases[0].only.status == Status.OK and not sweep.cases[0].only.parity


# ---------------------------------------------------------------------------------------------
# Real backends of this machine
# ---------------------------------------------------------------------------------------------


def _cpu_backends_and_dtypes():
    for name in ("torch-cpu", "onnxruntime-cpu"):
        for dtype in backends.REGISTRY[name].dtypes:
            yield name, dtype


@pytest.mark.parametrize(("name", "dtype"), list(_cpu_backends_and_dtypes()))
def test_every_cpu_backend_and_dtype_passes_parity(name, dtype):
    backend = backends.create(name)
    s = spec(in_channels=24, out_channels=40, height=12, width=10, kernel=5, dtype=dtype)
    for variant in ("standard", "separable"):
        out = backend.prepare(s, variant, seed=9).output()
        check = parity.check(out, parity.reference_output(s, variant, 9), dtype)
        assert check.passed, check.problem
        # Far inside the tolerance: the margin is what makes a real bug stand out.
        assert check.max_rel_err < parity.TOLERANCES[dtype] / 4


configs = conv_specs(max_channels=12, max_size=13)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=configs, variant=st.sampled_from(["standard", "separable"]))
def test_onnx_model_equals_the_torch_module(s, variant):
    backend = backends.create("onnxruntime-cpu")
    out = backend.prepare(s, variant, seed=0).output()
    module, x = ops.instance(s, variant, seed=0)
    with torch.inference_mode():
        expected = module(x).numpy()
    assert out.shape == expected.shape
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
