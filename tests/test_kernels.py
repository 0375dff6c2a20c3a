"""Kernel identity (dscbench/kernels.py): oneDNN's verbose log parsed, torch's backend choice
per conv, reference kernels flagged."""

from __future__ import annotations

import warnings

import pytest

from dscbench import kernels

VERBOSE = """\
onednn_verbose,v1,primitive,info,template:operation,engine,primitive,implementation,prop_kind
onednn_verbose,v1,primitive,exec,cpu,reorder,jit:blk,undef,src:f32::blocked:abcd::f0,,1x32x28x28,0.27
onednn_verbose,v1,primitive,exec,cpu,convolution,jit:avx512_core,forward_training,src:f32,,mb1,0.3
onednn_verbose,v1,primitive,exec,cpu,convolution,jit_dw:avx512_core,forward_training,src:f32,,g32,0.1
onednn_verbose,exec,cpu,convolution,ref:any,forward_inference,src_f32::blocked:abcd:f0,,mb1,1.5
some other line
"""


def test_the_verbose_log_names_each_convolution_in_order():
    assert kernels.parse_onednn_verbose(VERBOSE) == [
        "jit:avx512_core",
        "jit_dw:avx512_core",
        "ref:any",  # the oneDNN 2.x form, without version and primitive fields
    ]


@pytest.mark.parametrize(
    ("kernel", "reference"),
    [
        ("Mkldnn/jit:avx512_core", False),
        ("Mkldnn/ref:any", True),
        ("Slow2d", True),
        ("CudaDepthwise2d", False),
        ("Cudnn", False),
    ],
)
def test_reference_kernels_are_flagged(kernel, reference):
    assert kernels.is_reference(kernel) is reference


def test_describe_is_compact_and_keeps_the_order():
    assert kernels.describe(["A", "B", "B", "B", "A"]) == "A + B x3 + A"
    assert kernels.describe([]) == ""


def test_torch_names_the_kernels_of_a_standard_conv_and_its_separable_twin():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    x = torch.randn(1, 32, 28, 28)
    standard = torch.nn.Conv2d(32, 32, 3, padding=1, bias=False).eval()
    separable = torch.nn.Sequential(
        torch.nn.Conv2d(32, 32, 3, padding=1, groups=32, bias=False),
        torch.nn.Conv2d(32, 32, 1, bias=False),
    ).eval()
    std = kernels.torch_conv_kernels(standard, lambda: standard(x)).kernels
    found = kernels.torch_conv_kernels(separable, lambda: separable(x))
    sep = found.kernels
    assert len(std) == 1 and len(sep) == 2
    # A Slow2d here is torch's size heuristic choosing its native path, not a fallback.
    assert found.fallbacks == [] and found.warning() == ""
    if torch.backends.mkldnn.is_available():
        # The depthwise conv is oneDNN's depthwise kernel, whatever the instruction set; the
        # dense ones are oneDNN's or torch's own im2col path (its heuristics pick by size).
        assert sep[0].startswith("Mkldnn/jit_dw:")
        assert all(k.startswith("Mkldnn/") or k == "Slow2d" for k in (std[0], sep[1]))
    # Nothing of oneDNN's log is left on standard output.
    assert kernels.torch_conv_kernels(standard, lambda: standard(x)).kernels == std


