"""What the numbers were measured on: hardware, OS, library versions, threads, git sha; and
how two runs' recorded facts differ (``environment_differences``, ``hardware_differences``).

Library versions come from installed package metadata, so collecting them imports nothing heavy.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from dscbench.about import __version__

LIBRARIES = (
    "torch",
    "numpy",
    "pandas",
    "pyarrow",
    "fvcore",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "scipy",
    "typer",
    "rich",
)


def library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo, falling back to platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None


def git_sha(cwd: Path | None = None) -> str | None:
    """The commit of the working directory's git checkout, when there is one."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return (out.stdout.strip() or None) if out.returncode == 0 else None


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def collect_environment(*, with_torch: bool = True) -> dict[str, Any]:
    """A JSON-ready description of this machine and software stack.

    ``with_torch`` adds torch's runtime facts (threads, oneDNN, build); it imports torch.
    """
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    try:
        load = os.getloadavg()
    except (AttributeError, OSError):
        load = None
    info: dict[str, Any] = {
        "dscbench": __version__,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "executable": sys.executable,
        "os": platform.platform(),
        "machine": platform.machine(),
        "hostname": socket.gethostname(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": affinity,
        "cpu_governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "load_average": list(load) if load else None,
        "libraries": library_versions(),
        # The checkout dscbench runs from (an editable install), and the one the user runs in.
        "dscbench_git_sha": git_sha(Path(__file__).resolve().parent),
        "cwd_git_sha": git_sha(),
    }
    if with_torch:
        try:
            import torch
        except ImportError:
            info["torch"] = None
        else:
            info["torch"] = {
                "version": torch.__version__,
                "num_threads": torch.get_num_threads(),
                "num_interop_threads": torch.get_num_interop_threads(),
                # the instruction set ATen dispatches to (AVX2 under valgrind, which emulates
                # no AVX-512)
                "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                "mkldnn_enabled": bool(
                    torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled
                ),
                "cuda_available": torch.cuda.is_available(),
                "cuda_version": torch.version.cuda,
                "parallel_info": _first_lines(torch.__config__.parallel_info(), 8),
            }
    return info


def _first_lines(text: str, n: int) -> list[str]:
    return [line.strip() for line in text.strip().splitlines()[:n] if line.strip()]


# ---------------------------------------------------------------------------------------------
# Differences between two runs' facts
# ---------------------------------------------------------------------------------------------


def _flatten(prefix: str, value: Any, out: dict[str, str]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    elif isinstance(value, list):
        out[prefix] = ", ".join(str(v) for v in value)
    elif value is not None:
        out[prefix] = str(value)


# Facts that identify the hardware; everything else in the environment may differ freely.
HARDWARE_KEYS = ("environment.cpu_model", "environment.machine")
ENVIRONMENT_KEYS = (
    "environment.cpu_model",
    "environment.machine",
    "environment.cpu_count",
    "environment.cpu_affinity",
    "environment.hostname",
    "environment.os",
    "environment.python",
    "environment.executable",
    "environment.dscbench",
    "environment.torch.num_threads",
    "environment.torch.mkldnn_enabled",
    "environment.cpu_governor",
)


def environment_differences(
    base: dict[str, Any], cand: dict[str, Any]
) -> list[tuple[str, str, str]]:
    """(what, baseline value, candidate value) for every recorded fact that differs: hardware,
    threads, library versions, variables set for an environment, backend devices and versions."""
    flat_b: dict[str, str] = {}
    flat_c: dict[str, str] = {}
    for meta, flat in ((base, flat_b), (cand, flat_c)):
        _flatten("", {"environment": meta.get("environment", {})}, flat)
        _flatten("", {"backends": meta.get("backends", {})}, flat)
        _flatten("", {"variables": meta.get("variables", {})}, flat)
    keys = [k for k in ENVIRONMENT_KEYS if k in flat_b or k in flat_c]
    for prefix in ("environment.libraries.", "variables."):
        keys += sorted(k for k in {*flat_b, *flat_c} if k.startswith(prefix))
    names_b, names_c = set(base.get("backends", {})), set(cand.get("backends", {}))
    keys += sorted(
        k
        for k in {*flat_b, *flat_c}
        if k.startswith("backends.") and k.split(".")[1] in names_b & names_c
    )
    out = [
        (k, flat_b.get(k, "-"), flat_c.get(k, "-"))
        for k in keys
        if flat_b.get(k, "-") != flat_c.get(k, "-")
    ]
    for name in sorted(names_b ^ names_c):
        out.append((f"backends.{name}", "used" if name in names_b else "-",
                    "used" if name in names_c else "-"))  # fmt: skip
    return out


def hardware_differences(base: dict[str, Any], cand: dict[str, Any]) -> list[str]:
    """What says the two runs ran on different hardware: CPU model, architecture, GPU names."""
    diffs = []
    env_b, env_c = base.get("environment", {}), cand.get("environment", {})
    for key in HARDWARE_KEYS:
        name = key.split(".", 1)[1]
        if env_b.get(name) != env_c.get(name):
            diffs.append(f"{name} {env_b.get(name)!r} vs {env_c.get(name)!r}")
    backends_b, backends_c = base.get("backends", {}), cand.get("backends", {})
    for name in sorted(set(backends_b) & set(backends_c)):
        b, c = backends_b[name], backends_c[name]
        if b.get("device") == "cuda" and b.get("device_name") != c.get("device_name"):
            diffs.append(f"{name} GPU {b.get('device_name')!r} vs {c.get('device_name')!r}")
    return diffs
