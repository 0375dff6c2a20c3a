"""`dscbench run`, in parts: command.py (the options and the Typer app, light), options.py
(RunOptions), planning.py (expand, validate, start, estimate, dry run), recorder.py (run.json and
the checkpoints), resume.py (--resume), execute.py (the work). Import what you use from its
module; this package imports nothing itself, so the API can use the engine (options, execute)
without the command that is built on the API."""
