"""Where the sweep meets the backend registry: data flows one way (spec -> plan -> backends),
so spec/ (spec_problems) checks a configuration on its own and this module checks it against
the backend that is to run it (metadata only, no torch import)."""

from __future__ import annotations

from dscbench.backends import REGISTRY, unsupported
from dscbench.errors import SpecError
from dscbench.spec import Case, spec_problems


def validate_cases(cases: list[Case], *, skip_unsupported: bool = False) -> dict[Case, str]:
    """Check every case before anything runs.

    Invalid specs and unknown backends raise one SpecError, one line per problem. A valid spec
    that its backend cannot run (dtype, memory format, size) is an error too, unless
    ``skip_unsupported``: then it is returned in ``{case: reason}`` to be recorded as skipped.
    """
    lines = []
    skips: dict[Case, str] = {}
    skippable = False
    for case in cases:
        where = f"config {case.spec.config_id} on {case.backend}"
        problems = spec_problems(case.spec)
        if case.backend not in REGISTRY:
            problems.append(f"unknown backend {case.backend!r} (known: {', '.join(REGISTRY)})")
        if problems:
            lines.extend(f"{where}: {p}" for p in problems)
            continue
        reasons = unsupported(case.backend, case.spec)
        if reasons and skip_unsupported:
            skips[case] = "; ".join(reasons)
        elif reasons:
            lines.extend(f"{where}: {p}" for p in reasons)
            skippable = True
    if skippable:
        lines.append(
            "(--skip-unavailable records configurations a backend cannot run as skipped and "
            "runs the rest)"
        )
    if not cases:
        lines.append("the sweep is empty")
    if lines:
        # Duplicate lines (same problem in many configs that differ only elsewhere) stay: each
        # names its configuration, which is what the user needs to fix the grid.
        raise SpecError("\n".join(lines))
    return skips
