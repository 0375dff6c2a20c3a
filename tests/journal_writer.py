"""A process that does nothing but checkpoint, back to back, until it is killed: checkpoint i
appends 1 + i % 50 samples of value i + 1. The kill -9 test and benchmark (bench_robust.py
kill) run it and check what survives with ``expected_times``.

    python tests/journal_writer.py DIR
"""

from __future__ import annotations

import sys


def expected_times(generation: int) -> list[float]:
    """The samples a journal whose manifest is at ``generation`` holds (generation 1 is the
    empty journal)."""
    return [float(i + 1) for i in range(generation - 1) for _ in range(1 + i % 50)]


def main(directory: str) -> None:
    from dscbench import results

    journal = results.Journal.create(directory, {"schema_version": 4, "status": "running"})
    i = 0
    while True:
        n = 1 + i % 50
        samples = {
            "config_id": ["c"] * n, "variant": ["standard"] * n, "backend": ["fake"] * n,
            "env": [""] * n, "round": [i] * n, "pair": list(range(n)),
            "iterations": [1] * n, "time_s": [float(i + 1)] * n,
        }  # fmt: skip
        journal.append([{"samples": samples}], {"status": "running"})
        i += 1


if __name__ == "__main__":
    main(sys.argv[1])
