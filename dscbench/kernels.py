"""Which kernel ran: what a library says it executed for each convolution of a variant, taken
once per configuration outside timing (issue 20).

The sources for torch eager:

- torch's own choice of convolution backend for each conv call
  (``torch._C._select_conv_backend``: ``Mkldnn``, ``Slow2d``, ``CudaDepthwise2d``, ``Cudnn``...),
  asked with the exact input each conv receives (forward pre-hooks on one untimed call);
- oneDNN's implementation name, from its verbose log of one untimed call
  (``onednn_verbose,v1,primitive,exec,cpu,convolution,IMPL,...``, e.g. ``jit:avx512_core``,
  ``jit_dw:avx2``, ``brg_conv_fwd:avx512_core``, ``ref:any``). The log goes to file
  descriptor 1, which is pointed at a temporary file meanwhile;
- on a GPU, the kernels each conv launched, from one more call under torch's profiler with a
  range around each conv (``Cudnn/implicit_convolve_sgemm``).

torch.compile (``compiled_conv_kernels``) and ONNX Runtime (``parse_ort_profile``) have their
own sources: the ATen ops a compiled call dispatched to, and a profiled session's nodes.

A kernel is ``BACKEND`` or ``BACKEND/IMPL`` (``Mkldnn/jit_dw:avx512_core``); a variant's
kernels are listed in call order, joined by `` + ``. A reference implementation where an
optimised one exists (``ref``, ``Slow2d`` and the like) is what ``is_reference`` flags.

Not every reference kernel is a fallback. torch picks its native ``Slow2d`` path on purpose for
small single-image float32 convs and for 1x1 convs on one thread (its ``use_mkldnn`` heuristic:
"for some case, native is faster"; measured here 1.4-3.2x faster than oneDNN for such shapes).
A ``Slow*`` choice is a fallback (``Found.fallbacks``, the row's ``reference_kernel`` warning)
only when torch still picks it for the same conv at batch 16, where the heuristic prefers
oneDNN (or NNPACK): no optimised kernel can take it (a bfloat16 or float16 conv on an
instruction set without them, oneDNN switched off). float64 has no optimised CPU kernel in
torch, so its ``Slow2d`` is no fallback. oneDNN's own ``ref`` implementations are always
fallbacks: its dispatcher tries them last.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# oneDNN's verbose line for an executed convolution (verbose format v1, oneDNN 3.x) and the
# older form without the version and "primitive" fields (oneDNN 2.x).
_EXEC = re.compile(r"^onednn_verbose,(?:v\d+,primitive,)?exec,(\w+),convolution,([^,]+),")
# torch's slow, reference-like convolution backends (aten/src/ATen/native/ConvUtils.h).
REFERENCE_BACKENDS = frozenset(
    {"Slow2d", "Slow3d", "SlowDilated2d", "SlowDilated3d", "SlowTranspose2d", "SlowTranspose3d"}
)


# dtypes torch serves with oneDNN on the CPU: a Slow* conv in these had an optimised kernel.
OPTIMISED_DTYPES = frozenset({"float32", "bfloat16", "float16"})


@dataclass
class Found:
    """What a variant ran: every conv's kernel in call order, and the reference kernels among
    them that ran where the library has an optimised one (module doc), each as
    ``(position, kernel, dtype)`` with position counted from 1."""

    kernels: list[str]
    fallbacks: list[tuple[int, str, str]] = field(default_factory=list)

    def warning(self) -> str:
        """The row's ``reference_kernel`` warning ("" when no fallback ran)."""
        if not self.fallbacks:
            return ""
        convs = ", ".join(f"conv {i} {k} ({dtype})" for i, k, dtype in self.fallbacks)
        return (
            f"reference_kernel: {convs}: a reference implementation ran where the library has "
            "an optimised one (it did not accept this conv here)"
        )


