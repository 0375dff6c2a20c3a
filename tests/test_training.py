"""Training steps: FLOPs against a brute-force count, the step itself, peak memory, and
training runs end to end on the real torch-cpu backend (tiny shapes)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from dscbench import counting, memory, ops, runner
from dscbench.backends.torch_eager import TorchCPU
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, ModelSpec, RunSettings
from dscbench.training import Trainer, no_dropout
from tests.tables import tables_of

from .conftest import spec


def brute_force_conv(x, w, dy, stride: int, pad: int, groups: int):
    """Forward, input gradient and weight gradient of a conv by explicit loops, counting every
    multiply-accumulate as it is done (padding taps included, as the closed forms count them).
    Returns (y, dx, dw, counts)."""
    n_, _, h, w_ = x.shape
    c_out, per_group, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    ho, wo = (h + 2 * pad - k) // stride + 1, (w_ + 2 * pad - k) // stride + 1
    y = np.zeros((n_, c_out, ho, wo))
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    counts = {"forward": 0, "input_grad": 0, "weight_grad": 0}
    out_per_group = c_out // groups
    for n, co, oh, ow in itertools.product(range(n_), range(c_out), range(ho), range(wo)):
        g = co // out_per_group
        for cl, kh, kw in itertools.product(range(per_group), range(k), range(k)):
            ci, ih, iw = g * per_group + cl, oh * stride + kh, ow * stride + kw
            y[n, co, oh, ow] += w[co, cl, kh, kw] * xp[n, ci, ih, iw]
            counts["forward"] += 1
            dxp[n, ci, ih, iw] += w[co, cl, kh, kw] * dy[n, co, oh, ow]
            counts["input_grad"] += 1
            dw[co, cl, kh, kw] += dy[n, co, oh, ow] * xp[n, ci, ih, iw]
            counts["weight_grad"] += 1
    dx = dxp[:, :, pad : pad + h, pad : pad + w_]
    return y, dx, dw, counts


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize(("c_in", "c_out", "groups"), [(3, 3, 3), (4, 8, 4), (3, 5, 1)])
def test_training_flops_match_a_brute_force_count(c_in, c_out, groups, stride):
    """Depthwise (groups = C_in, with and without a channel multiplier) and dense: the
    closed form's forward + input-gradient + weight-gradient MACs equal the MACs the loops do,
    and the loops compute what autograd computes."""
    k, pad, side = 3, 1, 5
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, c_in, side, side))
    w = rng.standard_normal((c_out, c_in // groups, k, k))
    ho = (side + 2 * pad - k) // stride + 1
    dy = rng.standard_normal((1, c_out, ho, ho))
    y, dx, dw, counts = brute_force_conv(x, w, dy, stride, pad, groups)

    xt = torch.tensor(x, requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad, groups=groups)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw, wt.grad.numpy(), rtol=1e-12, atol=1e-12)

    fwd = counting.conv_macs(1, c_in, c_out, k, (ho, ho), groups)
    assert counts["forward"] == fwd
    assert counting.training_macs(fwd, True) == sum(counts.values())
    assert counting.training_macs(fwd, False) == counts["forward"] + counts["weight_grad"]


def test_separable_training_step_flops_by_brute_force():
    """A separable layer's training step: the depthwise conv reads the data (no input
    gradient), the pointwise conv reads the intermediate (input gradient needed)."""
    s = spec(in_channels=3, out_channels=4, height=5, width=5, kernel=3, mode="training")
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1, 3, 5, 5))
    _, _, _, dw_counts = brute_force_conv(
        x, rng.standard_normal((3, 1, 3, 3)), rng.standard_normal((1, 3, 5, 5)), 1, 1, 3
    )
    _, _, _, pw_counts = brute_force_conv(
        rng.standard_normal((1, 3, 5, 5)),
        rng.standard_normal((4, 3, 1, 1)),
        rng.standard_normal((1, 4, 5, 5)),
        1,
        0,
        1,
    )
    brute = dw_counts["forward"] + dw_counts["weight_grad"] + sum(pw_counts.values())
    assert counting.closed_form(s, "separable").step_macs == brute
    assert counting.closed_form(s, "separable").step_flops == 2 * brute
    # and the same from the layer-by-layer count of the built module
    module = ops.build(s, "separable")
    records = counting.layer_counts(module, s.input_dims(), training=True)
    assert sum(r.step_macs for r in records) == brute


def test_peak_of_allocations_is_exact():
    def allocate() -> None:
        a = torch.empty(1000, dtype=torch.float32)  # 4000 bytes
        b = torch.empty(2000, dtype=torch.float32)  # 8000 more: 12000 alive
        del a
        c = torch.empty(500, dtype=torch.float32)  # 8000 + 2000 alive
        del b, c

    assert memory.allocation_peak(allocate) == 12000
    weights = torch.empty(10, dtype=torch.float64)
    view = weights[2:]
    assert memory.resident_bytes([weights, view, None]) == 80


def test_peak_memory_of_a_separable_layer_holds_its_tensors():
    """Inference: input and weights resident, then intermediate and output allocated."""
    s = spec(in_channels=16, out_channels=32, height=28, width=28, kernel=3)
    prepared = TorchCPU().prepare(s, "separable", seed=0)
    peak = prepared.memory()
    assert peak >= counting.footprint_bytes(s, "separable")
    assert peak <= 2 * counting.footprint_bytes(s, "separable")
    assert prepared.memory() == peak  # repeatable


def test_a_training_step_learns_and_keeps_parity_at_the_initial_weights():
    s = ModelSpec(1, "article", (3, 28, 28), mode="training", optimizer="adam")
    backend = TorchCPU()
    prepared = backend.prepare(s, "separable", seed=0)
    before = prepared.output()
    memory_bytes = prepared.memory()  # takes steps, then restores the weights
    params = counting.counts_of(ModelSpec(1, "article", (3, 28, 28)), "separable").params
    assert memory_bytes > 4 * 4 * params  # float32 weights, gradients and Adam's two moments
    np.testing.assert_array_equal(prepared.output().numpy(), before.numpy())
    with prepared.context():
        prepared.run()
    assert not torch.equal(prepared.output(), before)  # the step changed the weights


def test_the_trainer_uses_cross_entropy_for_classifiers_and_mse_otherwise():
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    conv = nn.Conv2d(3, 4, 1)
    x = torch.randn(2, 3, 2, 2)
    assert Trainer(classifier, classifier, x, "sgd", 0).target.shape == (2,)
    assert Trainer(conv, conv, x, "sgd", 0).target.shape == (2, 4, 2, 2)
    with pytest.raises(ValueError, match="unknown optimizer 'lbfgs'"):
        Trainer(conv, conv, x, "lbfgs", 0)


def test_no_dropout_switches_only_dropout_off():
    net = nn.Sequential(nn.BatchNorm2d(3), nn.Dropout(0.5)).train()
    with no_dropout(net):
        assert net[0].training and not net[1].training
    assert net[1].training


def test_training_runs_end_to_end_with_memory_and_step_flops():
    cases = [
        Case(ModelSpec(2, "article", (3, 28, 28), mode="training"), "torch-cpu"),
        Case(spec(in_channels=8, height=8, width=8, mode="training", threads=1), "torch-cpu"),
    ]
    state = runner.run_sweep(
        cases,
        RunSettings(min_time=0.02, rounds=2, warmup=0.0),
        runner.local({"torch-cpu": TorchCPU()}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )

    table, _ = tables_of(state, {"torch-cpu": ("cpu", "test cpu")})
    assert (table.status == "ok").all(), table.error.tolist()
    assert (table.peak_memory_bytes > 2 * 4 * table.params).all()  # weights and gradients
    assert (table.parity_max_rel_err <= table.parity_tolerance).all()
    model_rows = table[table.model == "article"].set_index("variant")
    inference = ModelSpec(2, "article", (3, 28, 28))
    for v in ("standard", "separable"):
        fwd = counting.counts_of(inference, v)
        assert model_rows.loc[v, "macs"] == fwd.macs
        assert model_rows.loc[v, "step_flops"] > 2 * 2 * fwd.macs  # fwd + both gradients
        # weights, gradients and Adam/SGD state at least
        assert model_rows.loc[v, "peak_memory_bytes"] > 2 * 4 * fwd.params
    assert set(table.optimizer) == {"sgd"}
    assert math.isnan(model_rows.loc["standard", "speedup"])
    sep = model_rows.loc["separable"]
    assert sep.speedup_ci_low <= sep.speedup <= sep.speedup_ci_high
