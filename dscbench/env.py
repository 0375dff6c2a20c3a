"""What the numbers were measured on: hardware, OS, library versions, threads, git sha.

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

from dscbench import __version__

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