def is_reference(kernel: str) -> bool:
    """Whether ``kernel`` (``BACKEND`` or ``BACKEND/IMPL``) is a reference or fallback
    implementation rather than an optimised one."""
    backend, _, impl = kernel.partition("/")
    return backend in REFERENCE_BACKENDS or impl.startswith(("ref", "gemm:ref"))


def parse_onednn_verbose(text: str) -> list[str]:
    """The implementation of every convolution oneDNN executed, in order, from its verbose
    log."""
    return [m.group(2) for line in text.splitlines() if (m := _EXEC.match(line.strip()))]


@contextlib.contextmanager
def _stdout_to_file() -> Iterator[Callable[[], str]]:
    """Point file descriptor 1 at a temporary file (oneDNN writes its verbose log there with C
    stdio); yields a function that returns what was written."""
    import ctypes

    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile(mode="w+b") as log:
        os.dup2(log.fileno(), 1)
        text: list[str] = []
        try:
            yield lambda: "".join(text)
        finally:
            sys.stdout.flush()
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
            log.seek(0)
            text.append(log.read().decode("utf-8", errors="replace"))


def _select(torch: Any, conv: Any, x: Any) -> str:
    """torch's convolution backend for ``conv`` called on ``x`` (its enum's member name)."""
    dims = conv.weight.dim() - 2
    # padding="same"/"valid" is resolved by the module; the choice does not depend on it
    padding = conv.padding if not isinstance(conv.padding, str) else (0,) * dims
    choice = torch._C._select_conv_backend(
        x, conv.weight, conv.bias, conv.stride, padding, conv.dilation, False, (0,) * dims,
        conv.groups, None,
    )  # fmt: skip
    return str(choice).rsplit(".", 1)[-1]


def _at_batch_16(torch: Any, x: Any) -> Any:
    """An uninitialised input like ``x`` with 16 images (only its sizes, dtype, device and
    memory format matter to torch's choice)."""
    big = torch.empty((16, *x.shape[1:]), dtype=x.dtype, device=x.device)
    for fmt in (torch.channels_last, torch.channels_last_3d):
        if x.dim() == (4 if fmt is torch.channels_last else 5) and x.is_contiguous(
            memory_format=fmt
        ):
            return big.contiguous(memory_format=fmt)
    return big


def torch_conv_kernels(module: Any, call: Callable[[], Any]) -> Found:
    """The kernel of every convolution of ``module`` that ``call`` runs, in call order: torch's
    backend choice for that call and, where it is oneDNN on the CPU, oneDNN's implementation;
    and which of them are fallbacks (module doc). Runs ``call`` once (untimed; its output is
    discarded)."""
    import torch

    convs = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    backends: list[str] = []
    dtypes: list[str] = []
    slow_fallbacks: set[int] = set()  # positions

    def before(conv: Any, args: tuple[Any, ...]) -> None:
        if not args or not isinstance(args[0], torch.Tensor):
            backends.append("unknown")  # called in a way the probe cannot follow
            dtypes.append("")
            return
        x = args[0]
        backends.append(_select(torch, conv, x))
        dtypes.append(str(x.dtype).removeprefix("torch."))
        if (
            backends[-1] in REFERENCE_BACKENDS
            and dtypes[-1] in OPTIMISED_DTYPES
            and _select(torch, conv, _at_batch_16(torch, x)) in REFERENCE_BACKENDS
        ):
            slow_fallbacks.add(len(backends))

    hooks = [m.register_forward_pre_hook(before) for m in module.modules() if isinstance(m, convs)]
    try:
        with torch.inference_mode():
            if torch.backends.mkldnn.is_available():
                with (
                    _stdout_to_file() as log,
                    torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON),
                ):
                    call()
                impls = parse_onednn_verbose(log())
            else:
                call()
                impls = []
    finally:
        for hook in hooks:
            hook.remove()
    kernels = _pair(backends, impls)
    device = next((p.device for p in module.parameters()), None)
    if device is not None and device.type == "cuda":
        kernels = with_gpu_kernels(kernels, _gpu_kernels_per_conv(module, call, convs))
    fallbacks = [
        (i, kernel, dtypes[i - 1])
        for i, kernel in enumerate(kernels, start=1)
        if i in slow_fallbacks or (is_reference(kernel) and "/" in kernel)
    ]
    return Found(kernels, fallbacks)