@pytest.mark.parametrize(
    ("dtype", "mkldnn", "fallback"),
    [
        ("float32", True, False),  # oneDNN takes it at batch 16: a heuristic choice
        # oneDNN switched off, and NNPACK takes float32 only: the reference path is a fallback
        ("bfloat16", False, True),
        ("float64", False, False),  # torch has no optimised float64 CPU conv at all
    ],
)
def test_a_slow_conv_is_a_fallback_only_when_no_optimised_kernel_took_it(dtype, mkldnn, fallback):
    torch = pytest.importorskip("torch")
    conv = torch.nn.Conv2d(8, 8, 1, bias=False).to(getattr(torch, dtype)).eval()
    x = torch.randn(1, 8, 8, 8, dtype=getattr(torch, dtype))
    with _one_thread(torch), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flags() announces TF32 for Intel GPUs
        with torch.backends.mkldnn.flags(enabled=mkldnn):
            found = kernels.torch_conv_kernels(conv, lambda: conv(x))
    assert found.kernels == ["Slow2d"]  # a 1x1 conv on one image and one thread
    assert found.fallbacks == ([(1, "Slow2d", dtype)] if fallback else [])
    if fallback:
        assert found.warning() == (
            "reference_kernel: conv 1 Slow2d (bfloat16): a reference implementation ran where "
            "the library has an optimised one (it did not accept this conv here)"
        )


def _one_thread(torch):
    import contextlib

    @contextlib.contextmanager
    def scope():
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    return scope()


def test_a_onednn_reference_implementation_is_always_a_fallback(monkeypatch):
    torch = pytest.importorskip("torch")
    if not torch.backends.mkldnn.is_available():
        pytest.skip("no oneDNN in this torch")
    conv = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False).eval()
    x = torch.randn(1, 8, 8, 8)
    # oneDNN picks ref only where nothing optimised accepts a problem: fake its log
    monkeypatch.setattr(kernels, "parse_onednn_verbose", lambda text: ["ref:any"])
    found = kernels.torch_conv_kernels(conv, lambda: conv(x))
    assert found.kernels == ["Mkldnn/ref:any"]
    assert found.fallbacks == [(1, "Mkldnn/ref:any", "float32")]


def test_only_onednn_convs_take_an_implementation_from_the_log():
    # torch ran the depthwise conv through oneDNN and the pointwise one through its own
    # im2col path (Slow2d), as it does for small layers: one oneDNN line, for the first.
    assert kernels._pair(["Mkldnn", "Slow2d"], ["jit_dw:avx2"]) == ["Mkldnn/jit_dw:avx2", "Slow2d"]
    assert kernels._pair(["Cudnn"], []) == ["Cudnn"]


def test_a_run_records_each_variants_kernels_and_a_fallback_warning_on_its_row():
    from dscbench import runner
    from dscbench.measure import HarnessOptions
    from dscbench.spec import Case, RunSettings
    from tests.conftest import FakeBackend, FakeClock, spec
    from tests.tables import tables_of

    def found(s, variant):
        if variant == "standard":
            return kernels.Found(["Mkldnn/jit:avx2"])
        return kernels.Found(["Mkldnn/jit_dw:avx2", "Slow2d"], [(2, "Slow2d", "bfloat16")])

    clock = FakeClock()
    backend = FakeBackend(clock, lambda s, v: 1e-4, kernels=found)
    sweep = runner.run_sweep(
        [Case(spec(in_channels=8, out_channels=8), "fake")],
        RunSettings(min_time=0.01, rounds=2, seed=0, parity=False),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        verify_counts=False,
    )
    table, _ = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    rows = table.set_index("variant")
    assert rows.at["standard", "kernels"] == "Mkldnn/jit:avx2"
    assert rows.at["separable", "kernels"] == "Mkldnn/jit_dw:avx2 + Slow2d"
    assert rows.at["standard", "warnings"] == ""
    assert rows.at["separable", "warnings"].startswith(
        "reference_kernel: conv 2 Slow2d (bfloat16): a reference implementation ran"
    )
    # The journal's record keeps them for a resumed run.
    (record,) = sweep.records()
    assert record.warnings == {"separable": found(None, "separable").warning()}


def _node(name, op, provider="CPUExecutionProvider", ts=0):
    return {"cat": "Node", "name": f"{name}_kernel_time", "ts": ts,
            "args": {"op_name": op, "provider": provider}}  # fmt: skip


