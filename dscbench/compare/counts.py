"""Judging instruction counts (``dscbench run --measure instructions``): no interval, since
counts are deterministic (a run's processes agree to the instruction, or the run says they do
not), so any change beyond the threshold is a verdict.

At threshold t, on r = candidate / baseline instructions per iteration of a row: ``slower`` if
r > 1 + t, ``faster`` if r < 1 / (1 + t), else ``same``. Rows missing or failing on a side are
settled as in a timing comparison (``match.match_rows``), with the same kernel notes.
"""

from __future__ import annotations

import math

import pandas as pd

from dscbench.compare.match import incomplete_notes, join, match_rows
from dscbench.compare.model import Change, CompareError, Comparison, Verdict
from dscbench.compare.sides import env_meta, pick_envs, select_env, select_runs
from dscbench.env import environment_differences
from dscbench.results import ResultSet

METRIC = "instructions"


def counted(rs: ResultSet) -> bool:
    """Whether ``rs`` counted instructions (``dscbench run --measure instructions``)."""
    return rs.meta.get("harness", {}).get("measure") == METRIC


def _values(results: pd.DataFrame) -> dict[tuple, tuple[float, float]]:
    """key -> (instructions per iteration, spread between its processes as a fraction)."""
    ok = results[results.instructions.notna()]
    keys = zip(ok.config_id, ok.backend, ok.env, ok.variant, strict=True)
    return dict(zip(keys, zip(ok.instructions, ok.instructions_spread, strict=True), strict=True))


def judge_counts(
    base: ResultSet,
    cand: ResultSet,
    threshold: float,
    *,
    design: str = "sequential",
    envs: tuple[str, str] = ("", ""),
    environment: list[tuple[str, str, str]] | None = None,
    hardware_differs: bool = False,
) -> Comparison:
    """Every row's verdict on its instructions per iteration (module doc)."""
    for name, rs in (("baseline", base), ("candidate", cand)):
        if not counted(rs):
            raise CompareError(
                f"--metric instructions: the {name} did not count instructions (measure it "
                "with `dscbench run --measure instructions`)"
            )
    values_b, values_c = _values(base.results), _values(cand.results)
    matched = match_rows(base.results, cand.results, "latency", values_b, values_c)
    matched.fail_unmeasured(
        lambda key: "" if key in values_b else "baseline counted no instructions",
        lambda key: "" if key in values_c else "candidate counted no instructions",
    )
    changes = dict(matched.settled)
    bound = math.log1p(threshold)
    for key in matched.comparable:
        (b, _), (c, spread) = values_b[key], values_c[key]
        d = math.log(c / b)
        verdict = Verdict.SLOWER if d > bound else Verdict.FASTER if d < -bound else Verdict.SAME
        changes[key] = Change.of(
            key,
            matched.labels[key],
            verdict=verdict,
            baseline=b,
            candidate=c,
            ratio=c / b,
            ci_low=c / b,
            ci_high=c / b,
            rounds=(1, 1),
            note=join(matched.counts.get(key)),
            spread=spread,
        )
    notes = incomplete_notes({"baseline": base, "candidate": cand})
    notes.append(
        "instruction counts under valgrind (callgrind): exact, so every change beyond the "
        "threshold is a verdict; they do not see memory stalls, which dominate depthwise convs"
    )
    return Comparison(
        metric=METRIC,
        threshold=threshold,
        confidence=math.nan,
        changes=[matched.with_kernels(changes[k]) for k in matched.keys],
        environment=environment or [],
        hardware_differs=hardware_differs,
        notes=notes,
        design=design,
        envs=envs,
    )


def compare_count_sets(
    base: ResultSet,
    cand: ResultSet,
    threshold: float,
    allow_different_hardware: bool,
    baseline_env: str | None,
    candidate_env: str | None,
) -> Comparison:
    """Two runs that counted instructions (sequential design)."""
    base, cand, hardware = select_runs(
        base, cand, allow_different_hardware, baseline_env, candidate_env
    )
    return judge_counts(
        base,
        cand,
        threshold,
        environment=environment_differences(base.meta, cand.meta),
        hardware_differs=bool(hardware),
    )


def compare_count_envs(
    rs: ResultSet, threshold: float, baseline_env: str | None, candidate_env: str | None
) -> Comparison:
    """Two environments of one run that counted instructions (interleaved design)."""
    envs = pick_envs(rs, baseline_env, candidate_env)
    return judge_counts(
        select_env(rs, envs[0], "--baseline-env"),
        select_env(rs, envs[1], "--candidate-env"),
        threshold,
        design="interleaved",
        envs=envs,
        environment=environment_differences(env_meta(rs.meta, envs[0]), env_meta(rs.meta, envs[1])),
    )
