"""What the benchmark scripts share: running the CLI, the load average, a report's header
(the command and the commit it ran at) and running the parts named on the command line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def dscbench(*args: str) -> float:
    """Run the CLI quietly from the repository root; return the process's wall seconds."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dscbench", *args],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def cli(
    *args: str, env: dict[str, str] | None = None, check: bool = True
) -> tuple[int, float, str]:
    """`dscbench ARGS` from the repository root, ``env`` added to the environment: exit code,
    wall seconds, output; any exit but 0 or 1 (with ``check``) ends the benchmark."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dscbench", *args], capture_output=True,
                          text=True, cwd=ROOT, env={**os.environ, **(env or {})})  # fmt: skip
    if check and done.returncode not in (0, 1):
        sys.exit(f"dscbench {' '.join(args)} failed ({done.returncode}):\n{done.stderr}")
    return done.returncode, time.perf_counter() - start, done.stdout + done.stderr


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} CPUs"


def header(title: str, script: str, session: str) -> list[str]:
    """The report's title and the line naming its command, commit (dirty or not) and time."""
    import torch

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, cwd=ROOT
        ).stdout.strip()

    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") else ""
    command = f"python benchmarks/{script} {' '.join(sys.argv[1:])}".rstrip()
    return [
        f"# {title}",
        "",
        f"Command: `{command}` (what `nox -s bench -- {session}` runs), one run at commit "
        f"{git('rev-parse', '--short', 'HEAD')}{dirty}, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; torch {torch.__version__}; "
        f"{load()} at the start.",
    ]


def main(title: str, script: str, session: str, parts: dict[str, Callable[[], list[str]]]):
    """Run the parts named on the command line (all when none) and print the markdown."""
    names = sys.argv[1:] or list(parts)
    unknown = [n for n in names if n not in parts]
    if unknown:
        sys.exit(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(parts)}")
    print("\n".join(header(title, script, session)), end="\n\n", flush=True)
    for name in names:
        print("\n".join(parts[name]()), end="\n\n", flush=True)