def test_onnx_runtime_nodes_name_provider_operator_and_layout_in_order():
    events = [
        {"cat": "Session", "name": "model_run", "ts": 0},
        _node("y_nchwc", "Conv", ts=20),
        _node("ReorderInput", "ReorderInput", ts=10),
        {"cat": "Node", "name": "y_nchwc_fence_before", "ts": 19, "args": {}},
        _node("ReorderOutput", "ReorderOutput", ts=30),
        _node("fused", "FusedConv", "CUDAExecutionProvider", ts=40),
    ]
    assert kernels.parse_ort_profile(events) == [
        "CPU/ReorderInput",
        "CPU/Conv:nchwc",
        "CPU/ReorderOutput",
        "CUDA/FusedConv",
    ]


def test_a_real_onnx_runtime_session_names_its_nodes():
    pytest.importorskip("onnxruntime")
    from dscbench.backends.ort import OrtCPU
    from tests.conftest import spec

    backend = OrtCPU()
    s = spec(in_channels=8, out_channels=8, height=8, width=8)
    prepared = backend.prepare(s, "separable", 0)
    found = prepared.kernels()
    convs = [k for k in found.kernels if "Conv" in k]
    assert len(convs) == 2 and all(k.startswith("CPU/") for k in found.kernels)
    assert found.fallbacks == []


def test_inductor_names_the_convs_it_left_to_aten_and_those_it_generated():
    names = [
        "Torch-Compiled Region: 0/0",
        "aten::convolution", "aten::_convolution", "aten::mkldnn_convolution", "aten::empty",
        "aten::convolution", "aten::_convolution", "aten::_nnpack_available",
        "aten::thnn_conv2d", "aten::_slow_conv2d_forward",
        "mkldnn::_convolution_pointwise",
    ]  # fmt: skip
    assert kernels.parse_compiled_profile(names, convs=4) == [
        "Inductor/extern:Mkldnn",
        "Inductor/extern:Slow2d",
        "Inductor/extern:Mkldnn",  # a conv fused with its activation by oneDNN
        "Inductor/generated",
    ]
    assert kernels.parse_compiled_profile([], convs=2) == ["Inductor/generated"] * 2


def test_gpu_kernels_are_named_per_conv_from_the_profiler_ranges():
    from types import SimpleNamespace as E

    def k(name):
        return E(name=name)

    events = [
        E(name="aten::empty", kernels=[], cpu_children=[]),
        E(
            name="dscbench.conv.0",
            kernels=[],
            cpu_children=[
                E(
                    name="aten::cudnn_convolution",
                    cpu_children=[],
                    kernels=[k("void cudnn::cnn::conv2d_grouped_direct_kernel<float, float>(int)")],
                ),
            ],
        ),
        E(
            name="dscbench.conv.1",
            kernels=[],
            cpu_children=[
                E(
                    name="aten::cudnn_convolution",
                    cpu_children=[],
                    kernels=[
                        k("void nchwToNhwcKernel<float>(int)"),
                        k("sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nhwc"),
                        k("void nchwToNhwcKernel<float>(int)"),
                    ],
                ),
            ],
        ),
    ]
    launched = kernels.launched_in_ranges(events)
    assert kernels.with_gpu_kernels(["CudaDepthwise2d", "Cudnn", "Cudnn"], launched) == [
        "CudaDepthwise2d/conv2d_grouped_direct_kernel",
        "Cudnn/nchwToNhwcKernel,sm90_xmma_fprop_implicit_gemm_f32f32_tf32f32_f32_nhwckrsc_nhwc",
        "Cudnn",  # a conv whose range launched nothing the profiler saw
    ]


@pytest.mark.gpu
def test_a_real_gpu_conv_names_its_cuda_kernels():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device (none visible to torch)")
    conv = torch.nn.Conv2d(32, 32, 3, padding=1, groups=32).cuda().eval()
    x = torch.randn(1, 32, 28, 28, device="cuda")
    found = kernels.torch_conv_kernels(conv, lambda: conv(x))
    (kernel,) = found.kernels
    assert kernel.split("/")[0] in ("Cudnn", "CudaDepthwise2d") and "/" in kernel
