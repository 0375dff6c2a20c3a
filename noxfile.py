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

    `nox -s bench` runs all; `nox -s bench -- run [overhead agreement reproducibility]`,
    `nox -s bench -- backends [ort-prep all]`, `nox -s bench -- compare [runs real-aa simulate
    scale]` or `nox -s bench -- gate [runs interleaved calibration canary sequential aa power
    isa overhead]`, `nox -s bench -- models [default table flops]` or `nox -s bench -- reports
    [calibration roofline speed]` or `nox -s bench -- robust [checkpoint rss dryrun kill]` or
    `nox -s bench -- noise [components personality]` or `nox -s bench -- decide [aa power
    coverage agreement]` or `nox -s bench -- kernels [heuristic named aa isa counts counts-isa
    counts-model]` or `nox -s bench -- history [step histories methods scale noise]` or
    `nox -s bench -- axes [cold flips]` or `nox -s bench -- predict [accuracy predict]` runs
    one script, or some of its parts.
    """
    session.install(*CONSTRAINTS, "-e", ".[ort,plot,accuracy,predict]")
    scripts = {
        "run": "benchmarks/bench_run.py",
        "backends": "benchmarks/bench_backends.py",
        "compare": "benchmarks/bench_compare.py",
        "gate": "benchmarks/bench_gate.py",
        "models": "benchmarks/bench_models.py",
        "reports": "benchmarks/bench_reports.py",
        "robust": "benchmarks/bench_robust.py",
        "noise": "benchmarks/bench_noise.py",
        "decide": "benchmarks/bench_decide.py",
        "kernels": "benchmarks/bench_kernels.py",
        "history": "benchmarks/bench_history.py",
        "axes": "benchmarks/bench_axes.py",
        "predict": "benchmarks/bench_predict.py",
    }
    args = list(session.posargs)
    chosen = [args.pop(0)] if args and args[0] in scripts else list(scripts)
    for name in chosen:
        session.run("python", scripts[name], *args)
