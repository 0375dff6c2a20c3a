"""Renderers: turn result tables into things people read. They never measure or compute stats."""

from collections.abc import Iterable
from pathlib import Path

from dscbench.errors import ResultsError


def check_not_input(output: Path, inputs: Iterable[Path]) -> None:
    """Refuse an output that is an input file or sits inside an input run's directory."""
    target = output.resolve()
    for given in inputs:
        path = Path(given).resolve()
        run_dir = path if path.is_dir() else path.parent
        # A run directory (or a results file in one) owns its directory; an export owns itself.
        owns_directory = path.is_dir() or path.suffix != ".json"
        if target == path or (owns_directory and target.parent == run_dir):
            raise ResultsError(
                f"--output {output}: would overwrite files of the input run {given}; "
                "write somewhere else"
            )


def write_output(
    output: str, text: str, inputs: Iterable[Path] = (), *, append: bool = False
) -> None:
    """Write ``text`` to the file ``output`` ('-' is stdout), or add it at the end
    (``append``: a CI step summary); a failure is one-line exit 2. ``output`` may not be, or
    lie in the directory of, any of ``inputs`` (the runs read): an ``-o RUN/run.json`` would
    destroy what was measured."""
    import sys

    if output == "-":
        sys.stdout.write(text)
        return
    check_not_input(Path(output), inputs)
    try:
        with Path(output).open("a" if append else "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise ResultsError(f"--output {output}: cannot write ({exc.strerror or exc})") from None
