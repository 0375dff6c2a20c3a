"""Renderers: turn result tables into things people read. They never measure or compute stats."""

from pathlib import Path

from dscbench.errors import ResultsError


def write_output(output: str, text: str) -> None:
    """Write ``text`` to the file ``output`` ('-' is stdout); a failure is one-line exit 2."""
    import sys

    if output == "-":
        sys.stdout.write(text)
        return
    try:
        Path(output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ResultsError(f"--output {output}: cannot write ({exc.strerror or exc})") from None