RANGE = "dscbench.conv."  # the profiler range around each conv (its position after the dot)


def short_kernel_name(name: str) -> str:
    """A GPU kernel's name without return type, namespaces, template and call arguments:
    ``void cudnn::cnn::conv2d_grouped_direct_kernel<float, float>(...)`` ->
    ``conv2d_grouped_direct_kernel``."""
    name = name.strip().removeprefix("void ")
    name = name.split("<", 1)[0].split("(", 1)[0]
    return name.rsplit("::", 1)[-1]


def launched_in_ranges(events: list[Any]) -> dict[int, list[str]]:
    """Per conv position, the GPU kernels launched inside its profiler range (``RANGE``): each
    range event's own kernels and its CPU descendants' (torch profiler ``FunctionEvent``s:
    ``name``, ``kernels`` with a ``name`` each, ``cpu_children``)."""

    def kernels_of(event: Any) -> list[str]:
        names = [k.name for k in getattr(event, "kernels", [])]
        for child in getattr(event, "cpu_children", []):
            names += kernels_of(child)
        return names

    found: dict[int, list[str]] = {}
    for event in events:
        if event.name.startswith(RANGE):
            found.setdefault(int(event.name[len(RANGE) :]), []).extend(kernels_of(event))
    return found


def with_gpu_kernels(kernels: list[str], launched: dict[int, list[str]]) -> list[str]:
    """Each conv's kernel with the GPU kernels its call launched (short names, in order, each
    once, comma-separated): ``Cudnn/implicit_convolve_sgemm``."""
    out = []
    for i, kernel in enumerate(kernels):
        names = list(dict.fromkeys(short_kernel_name(n) for n in launched.get(i, [])))
        out.append(f"{kernel}/{','.join(names)}" if names else kernel)
    return out


def _gpu_kernels_per_conv(
    module: Any, call: Callable[[], Any], convs: tuple
) -> dict[int, list[str]]:
    """One more untimed call, profiled on the GPU with a range around each conv."""
    import torch
    from torch.profiler import ProfilerActivity, profile, record_function

    open_ranges: list[Any] = []
    count = [0]

    def enter(conv: Any, args: tuple[Any, ...]) -> None:
        scope = record_function(f"{RANGE}{count[0]}")
        scope.__enter__()
        open_ranges.append(scope)
        count[0] += 1

    def leave(conv: Any, args: tuple[Any, ...], output: Any) -> None:
        if open_ranges:
            open_ranges.pop().__exit__(None, None, None)

    mods = [m for m in module.modules() if isinstance(m, convs)]
    hooks = [m.register_forward_pre_hook(enter) for m in mods]
    hooks += [m.register_forward_hook(leave) for m in mods]
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA]
    try:
        with torch.inference_mode(), profile(activities=activities) as prof:
            call()
            torch.cuda.synchronize()
    finally:
        for hook in hooks:
            hook.remove()
    return launched_in_ranges(list(prof.events()))


def _pair(backends: list[str], impls: list[str]) -> list[str]:
    """Each conv's backend with oneDNN's implementation where the backend is oneDNN (Mkldnn
    convs execute one oneDNN convolution each, in the same order)."""
    impls = list(impls)
    kernels = []
    for backend in backends:
        if backend.startswith("Mkldnn") and impls:
            kernels.append(f"{backend}/{impls.pop(0)}")
        else:
            kernels.append(backend)
    return kernels


