"""Machine calibration: what this machine can sustain, the roofs of the roofline.

- **Peak compute**, FLOP/s per dtype: the best of four kernels, each sized so one call takes
  about 20 ms: a square matrix product (``torch.mm``, 2 N^3 FLOPs), dense 3x3 (256 channels),
  1x1 (1024 channels) and 7x7 (64 channels) convs. Libraries differ: on an AMD CPU torch's matrix
  product goes to MKL, which takes an AVX2 path, while its convs go to oneDNN, which uses
  AVX-512 and runs twice as fast; a roof below what the convs reach would be no roof. float32
  and float64 always; float16 and bfloat16 where the device runs them (a CPU without native
  support emulates them slowly: that *is* what a float16 row can reach there).
- **Memory bandwidth**, bytes/s, STREAM-like on arrays far larger than any cache (512 MiB each
  on the CPU, since server CPUs carry up to 1 GiB of L3; 1 GiB on CUDA): ``copy`` (b = a: 2
  arrays of traffic) and ``triad`` (a = b + s*c: 3 arrays), counted as STREAM counts them (no
  write-allocate traffic).
- **Copies by size** (``copy_ladder``, CPU and CUDA): the same copy on arrays of 4 KiB to 64 MiB
  (x4 apart), each size's traffic per second: what moving that many bytes costs here, cache
  levels and the per-call overhead included. Not a roof: the roofline keeps the DRAM bandwidth
  above.
- **Modules by size** (``module_ladder``, CPU and CUDA): an eval-mode ``BatchNorm2d`` (64
  channels, a new output each call) and an in-place ``ReLU``, called as a network calls them,
  on activations of the same sizes, each size's traffic per second (input, output and the batch
  norm's weight and bias, as counting.py counts a layer's bytes). A module call costs more than a
  copy of its bytes: the call itself (at 4 KiB a batch norm call took 7x a copy on the
  development VM, benchmarks/REPORT-predict.md), the output's allocation, the batch norm's
  arithmetic. ``dscbench predict`` costs an eager network's batch norms and activations from
  these, its other modules (pooling, the classifier, a residual block's addition) as copies.

The bandwidth can depend on the process: on the development VM it came out at 45-50 or at 75-78
GB/s, a draw per process (benchmarks/REPORT-reports.md; transparent huge pages are the likely
cause); run ``dscbench calibrate`` twice to see what this machine does.

Each kernel is warmed up, its block sized to last ``block_time`` seconds, and timed ``repeats``
times; the roof is the best repeat (what the machine sustained at least once), and every repeat
is kept so the spread shows how steady the machine was. Results are cached as JSON in the
platform cache directory (platformdirs), keyed by device, device model, thread count and library
versions, so a changed machine or library gets a fresh calibration.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dscbench.measure import HarnessOptions, Timer, Workload, warm_up_and_calibrate

CALIBRATION_VERSION = 3  # 2: the copy ladder; 3: the module ladder
REPEATS = 5
BLOCK_TIME_S = 0.05
DTYPES = ("float32", "float64", "float16", "bfloat16")


@dataclass
class Rate:
    """One kernel's rates over the repeats (FLOP/s or bytes/s); ``best`` is the roof."""

    per_repeat: list[float]

    @property
    def best(self) -> float:
        return max(self.per_repeat)

    @property
    def median(self) -> float:
        return statistics.median(self.per_repeat)

    @property
    def spread(self) -> float:
        """(best - worst) / median: how much the repeats disagreed."""
        return (max(self.per_repeat) - min(self.per_repeat)) / self.median


@dataclass
class Calibration:
    device: str  # cpu or cuda
    device_name: str
    threads: int  # 0 on CUDA, where the host's threads do not matter
    versions: dict[str, str]
    compute: dict[str, Rate] = field(default_factory=dict)  # "kernel:dtype" -> FLOP/s
    bandwidth: dict[str, Rate] = field(default_factory=dict)  # copy/triad -> bytes/s
    # array bytes (as a string, JSON's keys) -> traffic per second of a copy of that size
    copy_ladder: dict[str, Rate] = field(default_factory=dict)
    # module (MODULES) -> activation bytes (a string) -> traffic per second of one call
    module_ladder: dict[str, dict[str, Rate]] = field(default_factory=dict)
    created_at: str = ""
    version: int = CALIBRATION_VERSION

    @property
    def key(self) -> str:
        return calibration_key(self.device, self.device_name, self.threads, self.versions)

    def peak_flops(self, dtype: str) -> float:
        """The best rate of any compute kernel in ``dtype``; NaN if none ran."""
        rates = [r.best for k, r in self.compute.items() if k.split(":")[1] == dtype]
        return max(rates, default=math.nan)

    @property
    def dtypes(self) -> list[str]:
        return list(dict.fromkeys(k.split(":")[1] for k in self.compute))

    @property
    def peak_bandwidth(self) -> float:
        return max((r.best for r in self.bandwidth.values()), default=math.nan)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["key"] = self.key
        data["peak_flops_per_s"] = {d: self.peak_flops(d) for d in self.dtypes}
        data["peak_bytes_per_s"] = self.peak_bandwidth
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibration:
        return cls(
            device=data["device"],
            device_name=data["device_name"],
            threads=int(data["threads"]),
            versions=dict(data["versions"]),
            compute={d: Rate(list(r["per_repeat"])) for d, r in data["compute"].items()},
            bandwidth={k: Rate(list(r["per_repeat"])) for k, r in data["bandwidth"].items()},
            copy_ladder={
                k: Rate(list(r["per_repeat"])) for k, r in (data.get("copy_ladder") or {}).items()
            },
            module_ladder={
                module: {k: Rate(list(r["per_repeat"])) for k, r in sizes.items()}
                for module, sizes in (data.get("module_ladder") or {}).items()
            },
            created_at=data.get("created_at", ""),
            version=int(data.get("version", CALIBRATION_VERSION)),
        )


