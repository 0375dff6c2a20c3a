"""The backend registry, availability reasons, and each backend's prepare/run/output path.

CUDA paths run here against fakes (events, sessions); tests marked ``gpu`` run them for real
and skip without a device.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from dscbench import backends, ops, parity
from dscbench.backends import cuda, ort, torch_compile
from dscbench.backends.base import CompileFailed
from dscbench.cli import app
from dscbench.errors import BackendUnavailable, DscbenchError
from dscbench.spec import BackendOptions

from .conftest import FakeClock, spec

NAMES = [
    "torch-cpu",
    "torch-cuda",
    "torch-compile-cpu",
    "torch-compile-cuda",
    "onnxruntime-cpu",
    "onnxruntime-cuda",
    "onnxruntime-tensorrt",
]
HAS_CUDA = torch.cuda.is_available()


def python_output(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return its stripped stdout."""
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return out.stdout.strip()


def test_registry_lists_every_backend_with_its_device():
    assert list(backends.REGISTRY) == NAMES
    devices = {name: info.device for name, info in backends.REGISTRY.items()}
    assert devices == {
        "torch-cpu": "cpu",
        "torch-cuda": "cuda",
        "torch-compile-cpu": "cpu",
        "torch-compile-cuda": "cuda",
        "onnxruntime-cpu": "cpu",
        "onnxruntime-cuda": "cuda",
        "onnxruntime-tensorrt": "cuda",
    }


def test_registry_metadata_imports_no_runtime():
    code = (
        "import sys; from dscbench import backends; from dscbench.spec import Case, ConvSpec; "
        "from dscbench.plan import validate_cases; "
        "validate_cases([Case(ConvSpec(1, 8, 8, (8, 8), 3), 'onnxruntime-cpu')]); "
        "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx') if m in sys.modules))"
    )
    assert python_output(code) == "[]"


def test_spec_does_not_ask_the_backend_registry():
    """Data flows one way, spec -> plan -> backends: reading and checking a sweep imports no
    backend module (the spec <-> backends import cycle is gone)."""
    code = (
        "import sys; from dscbench import spec; spec.load_preset('quick').cases(1); "
        "print(sorted(m for m in sys.modules if m.startswith('dscbench.backends')))"
    )
    assert python_output(code) == "[]"


def test_unsupported_names_dtype_and_memory_format():
    assert backends.unsupported("torch-cpu", spec(dtype="bfloat16")) == []
    assert backends.unsupported("onnxruntime-cpu", spec(dtype="bfloat16")) == [
        "dtype 'bfloat16' is not supported by onnxruntime-cpu (supported: float32, float16)"
    ]
    assert backends.unsupported("onnxruntime-cpu", spec(memory_format="channels_last")) == [
        "memory format 'channels_last' is not supported by onnxruntime-cpu (supported: contiguous)"
    ]
    assert backends.unsupported("onnxruntime-cuda", spec(memory_format="channels_last")) == []


def test_missing_package_names_it_and_the_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "onnxruntime" else real(name, *a),
    )
    status = backends.availability("onnxruntime-cpu")
    assert not status.available
    assert status.reason == (
        "python package 'onnxruntime' is not installed; install onnxruntime and onnx: "
        "pip install 'dscbench[ort]'"
    )
    with pytest.raises(BackendUnavailable) as err:
        backends.create("onnxruntime-cpu")
    assert str(err.value) == f"backend 'onnxruntime-cpu' is not available: {status.reason}"


@pytest.mark.skipif(HAS_CUDA, reason="checks the reason given without CUDA")
def test_cuda_backends_say_why_they_are_unavailable(monkeypatch):
    for name in ("torch-cuda", "torch-compile-cuda"):
        status = backends.availability(name)
        assert not status.available
        assert status.reason == f"torch {torch.__version__} is a CPU-only build"
    monkeypatch.setattr(torch.version, "cuda", "12.8")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert backends.availability("torch-cuda").reason == (
        f"no CUDA device visible to torch {torch.__version__} (built for CUDA 12.8)"
    )
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert backends.availability("torch-cuda").reason.endswith("(CUDA_VISIBLE_DEVICES='')")


