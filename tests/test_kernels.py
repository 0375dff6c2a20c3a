"""Kernel identity (dscbench/kernels.py): oneDNN's verbose log parsed, torch's backend choice
per conv, reference kernels flagged."""

from __future__ import annotations

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
    std = kernels.torch_conv_kernels(standard, lambda: standard(x))
    sep = kernels.torch_conv_kernels(separable, lambda: separable(x))
    assert len(std) == 1 and len(sep) == 2
    if torch.backends.mkldnn.is_available():
        # The depthwise conv is oneDNN's depthwise kernel, whatever the instruction set; the
        # dense ones are oneDNN's or torch's own im2col path (its heuristics pick by size).
        assert sep[0].startswith("Mkldnn/jit_dw:")
        assert all(k.startswith("Mkldnn/") or k == "Slow2d" for k in (std[0], sep[1]))
    # Nothing of oneDNN's log is left on standard output.
    assert kernels.torch_conv_kernels(standard, lambda: standard(x)) == std


def test_only_onednn_convs_take_an_implementation_from_the_log():
    # torch ran the depthwise conv through oneDNN and the pointwise one through its own
    # im2col path (Slow2d), as it does for small layers: one oneDNN line, for the first.
    assert kernels._pair(["Mkldnn", "Slow2d"], ["jit_dw:avx2"]) == ["Mkldnn/jit_dw:avx2", "Slow2d"]
    assert kernels._pair(["Cudnn"], []) == ["Cudnn"]
