"""The two sides of a comparison: one environment of a run, relabelled as a plain run's, and
the two environments of an interleaved run."""

from __future__ import annotations

from typing import Any

from dscbench.compare.model import CompareError
from dscbench.env import hardware_differences
from dscbench.results import ResultSet


def env_meta(meta: dict[str, Any], env: str) -> dict[str, Any]:
    """The facts recorded for one environment of an interleaved run, shaped like a run's meta
    (environment, backends, variables), for ``environment_differences``."""
    info = (meta.get("environments") or {}).get(env) or {}
    return {
        "environment": info.get("environment", {}),
        "backends": info.get("backends", {}),
        "variables": info.get("variables", {}),
    }


def select_runs(
    base: ResultSet,
    cand: ResultSet,
    allow_different_hardware: bool,
    baseline_env: str | None,
    candidate_env: str | None,
) -> tuple[ResultSet, ResultSet, list[str]]:
    """The chosen environment of each of two runs, and how their hardware differs; refused
    (CompareError) when it does and that is not allowed."""
    base = select_env(base, baseline_env, "--baseline-env")
    cand = select_env(cand, candidate_env, "--candidate-env")
    hardware = hardware_differences(base.meta, cand.meta)
    if hardware and not allow_different_hardware:
        raise CompareError(
            "the runs were measured on different hardware ("
            + "; ".join(hardware)
            + "); pass --allow-different-hardware to compare anyway"
        )
    return base, cand, hardware


def select_env(rs: ResultSet, env: str | None, flag: str) -> ResultSet:
    """The rows of one environment of ``rs`` (``env``), relabelled as a plain run's; a run with
    one environment needs no choice."""
    present = sorted(set(rs.results.env))
    if env is None:
        if len(present) > 1:
            listed = ", ".join(present)
            raise CompareError(
                f"{flag.replace('-env', '')} run measured environments {listed}; pick one "
                f"with {flag}"
            )
        env = present[0] if present else ""
    elif env not in present:
        shown = ", ".join(e or '""' for e in present) or "none"
        raise CompareError(f"{flag} {env!r}: that run has environments {shown}")
    results = rs.results[rs.results.env == env].assign(env="")
    samples = rs.samples[rs.samples.env == env].assign(env="")
    meta = dict(rs.meta)
    if env:
        facts = env_meta(rs.meta, env)
        meta.update(environment=facts["environment"] or meta.get("environment", {}))
        meta.update(backends=facts["backends"] or meta.get("backends", {}))
        meta["variables"] = facts["variables"]
    return ResultSet(meta, results, samples)


def run_envs(rs: ResultSet) -> list[str]:
    """The environments a run measured, in the order they were given (run.json), else sorted."""
    listed = list((rs.meta.get("environments") or {}).keys())
    present = set(rs.results.env)
    return [e for e in listed if e in present] or sorted(present)


def pick_envs(
    rs: ResultSet, baseline_env: str | None, candidate_env: str | None
) -> tuple[str, str]:
    """The two environments of ``rs`` to compare: those named, or, when neither is, its only
    two (the first given is the baseline)."""
    envs = run_envs(rs)
    if baseline_env is None and candidate_env is None:
        if len(envs) != 2:
            if len(envs) < 2:
                raise CompareError(
                    "this run measured one environment; give a second run to compare it with, "
                    "or measure two with `dscbench run --env NAME=PYTHON --env NAME=PYTHON`"
                )
            raise CompareError(
                f"this run measured environments {', '.join(envs)}; pick two with "
                "--baseline-env and --candidate-env"
            )
        baseline_env, candidate_env = envs
    for flag, env in (("--baseline-env", baseline_env), ("--candidate-env", candidate_env)):
        if env is None:
            raise CompareError(f"{flag} is needed too (the run has {', '.join(envs)})")
        if env not in envs:
            raise CompareError(f"{flag} {env!r}: the run has environments {', '.join(envs)}")
    if baseline_env == candidate_env:
        raise CompareError(f"--baseline-env and --candidate-env are both {baseline_env!r}")
    assert baseline_env is not None and candidate_env is not None
    return baseline_env, candidate_env
