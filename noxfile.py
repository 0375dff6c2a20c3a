"""Developer sessions: `nox -s tests`, `nox -s lint`, `nox -s bench`.

Every session installs through constraints/ci.txt, which pins the CPU build of torch; the
package itself keeps a broad torch range so users can bring their own (CPU or CUDA) build.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True

CONSTRAINTS = ("-c", "constraints/ci.txt")


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (CPU only; GPU tests are marked and skip without a device)."""
    session.install(*CONSTRAINTS, "-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff lint and format check."""
    session.install(*CONSTRAINTS, "ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def bench(session: nox.Session) -> None:
    """The committed benchmarks behind the targets quoted in issues (takes several minutes).

    Pass a subset by name: `nox -s bench -- overhead agreement reproducibility`.
    """
    session.install(*CONSTRAINTS, "-e", ".")
    session.run("python", "benchmarks/bench_run.py", *session.posargs)
