"""The backend registry and the torch-cpu backend."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from typer.testing import CliRunner

from dscbench import backends, ops
from dscbench.cli import app
from dscbench.errors import BackendUnavailable

from .conftest import spec


def test_registry_knows_torch_cpu_without_importing_it():
    info = backends.REGISTRY["torch-cpu"]
    assert (info.device, info.module) == ("cpu", "dscbench.backends.torch_cpu")
    assert "float32" in info.dtypes and "inference" in info.modes


def test_backend_problems():
    assert backends.backend_problems("torch-cpu", spec()) == []
    assert backends.backend_problems("nope", spec()) == [
        "unknown backend 'nope' (known: torch-cpu)"
    ]
    bad = spec(dtype="int8")
    assert backends.backend_problems("torch-cpu", bad) == [
        "dtype 'int8' is not supported by torch-cpu "
        "(supported: float32, float64, bfloat16, float16)"
    ]


def test_missing_package_makes_a_backend_unavailable(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a)
    )
    status = backends.availability("torch-cpu")
    assert not status.available and status.reason == "python package 'torch' is not installed"
    with pytest.raises(BackendUnavailable) as err:
        backends.create("torch-cpu")
    assert str(err.value) == (
        "backend 'torch-cpu' is not available: python package 'torch' is not installed"
    )


def test_unavailable_backend_on_the_command_line_is_one_line_exit_2(monkeypatch):
    from dscbench.backends.base import Availability

    monkeypatch.setattr(backends, "availability", lambda name: Availability(False, "no device"))
    res = CliRunner().invoke(app, ["run", "--in-channels", "4", "--size", "8", "--threads", "1"])
    assert res.exit_code == 2
    assert res.output.strip() == "error: backend 'torch-cpu' is not available: no device"


def test_torch_cpu_prepares_runnable_variants():
    backend = backends.create("torch-cpu")
    s = spec(in_channels=6, out_channels=10, height=9, width=9, kernel=5, stride=2)
    for variant in ("standard", "separable"):
        prepared = backend.prepare(s, variant, seed=3)
        out = prepared.output()
        assert tuple(out.shape) == (1, 10, 5, 5)
        reference = ops.build(s, variant, seed=3)(ops.make_input(s, 4))
        torch.testing.assert_close(out, reference)
        with prepared.context():
            assert torch.is_inference_mode_enabled()
            prepared.run()
        assert prepared.prepare_s > 0
    assert backend.versions()["torch"] == torch.__version__
    assert backend.device_name()


def test_torch_cpu_sets_threads():
    backend = backends.create("torch-cpu")
    before = torch.get_num_threads()
    try:
        backend.set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