def test_onnxruntime_gpu_eps_say_why_they_are_unavailable(monkeypatch):
    import onnxruntime

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    status = backends.availability("onnxruntime-cuda")
    assert status.reason == (
        f"onnxruntime {onnxruntime.__version__} has no CUDAExecutionProvider (it has "
        "CPUExecutionProvider); install onnxruntime-gpu in place of onnxruntime: "
        "pip install 'dscbench[gpu]'"
    )
    assert (
        "has no TensorrtExecutionProvider" in backends.availability("onnxruntime-tensorrt").reason
    )
    monkeypatch.setattr(
        onnxruntime,
        "get_available_providers",
        lambda: ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
    )
    monkeypatch.setattr(ort, "_cuda_device_count", lambda: 0)
    assert backends.availability("onnxruntime-cuda").reason == (
        "no CUDA device found (the CUDA driver reports none)"
    )
    monkeypatch.setattr(ort, "_cuda_device_count", lambda: 1)
    assert backends.availability("onnxruntime-tensorrt").available


@pytest.mark.slow
def test_torch_compile_cpu_needs_a_cxx_compiler(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(torch_compile.shutil, "which", lambda name: None)
    status = backends.availability("torch-compile-cpu")
    assert not status.available
    assert status.reason.startswith("no C++ compiler found")


def test_backends_command_table_and_json():
    runner = CliRunner()
    res = runner.invoke(app, ["backends"])
    assert res.exit_code == 0, res.output
    for name in NAMES:
        assert name in res.output
    res = runner.invoke(app, ["backends", "--json"])
    rows = {row["name"]: row for row in json.loads(res.output)}
    assert list(rows) == NAMES
    cpu = rows["torch-cpu"]
    assert cpu["available"] is True and cpu["reason"] == ""
    assert cpu["versions"]["torch"] == torch.__version__
    mkldnn = torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
    assert cpu["versions"]["mkldnn"] == ("on" if mkldnn else "off")
    assert rows["onnxruntime-cpu"]["available"] is True
    assert rows["onnxruntime-cpu"]["dtypes"] == ["float32", "float16"]
    if not HAS_CUDA:
        assert rows["torch-cuda"]["available"] is False
        assert "CPU-only build" in rows["torch-cuda"]["reason"]


# ---------------------------------------------------------------------------------------------
# torch eager
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last"])
def test_torch_cpu_output_matches_the_module_in_each_memory_format(memory_format):
    backend = backends.create("torch-cpu")
    s = spec(
        in_channels=6, out_channels=10, height=9, width=9, kernel=5, stride=2,
        memory_format=memory_format,
    )  # fmt: skip
    for variant in ("standard", "separable"):
        prepared = backend.prepare(s, variant, seed=3)
        out = prepared.output()
        assert tuple(out.shape) == (1, 10, 5, 5)
        module, x = ops.instance(s, variant, seed=3)
        torch.testing.assert_close(out, module(x))
        with prepared.context():
            assert torch.is_inference_mode_enabled()
            prepared.run()
        assert prepared.prepare_s > 0
        assert np.isnan(prepared.compile_s) and np.isnan(prepared.peak_memory_bytes)
        assert prepared.execution.endswith(f"mkldnn on, {memory_format}") or (
            "mkldnn off" in prepared.execution
        )
    placed = backend.place(s, "standard", seed=3)
    channels_last = memory_format == "channels_last"
    assert placed.x.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert placed.module.weight.is_contiguous(memory_format=torch.channels_last) == channels_last
    assert placed.cpu_x.is_contiguous()  # the original input stays NCHW


def test_torch_cpu_sets_threads():
    backend = backends.create("torch-cpu")
    before = torch.get_num_threads()
    try:
        backend.set_threads(1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


class FakeEvent:
    """A CUDA event on a fake device timeline: record() stamps the fake clock."""

    def __init__(self, clock: FakeClock, log: list[str]):
        self.clock, self.log, self.t = clock, log, None

    def record(self) -> None:
        self.t = self.clock()
        self.log.append("record")

    def synchronize(self) -> None:
        self.log.append("event-sync")

    def elapsed_time(self, end: FakeEvent) -> float:
        return (end.t - self.t) * 1000.0  # milliseconds, like torch.cuda.Event


def test_cuda_event_timer_times_the_block_between_its_events():
    clock, log = FakeClock(), []
    timer = cuda.CudaEventTimer(
        event=lambda: FakeEvent(clock, log), synchronize=lambda: log.append("device-sync")
    )

    def kernel() -> None:
        log.append("kernel")
        clock.advance(0.25)

    assert timer.time_block(kernel, 3) == pytest.approx(0.75)
    assert log == ["device-sync", "record", "kernel", "kernel", "kernel", "record", "event-sync"]
    assert timer.overhead() == 0.0


# ---------------------------------------------------------------------------------------------
# torch.compile
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_torch_compile_compiles_more_shapes_than_dynamos_recompile_limit():
    """Ten shapes (Dynamo falls back to eager after 8 per code object): each must compile,
    report its compile time apart from preparation, and match the eager module."""
    backend = backends.create("torch-compile-cpu")
    torch.set_num_threads(1)
    for c in range(1, 11):
        s = spec(in_channels=c, out_channels=c + 1, height=5, width=5)
        prepared = backend.prepare(s, "standard", seed=0)
        assert prepared.compile_s > 0
        assert prepared.execution.startswith(f"torch {torch.__version__} torch.compile inductor")
        module, x = ops.instance(s, "standard", seed=0)
        torch.testing.assert_close(prepared.output(), module(x))


@pytest.mark.slow
def test_torch_compile_separable_matches_the_reference():
    backend = backends.create("torch-compile-cpu")
    s = spec(in_channels=4, out_channels=6, height=7, width=7, stride=2)
    prepared = backend.prepare(s, "separable", seed=1)
    check = parity.check(prepared.output(), parity.reference_output(s, "separable", 1), s.dtype)
    assert check.passed and check.max_rel_err < 1e-5
    # Both convs accounted for: left to an ATen kernel (and which), or generated by Inductor.
    found = prepared.kernels()
    assert len(found.kernels) == 2
    assert all(k == "Inductor/generated" or k.startswith("Inductor/extern:") for k in found.kernels)


def test_a_compile_failure_raises_compile_failed(monkeypatch):
    def broken(*args, **kwargs):
        def fn(x):
            raise RuntimeError("inductor exploded\nsecond line")

        return fn

    monkeypatch.setattr(torch_compile.torch, "compile", broken)
    backend = backends.create("torch-compile-cpu")
    with pytest.raises(CompileFailed) as err:
        backend.prepare(spec(), "standard", seed=0)
    assert str(err.value) == "torch.compile failed: RuntimeError: inductor exploded"


# ---------------------------------------------------------------------------------------------
# onnxruntime
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "counts", "existing", "expected"),
    [
        ("auto", {2}, None, "global"),
        ("auto", {1}, None, "session"),
        ("auto", {1, 2}, None, "session"),
        ("auto", {2, 4}, None, "session"),
        ("session", {2}, None, "session"),
        ("global", {1}, None, "global"),
        ("auto", {2}, 2, "global"),
        ("session", {2}, 2, "global"),
    ],
)
def test_threadpool_choice(mode, counts, existing, expected):
    assert ort.choose_threadpool(mode, counts, existing)[0] == expected