# The ops a convolution dispatches to, as torch's profiler names them, and the backend each
# is (``_select_conv_backend``'s names).
PROFILED_BACKENDS = {
    "aten::mkldnn_convolution": "Mkldnn",
    "mkldnn::_convolution_pointwise": "Mkldnn",
    "aten::thnn_conv2d": "Slow2d",
    "aten::slow_conv3d": "Slow3d",
    "aten::slow_conv_dilated2d": "SlowDilated2d",
    "aten::slow_conv_dilated3d": "SlowDilated3d",
    "aten::_nnpack_spatial_convolution": "NnpackSpatial",
    "aten::cudnn_convolution": "Cudnn",
    "aten::_conv_depthwise2d": "CudaDepthwise2d",
    "aten::conv_depthwise3d": "CudaDepthwise3d",
    "aten::miopen_convolution": "Miopen",
}


def parse_compiled_profile(names: list[str], convs: int) -> list[str]:
    """What a torch.compile'd call did with each of its ``convs`` convolutions, from the op
    names torch's profiler saw, in order: ``Inductor/extern:BACKEND`` for each conv Inductor
    left to an ATen kernel (``aten::convolution`` and the backend op it dispatched to, or
    oneDNN's fused ``mkldnn::_convolution_pointwise``), then ``Inductor/generated`` for each
    conv it did not call out for (fused into code it generated)."""
    kernels: list[str] = []
    open_conv = False  # an aten::convolution whose backend op has not been seen yet
    for name in names:
        if name == "aten::convolution":
            kernels.append("Inductor/extern")
            open_conv = True
        elif name in PROFILED_BACKENDS and (open_conv or name.startswith("mkldnn::")):
            backend = f"Inductor/extern:{PROFILED_BACKENDS[name]}"
            if open_conv:
                kernels[-1] = backend
            else:
                kernels.append(backend)
            open_conv = False
    return kernels + ["Inductor/generated"] * max(0, convs - len(kernels))


def compiled_conv_kernels(module: Any, call: Callable[[], Any]) -> Found:
    """``parse_compiled_profile`` of one call of a compiled ``module`` (already compiled: the
    call is profiled, untimed)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    convs = sum(
        isinstance(m, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)) for m in module.modules()
    )
    activities = [ProfilerActivity.CPU]
    with torch.inference_mode(), profile(activities=activities) as prof:
        call()
    events = sorted(prof.events(), key=lambda e: e.time_range.start)
    return Found(parse_compiled_profile([e.name for e in events], convs))


def parse_ort_profile(events: list[dict[str, Any]]) -> list[str]:
    """The kernel of every node ONNX Runtime ran, in order, from its profile (a session with
    ``enable_profiling``): ``PROVIDER/OP`` with the execution provider's short name and the
    node's operator after graph optimisation, so fusions show (``CPU/FusedConv``), and
    ``:nchwc`` on a node its NCHWc layout transformer made (``CPU/Conv:nchwc``, between
    ``CPU/ReorderInput`` and ``CPU/ReorderOutput``)."""
    nodes = [
        e
        for e in events
        if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")
    ]
    kernels = []
    for event in sorted(nodes, key=lambda e: e.get("ts", 0)):
        args = event.get("args") or {}
        provider = str(args.get("provider", "")).removesuffix("ExecutionProvider") or "unknown"
        op = str(args.get("op_name", "unknown"))
        if event["name"].removesuffix("_kernel_time").endswith("_nchwc"):
            op += ":nchwc"
        kernels.append(f"{provider}/{op}")
    return kernels


def describe(kernels: list[str]) -> str:
    """A variant's kernels as one stable string: ``A + B`` in call order, a run of the same
    kernel written once with its count (``Mkldnn/jit:avx2 x3``)."""
    parts: list[str] = []
    counts: list[int] = []
    for kernel in kernels:
        if parts and parts[-1] == kernel:
            counts[-1] += 1
        else:
            parts.append(kernel)
            counts.append(1)
    return " + ".join(k if n == 1 else f"{k} x{n}" for k, n in zip(parts, counts, strict=True))
