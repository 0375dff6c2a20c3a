"""The command line's root: the `dscbench` app, its commands (one Typer sub-app each, in
dscbench/commands/, each declaring its own options), and the one place where bad input becomes
one red line and an exit code.

Heavy modules (torch, pandas) are imported inside the commands that need them, so ``--help``,
``--version`` and ``presets`` start fast.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated, Any

import typer
from rich.text import Text
from typer.core import TyperGroup

from dscbench.about import __version__
from dscbench.commands import (
    accuracy,
    backends,
    calibrate,
    compare,
    env,
    export,
    gate,
    history,
    merge,
    plot,
    predict,
    presets,
    report,
    show,
)
from dscbench.commands.common import console, err_console
from dscbench.commands.run import command as run
from dscbench.errors import DscbenchError

# In the order `dscbench --help` lists them.
COMMANDS = (
    run,
    show,
    plot,
    report,
    merge,
    calibrate,
    presets,
    compare,
    gate,
    history,
    accuracy,
    predict,
    export,
    backends,
    env,
)


def _click_exceptions() -> tuple[type[Exception], type[BaseException]]:
    """(ClickException, Abort) as the installed typer raises them: typer >= 0.2x vendors click
    as ``typer._click``, older releases use click itself."""
    try:
        from typer._click.exceptions import ClickException
        from typer.exceptions import Abort
    except ImportError:
        from click.exceptions import Abort, ClickException
    return ClickException, Abort


def error_line(message: str) -> None:
    """One red line on stderr."""
    err_console.print(Text("error: ", style="bold red") + Text(message), highlight=False)


class Root(TyperGroup):
    """The root command. Its ``main`` is where every command's bad input ends: a DscbenchError
    or a usage error (an unknown option, a value out of range) becomes one red line per problem
    and its exit code (2), Ctrl-C outside a sweep 130; bugs keep their traceback. A test's
    CliRunner, the console script and a replayed command (``run --resume DIR``) all pass
    through it."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        code = self._exit_code(*args, **kwargs)
        if standalone_mode:
            sys.exit(code)
        return code

    def _exit_code(self, *args: Any, **kwargs: Any) -> int:
        click_exception, abort = _click_exceptions()
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except DscbenchError as exc:
            for line in str(exc).splitlines():
                error_line(line)
            return exc.exit_code
        except click_exception as exc:
            if type(exc).__name__ != "NoArgsIsHelpError":  # else the help is already printed
                ctx = getattr(exc, "ctx", None)
                hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
                error_line(exc.format_message() + hint)
            return exc.exit_code
        except abort:  # Ctrl-C or end of input outside a sweep (a sweep handles its own)
            err_console.print(Text("interrupted", style="yellow"), highlight=False)
            return 130
        return code if isinstance(code, int) else 0


app = typer.Typer(
    name="dscbench",
    cls=Root,
    help="Measure what depthwise-separable convolution buys on this machine, against standard "
    "convolution: params, MACs and real latency, with statistics you can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
for command in COMMANDS:
    app.add_typer(command.app)


def _version(value: bool) -> None:
    if value:
        console.print(f"dscbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """dscbench: depthwise-separable vs standard convolution, measured."""


def main() -> None:
    """Console-script entry point."""
    prefer_system_allocator()
    _exit(app(standalone_mode=False))


def prefer_system_allocator() -> None:
    """Give pyarrow the C library's allocator, unless ARROW_DEFAULT_MEMORY_POOL already
    chooses one; it must happen before pyarrow is first imported, so the command does it first.

    pandas 3 keeps string columns in arrow memory, and pyarrow's default pool (mimalloc) keeps
    what it frees: a long sweep's result tables made peak RSS grow with the number of
    configurations (benchmarks/REPORT-robust.md). A library user's process is left alone."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _exit(code: int) -> None:
    """Exit with ``code``, deaf to Ctrl-C from here on: a second Ctrl-C landing while the
    process unwinds would otherwise turn a clean exit (130 after an interrupt, with every
    result written) into a death by SIGINT."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