def test_threadpool_choice_explains_what_cannot_be_done():
    with pytest.raises(DscbenchError, match="needs one thread count for it, not 1, 2"):
        ort.choose_threadpool("global", {1, 2}, None)
    with pytest.raises(DscbenchError, match="already has a 2-thread global pool"):
        ort.choose_threadpool("auto", {1}, 2)
    note = ort.choose_threadpool("auto", {2, 4}, None)[1]
    assert note.startswith("onnxruntime-cpu runs thread counts 2, 4 in one process")


def test_onnx_graph_holds_the_modules_weights_bit_for_bit():
    from onnx import numpy_helper

    from dscbench.backends import onnx_graph

    s = spec(in_channels=3, out_channels=5, bias=True, dtype="float16")
    module, _ = ops.instance(s, "separable", seed=4)
    model = onnx_graph.build_model(s, "separable", module)
    weights = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    expected = {f"separable.{i}.{k}": v.numpy() for i, conv in enumerate(module) for k, v in
                conv.state_dict().items()}  # fmt: skip
    assert weights.keys() == expected.keys()
    for name, value in expected.items():
        assert weights[name].dtype == value.dtype == np.float16
        assert np.array_equal(weights[name], value)
    groups = [next(a.i for a in n.attribute if a.name == "group") for n in model.graph.node]
    assert groups == [3, 1]


