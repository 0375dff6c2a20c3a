"""The statuses of a result: a row's ``Status`` and a whole run's ``RunStatus``.

Both are ``str`` enums whose values are what the files hold ("ok", "complete", ...), so a
member compares, hashes, prints and serializes as its string. Standard library only: the
worker processes (executor) import it without pandas or pyarrow; ``dscbench.results`` re-exports
it as part of the results schema.
"""

from __future__ import annotations

from enum import Enum


class _Value(str, Enum):
    """A str enum that prints as its value (``str``/f-strings), on every Python dscbench runs."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return self.value.__format__(spec)


class Status(_Value):
    """What became of one configuration x backend x environment: ``ok``, ``not_measured`` (not
    reached yet) or the kind of failure."""

    OK = "ok"
    NOT_MEASURED = "not_measured"  # interrupted before its first visit finished
    COUNT_MISMATCH = "count_mismatch"  # measured, but its counts disagree with the closed forms
    BUILD_ERROR = "build_error"
    RUNTIME_ERROR = "runtime_error"
    OUT_OF_MEMORY = "out_of_memory"
    COMPILE_ERROR = "compile_error"
    PARITY_FAILED = "parity_failed"  # a wrong answer: never timed, never in a summary
    SKIPPED = "skipped"  # its backend cannot run it here (--skip-unavailable)
    WORKER_CRASHED = "worker_crashed"  # the environment's worker process died while measuring it


# Not (yet) a failure: the runner goes on measuring these. A set of str: a status read back
# from a journal is a plain string, and is found in it all the same.
HEALTHY = frozenset({Status.OK, Status.NOT_MEASURED, Status.COUNT_MISMATCH})


class RunStatus(_Value):
    """A whole run's status (run.json's ``status``)."""

    RUNNING = "running"
    COMPLETE = "complete"
    INTERRUPTED = "interrupted"
    CRASHED = "crashed"
    PARTIAL = "partial"  # a merge of shards some of which are missing or unfinished
    # What readers call a run whose run.json says running while no process writes it (a kill
    # -9, a lost node): never written to run.json, which keeps what the killed process last
    # wrote.
    KILLED = "killed"


RUN_STATUSES = tuple(RunStatus)
KILLED = RunStatus.KILLED
