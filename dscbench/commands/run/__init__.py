"""`dscbench run`, in parts: command.py (the options, light), options.py (RunOptions),
planning.py (expand, validate, start, estimate, dry run), recorder.py (run.json and the
checkpoints), resume.py (--resume), execute.py (the work). Import what you use from its
module; this package re-exports only the Typer app."""

from dscbench.commands.run.command import app

__all__ = ["app"]