def test_onnxruntime_cpu_prepares_a_session_per_variant():
    backend = backends.create("onnxruntime-cpu")
    s = spec(in_channels=4, out_channels=6, height=6, width=7, kernel=3, stride=2)
    for variant in ("standard", "separable"):
        prepared = backend.prepare(s, variant, seed=2)
        prepared.run()
        out = prepared.output()
        assert out.shape == (1, 6, 3, 4) and out.dtype == np.float32
        module, x = ops.instance(s, variant, seed=2)
        np.testing.assert_allclose(out, module(x).detach().numpy(), rtol=1e-5, atol=1e-6)
        assert prepared.execution == (
            f"onnxruntime {ort.ort.__version__} [CPUExecutionProvider], opt=all, session pool 1"
        )
        assert 0 < prepared.prepare_s < 1.0 and np.isnan(prepared.compile_s)


def test_onnxruntime_optimisation_level_is_applied():
    backend = backends.create("onnxruntime-cpu", BackendOptions(ort_opt_level="disable"))
    s = spec()
    assert backend.session_options(s).graph_optimization_level == (
        ort.ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    assert "opt=disable" in backend.prepare(s, "standard", 0).execution


class FakeSession:
    """An InferenceSession that 'fell back' to the CPU EP."""

    def __init__(self, model, options, providers):
        self.asked = providers

    def get_providers(self):
        return ["CPUExecutionProvider"]


def test_a_session_that_fell_back_to_another_ep_is_an_error(monkeypatch):
    monkeypatch.setattr(ort.ort, "InferenceSession", FakeSession)
    backend = ort.OrtCUDA(BackendOptions())
    with pytest.raises(RuntimeError) as err:
        backend.prepare(spec(), "standard", seed=0)
    assert str(err.value) == (
        "asked onnxruntime for CUDAExecutionProvider but the session runs on CPUExecutionProvider"
    )


def test_gpu_ep_options():
    cuda_ep = ort.OrtCUDA(BackendOptions())
    assert cuda_ep.providers(spec()) == [
        ("CUDAExecutionProvider", {"device_id": "0", "cudnn_conv_algo_search": "EXHAUSTIVE"}),
        "CPUExecutionProvider",
    ]
    nhwc = cuda_ep.providers(spec(memory_format="channels_last"))[0][1]
    assert nhwc["prefer_nhwc"] == "1"
    trt = ort.OrtTensorRT(BackendOptions()).providers(spec(dtype="float16"))
    assert trt[0] == ("TensorrtExecutionProvider", {"device_id": "0", "trt_fp16_enable": "True"})
    assert [p if isinstance(p, str) else p[0] for p in trt[1:]] == [
        "CUDAExecutionProvider",
        "CPUExecutionProvider",
    ]


def test_a_tensorrt_engine_build_failure_is_a_compile_failure():
    def run():
        raise RuntimeError("TensorRT EP failed to create engine from network")

    with pytest.raises(
        CompileFailed, match="TensorRT engine build failed: RuntimeError: TensorRT EP failed"
    ):
        ort.OrtTensorRT(BackendOptions()).first_call(run)


@pytest.mark.slow
def test_the_global_pool_is_used_by_a_single_thread_count_sweep_in_its_own_process():
    code = (
        "from dscbench.backends import create, ort\n"
        "from dscbench.spec import ConvSpec\n"
        "b = create('onnxruntime-cpu')\n"
        "s = ConvSpec(1, 4, 4, (6, 6), 3, threads=2)\n"
        "b.plan([s])\n"
        "p = b.prepare(s, 'separable', 0)\n"
        "p.run()\n"
        "print(ort._global_pool_threads, p.execution.rsplit(', ', 1)[1])\n"
    )
    assert python_output(code) == "2 global pool 2"


# ---------------------------------------------------------------------------------------------
# Real GPUs (skipped here)
# ---------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.parametrize("name", ["torch-cuda", "torch-compile-cuda", "onnxruntime-cuda"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_cuda_backends_agree_with_the_reference(name, dtype):
    status = backends.availability(name)
    if not status.available:
        pytest.skip(status.reason)
    backend = backends.create(name)
    s = spec(in_channels=16, out_channels=32, height=14, width=14, dtype=dtype)
    for variant in ("standard", "separable"):
        prepared = backend.prepare(s, variant, seed=0)
        check = parity.check(prepared.output(), parity.reference_output(s, variant, 0), dtype)
        assert check.passed, check.problem
        assert backend.timer().time_block(prepared.run, 10) > 0
        if name.startswith("torch"):
            assert prepared.peak_memory_bytes > 0


def test_bfloat16_on_a_gpu_without_it_is_refused_or_skipped(monkeypatch, tmp_path):
    from dscbench.backends.base import Availability
    from dscbench.backends.torch_eager import TorchCUDA
    from dscbench.commands.run.options import RunOptions
    from dscbench.commands.run.planning import Plan, setup_backends
    from dscbench.errors import SpecError
    from dscbench.measure import Timer
    from dscbench.spec import Case, Sweep
    from dscbench.workers import LocalExecutor

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(TorchCUDA, "device_name", lambda self: "Tesla V100")
    monkeypatch.setattr(TorchCUDA, "availability", classmethod(lambda cls: Availability(True)))
    monkeypatch.setattr(TorchCUDA, "timer", lambda self: Timer())
    gpu = TorchCUDA(BackendOptions())
    bf16, fp16 = spec(dtype="bfloat16"), spec(dtype="float16")
    assert gpu.plan([bf16, fp16]) == {bf16: "bfloat16 is not supported by Tesla V100"}

    cases = [Case(bf16, "torch-cuda"), Case(fp16, "torch-cuda")]

    def plan() -> Plan:
        return Plan(cases, [""], {"": [LocalExecutor({"torch-cuda": gpu})]})

    with pytest.raises(SpecError) as err:
        setup_backends(Sweep([]), RunOptions(tmp_path), plan())
    assert str(err.value) == (
        "config n1_c8-8_8x8_k3s1_bfloat16_inference_t1 on torch-cuda: "
        "bfloat16 is not supported by Tesla V100"
    )
    skipping = plan()
    setup_backends(Sweep([]), RunOptions(tmp_path, skip_unavailable=True), skipping)
    assert skipping.skips == {(cases[0], ""): "bfloat16 is not supported by Tesla V100"}
    assert skipping.devices == {"torch-cuda": ("cuda", "Tesla V100")}
