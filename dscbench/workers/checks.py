"""What is checked and counted of a case's variants besides their speed: user models before
anything runs, and on a case's first build its peak memory and a network's counts, the counts
against fvcore and the outputs against the float64 reference.

The checks write into a PrepareReport; local.LocalExecutor decides when each runs and times it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from dscbench import counting
from dscbench.spec import VARIANTS, Spec
from dscbench.workers.failures import fail, is_user_spec, is_workload_failure, one_line
from dscbench.workers.protocol import COUNT_MISMATCH, OK, PARITY_FAILED, PrepareReport

if TYPE_CHECKING:
    from dscbench.backends.base import Prepared


def user_model_problems(specs: list[Spec]) -> list[str]:
    """Load and build every user model once (both variants, run once on its input shape on the
    meta device, in its mode), so one that does not import, build, fit its input or return one
    tensor is one line before anything is measured."""
    from dscbench.errors import ModelError

    problems = []
    seen = set()
    for spec in specs:
        if not is_user_spec(spec):
            continue
        from dscbench.models.twins import check_output  # imports torch: user models only

        key = (spec.model, spec.twin, spec.input_shape, spec.mode)
        if key in seen:
            continue
        seen.add(key)
        try:
            for v in VARIANTS:
                module = _build(spec, v)
                check_output(spec.model, v, meta_forward(module, spec))
                counting.layer_counts(module, spec.input_dims(), training=False)
        except ModelError as exc:
            problems.append(str(exc))
        except Exception as exc:
            c, h, w = spec.input_shape
            problems.append(
                f"--model {spec.model!r} ({v}) does not run on --input-shape {c},{h},{w}: "
                f"{one_line(exc)}"
            )
    return problems


def _build(spec: Spec, variant: str) -> Any:
    from dscbench import ops

    return ops.build(spec, variant)


def meta_forward(module: Any, spec: Spec) -> Any:
    """What ``module`` (moved to the meta device, in the spec's mode) returns for the spec's
    input: shapes only, no arithmetic and no memory."""
    import torch

    from dscbench import ops

    training = spec.mode == "training"
    module = module.to("meta").train(training)
    x = torch.empty(spec.input_dims(), device="meta", dtype=ops.TORCH_DTYPES[spec.dtype])
    with torch.set_grad_enabled(training):
        return module(x)


def checked(spec: Spec, report: PrepareReport, what: str, check: Callable[[], None]) -> bool:
    """Run ``check()``; False, with the case failed in ``report``, when it raised a workload's
    failure (``is_workload_failure``). A bug in dscbench propagates with its traceback."""
    from dscbench.errors import DscbenchError

    try:
        check()
    except Exception as exc:
        if not is_workload_failure(spec, exc):
            raise
        detail = str(exc) if isinstance(exc, DscbenchError) else one_line(exc)
        fail(report, exc, error=f"{what}: {detail}")
        return False
    return True


def first_build(spec: Spec, prepared: Mapping[str, Prepared], report: PrepareReport) -> None:
    """Peak memory and kernels of each variant (neither in a worker counting instructions,
    where the count's first call names the kernels), and a network's counts and breakdown (a
    conv layer's counts are closed forms the coordinator computes itself)."""
    from dscbench.instructions import under_valgrind
    from dscbench.kernels import describe

    counted = under_valgrind()  # peak memory is a timed run's: minutes under valgrind
    for v in VARIANTS:
        p = prepared[v]
        if p.memory is not None and not counted:
            report.peak_memory_bytes[v] = p.memory()
        if p.kernels is not None and not counted:  # a count's first call named them
            t0 = time.perf_counter()
            found = p.kernels()
            report.phases["kernels"] = report.phases.get("kernels", 0.0) + time.perf_counter() - t0
            report.kernels[v] = describe(found.kernels)
            if found.warning():
                report.warnings[v] = found.warning()
        if spec.kind == "model" and p.module is not None:
            records = counting.layer_counts(p.module, spec.input_dims(), spec.mode == "training")
            report.counts[v] = asdict(counting.model_counts(records))
            report.breakdown[v] = counting.breakdown(records)


def macs(spec: Spec, variant: str, module: Any) -> int:
    """A variant's multiply-accumulates: a layer's closed form, a network's from its layers
    (counted on the meta device); 0 for a network without a torch module."""
    if spec.kind != "model":
        return counting.closed_form(spec, variant).macs
    if module is None:
        return 0
    records = counting.layer_counts(module, spec.input_dims(), spec.mode == "training")
    return counting.model_counts(records).macs


def check_parity(
    spec: Spec, prepared: Mapping[str, Prepared], seed: int, report: PrepareReport
) -> None:
    """Each variant's output against the float64 reference built with the same ``seed``."""
    from dscbench import parity
    from dscbench.models.twins import check_output

    problems = []
    for v in VARIANTS:
        output = prepared[v].output()
        if is_user_spec(spec):
            check_output(spec.model, v, output)  # run time can differ from the meta device
        result = parity.check(output, parity.reference_output(spec, v, seed), spec.dtype)
        report.parity[v] = asdict(result)
        if not result.passed:
            problems.append(f"{v}: {result.problem}")
    if problems:
        report.status, report.error = PARITY_FAILED, "; ".join(problems)


def verify_counts(spec: Spec, prepared: Mapping[str, Prepared], report: PrepareReport) -> None:
    """Each variant's counts (closed forms, or a network's traced ones) against fvcore's."""
    problems = []
    for v in VARIANTS:
        p = prepared[v]
        if p.module is None:
            continue  # a backend without a torch module (fakes, future exported graphs)
        if spec.kind == "model":
            if v not in report.counts:
                continue
            expected = counting.Counts(**report.counts[v])
        else:
            expected = counting.closed_form(spec, v)
        mismatch = counting.cross_check(expected, p.module, p.example_input)
        if mismatch:
            problems.append(f"{v}: {mismatch}")
    if problems and report.status == OK:
        report.status, report.error = COUNT_MISMATCH, "; ".join(problems)
