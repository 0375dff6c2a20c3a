"""One module per `dscbench` command (a package for `run`), each with its own Typer sub-app
``app`` that declares the command's options; cli.py joins them into the root app. A command
module imports nothing heavy at its top (cli.py imports them all for ``--help``)."""
