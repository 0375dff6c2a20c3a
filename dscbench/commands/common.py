"""What the commands share: the terminal (standard output that survives its reader going away,
standard error for the one-line problems) and the option types several commands declare.

Light on purpose: cli.py imports every command for ``--help``, so nothing here (or at the top
of a command module) imports torch or pandas.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console


class PipeSafe:
    """Standard output that survives its reader going away (``dscbench run ... | head -1``):
    on a broken pipe, output goes to /dev/null from then on, as CLI tools do, and the command
    finishes its work (a sweep keeps measuring and writes its result files). The exit code
    stays the command's own."""

    def __init__(self) -> None:
        self.broken = False

    @property
    def stream(self) -> Any:
        return sys.stdout  # looked up on every write, as rich does (CliRunner swaps it)

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._divert()

    def _divert(self) -> None:
        self.broken = True
        try:  # the interpreter's own flush at exit must not hit the closed pipe either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default;
# a terminal keeps its own width.
console = Console(file=PipeSafe(), width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)  # one problem, one line, however long

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
RunsArg = Annotated[
    list[Path], typer.Argument(help="Run directories, results files or JSON exports.")
]