def calibration_key(device: str, device_name: str, threads: int, versions: dict) -> str:
    text = json.dumps([CALIBRATION_VERSION, device, device_name, threads, versions], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Kernel:
    """A workload, how much work one call does (FLOPs or bytes) and the context every timed
    block runs in (as a row's ``Prepared.context``: entered once per block, not per call)."""

    fn: Callable[[], Any]
    amount: float
    context: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext


def measure_rate(kernel: Kernel, timer: Timer, repeats: int, block_time: float) -> Rate:
    """Warm up, size a block to ``block_time``, then time ``repeats`` blocks: amount per
    second of each."""
    work = Workload(kernel.fn, kernel.context)
    cal = warm_up_and_calibrate(work, timer, HarnessOptions(block_time=block_time, warmup=0.0))
    rates = []
    for _ in range(repeats):
        seconds = work.block(timer, cal.iterations)
        rates.append(kernel.amount * cal.iterations / seconds)
    return Rate(rates)


# ---------------------------------------------------------------------------------------------
# The real kernels (torch)
# ---------------------------------------------------------------------------------------------


def torch_kernels(device: str, dtypes: tuple[str, ...] = DTYPES) -> dict[str, Kernel]:
    """``mm:<dtype>``, ``conv3x3:<dtype>``, ``conv1x1:<dtype>`` and ``conv7x7:<dtype>`` for each
    dtype the device runs, ``copy`` and ``triad``."""
    import torch

    from dscbench.ops import TORCH_DTYPES

    largest = 4096 if device == "cuda" else 1024
    elements = 1 << 28 if device == "cuda" else 1 << 27
    kernels: dict[str, Kernel] = {}
    for name in dtypes:
        dtype = TORCH_DTYPES[name]
        try:
            probe = _matmul(torch, device, dtype, PROBE_N)
            seconds = _seconds_of(probe.fn, device)
        except (RuntimeError, TypeError):  # the device has no matrix product in this dtype
            continue
        rate = probe.amount / max(seconds, 1e-9)
        n = int((rate * TARGET_S / 2) ** (1 / 3)) // 64 * 64
        kernels[f"mm:{name}"] = _matmul(torch, device, dtype, min(largest, max(PROBE_N, n)))
        for label, channels, k in (("conv3x3", 256, 3), ("conv1x1", 1024, 1), ("conv7x7", 64, 7)):
            per_pixel = 2.0 * channels * channels * k * k
            side = int(math.sqrt(rate * TARGET_S / per_pixel))
            side = min(4 * largest // 64, max(7, side))
            kernels[f"{label}:{name}"] = _conv(torch, device, dtype, channels, k, side)
    x = torch.ones(elements, device=device)
    y = torch.empty_like(x)
    z = torch.ones_like(x)
    nbytes = x.element_size() * elements
    kernels["copy"] = Kernel(lambda: y.copy_(x), 2.0 * nbytes)
    kernels["triad"] = Kernel(lambda: torch.add(y, z, alpha=3.0, out=x), 3.0 * nbytes)
    for size in LADDER_BYTES:
        a = torch.ones(size // x.element_size(), device=device)
        b = torch.empty_like(a)
        kernels[f"{LADDER}{size}"] = Kernel(lambda a=a, b=b: b.copy_(a), 2.0 * size)
        kernels.update(_modules(torch, device, size))
    return kernels


LADDER = "copy@"  # a copy_ladder kernel's label: copy@<array bytes>
LADDER_BYTES = tuple(4096 * 4**i for i in range(8))  # 4 KiB to 64 MiB
MODULES = ("batchnorm", "relu")  # module_ladder's modules; a kernel's label: <module>@<bytes>
LADDER_CHANNELS = 64  # 4 KiB of float32 is 64 channels of 4x4


def _modules(torch: Any, device: str, size: int) -> dict[str, Kernel]:
    """The module ladder's kernels at ``size`` bytes of float32 activation: a square image of
    LADDER_CHANNELS channels, each module called as a network's forward calls it (inference
    mode entered once per timed block, as for a row; an inference tensor in and out)."""
    side = math.isqrt(size // 4 // LADDER_CHANNELS)
    with torch.inference_mode():
        x = torch.randn(1, LADDER_CHANNELS, side, side, device=device)
    bn = torch.nn.BatchNorm2d(LADDER_CHANNELS).to(device).eval()
    relu = torch.nn.ReLU(inplace=True)
    traffic = 2.0 * x.numel() * x.element_size()
    params = 2 * LADDER_CHANNELS * x.element_size()  # weight and bias, as counting.py counts
    return {
        f"batchnorm@{size}": Kernel(lambda: bn(x), traffic + params, torch.inference_mode),
        f"relu@{size}": Kernel(lambda: relu(x), traffic, torch.inference_mode),
    }


PROBE_N = 256
TARGET_S = 0.02  # seconds one call of a compute kernel should take


def _matmul(torch: Any, device: str, dtype: Any, n: int) -> Kernel:
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    return Kernel(lambda: torch.mm(a, b, out=out), 2.0 * n**3)


def _conv(torch: Any, device: str, dtype: Any, channels: int, k: int, side: int) -> Kernel:
    """A same-padded KxK conv, batch 1, as the rows run it (inference mode)."""
    x = torch.randn(1, channels, side, side, device=device).to(dtype)
    w = torch.randn(channels, channels, k, k, device=device).to(dtype)
    conv = torch.nn.functional.conv2d

    def run() -> None:
        with torch.inference_mode():
            conv(x, w, padding=k // 2)

    return Kernel(run, 2.0 * channels * channels * k * k * side * side)


def _seconds_of(fn: Callable[[], Any], device: str) -> float:
    """Seconds of one call after a warm one (a rough probe, not a measurement)."""
    timer = _device_timer(device)
    fn()
    return timer.time_block(fn, 1)


def device_facts(device: str) -> tuple[str, dict[str, str]]:
    """(device model, library versions): what a calibration's cache key is made of. The CPU's
    needs no torch import (a run's coordinator looks its calibration up without one)."""
    from importlib import metadata

    from dscbench.env import cpu_model

    try:
        versions = {"torch": metadata.version("torch")}
    except metadata.PackageNotFoundError:
        versions = {"torch": "none"}
    if device == "cuda":
        import torch

        versions["cuda"] = str(torch.version.cuda)
        return torch.cuda.get_device_name(), versions
    return cpu_model(), versions


def calibrate(
    device: str = "cpu",
    threads: int | None = None,
    *,
    kernels: dict[str, Kernel] | None = None,
    timer: Timer | None = None,
    facts: tuple[str, dict[str, str]] | None = None,
    repeats: int = REPEATS,
    block_time: float = BLOCK_TIME_S,
) -> Calibration:
    """Measure the roofs of ``device`` at ``threads`` intra-op threads (the CPU; default: what
    torch uses). Tests pass ``kernels``, ``timer`` and ``facts`` (a fake clock and workloads)."""
    from dscbench.env import utc_now

    if device == "cuda":
        threads = 0
    elif threads is None or kernels is None:
        import torch

        if threads is None:
            threads = torch.get_num_threads()
        torch.set_num_threads(threads)
    if timer is None:
        timer = _device_timer(device)
    name, versions = facts if facts is not None else device_facts(device)
    kernels = kernels if kernels is not None else torch_kernels(device)
    result = Calibration(device, name, int(threads), versions, created_at=utc_now())
    for label, kernel in kernels.items():
        rate = measure_rate(kernel, timer, repeats, block_time)
        module, _, size = label.partition("@")
        if label.startswith(LADDER):
            result.copy_ladder[size] = rate
        elif module in MODULES:
            result.module_ladder.setdefault(module, {})[size] = rate
        elif ":" in label:
            result.compute[label] = rate
        else:
            result.bandwidth[label] = rate
    return result


def _device_timer(device: str) -> Timer:
    if device == "cuda":
        from dscbench.backends.cuda import CudaEventTimer

        return CudaEventTimer()
    return Timer()


# ---------------------------------------------------------------------------------------------
# The cache
# ---------------------------------------------------------------------------------------------


def cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("dscbench")) / "calibration"


def save(calibration: Calibration, directory: Path | None = None) -> Path:
    directory = directory or cache_dir()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{calibration.key}.json"
    path.write_text(json.dumps(calibration.to_json(), indent=2) + "\n", encoding="utf-8")
    return path


def cached(
    device: str, threads: int, facts: tuple[str, dict[str, str]], directory: Path | None = None
) -> Calibration | None:
    """The cached calibration for this device, thread count and library versions, if any (an
    unreadable or foreign file counts as none)."""
    key = calibration_key(device, facts[0], 0 if device == "cuda" else threads, facts[1])
    path = (directory or cache_dir()) / f"{key}.json"
    try:
        return Calibration.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
