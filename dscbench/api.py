"""The Python API: what the command line does, as functions a notebook or a script calls.

The CLI is a thin shell over these: ``dscbench run`` parses its flags into ``build_sweep`` and
runs it like ``run`` (adding a progress bar and the table), ``show``/``report`` read with
``load``. ``dscbench.compare(a, b)`` is the compare package called as a function, which is
``compare.judge_runs``, what ``dscbench compare`` judges with (adding the rendering). Nothing
here prints unless asked (``run(..., quiet=False)``); errors are ``DscbenchError``s with the
one-line message the CLI would print::

    import dscbench

    rs = dscbench.run(in_channels=[32, 64], size=56, kernel=[3, 5], min_time=0.5, rounds=3)
    rs.results[["config_id", "variant", "latency_median_s", "speedup"]]
    old = dscbench.load("results/yesterday")
    dscbench.compare(old, rs).regressions
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dscbench.defaults import PROCESSES
from dscbench.errors import SpecError

if TYPE_CHECKING:
    from dscbench.results import ResultSet
    from dscbench.spec import Sweep


def keyword(axis: str) -> str:
    """How an axis is named in messages from ``sweep``/``run``: as their keyword."""
    return f"{axis}="


def flag(axis: str) -> str:
    """How an axis is named in messages from ``dscbench run``: as its flag."""
    return f"--{axis.replace('_', '-')}"


# The axes a caller may give, in the order they replace the sweep's.
GRID_AXES = ("model", "width_mult", "resolution", "depth", "input_shape", "optimizer", "batch",
             "in_channels", "out_channels", "size", "dims", "kernel", "stride", "dilation",
             "depth_multiplier", "dtype", "mode",
             "backend", "threads", "memory_format", "cache")  # fmt: skip
SETTINGS = ("min_time", "rounds", "warmup", "seed")
BACKEND_OPTIONS = ("ort_opt_level", "ort_threadpool", "compile_mode")


def build_sweep(
    axes: Mapping[str, Any],
    *,
    spec: str | Path | None = None,
    preset: str | None = None,
    bias: bool = False,
    twin: str = "separable",
    settings: Mapping[str, Any] | None = None,
    backend_options: Mapping[str, Any] | None = None,
    parity: bool = True,
    fresh: bool | None = None,
    name: Callable[[str], str] = keyword,
) -> Sweep:
    """The spec file's or preset's sweep (quick by default; ``model`` builds its own), with
    every axis in ``axes`` replaced (a list, a value, or a comma-separated string, as on the
    command line), then the settings and backend options given over the sweep's. Refuses, one
    line each, what is contradictory or out of range; ``name`` says how an axis is called in
    those lines."""
    from dscbench import spec as specs

    axes = {axis: value for axis, value in axes.items() if value is not None}
    unknown = sorted(set(axes) - set(GRID_AXES))
    if unknown:
        raise SpecError(f"{name(unknown[0])}: not an axis (axes: {', '.join(GRID_AXES)})")
    if spec is not None and preset is not None:
        raise SpecError(f"give either {name('spec')} or {name('preset')}, not both")
    if "model" in axes and (spec is not None or preset is not None):
        raise SpecError(
            f"{name('model')} builds its own sweep; give it without {name('spec')} or "
            f"{name('preset')}"
        )
    if "model" in axes:
        sweep = specs.Sweep([{}], source="<flags>")
    elif spec is not None:
        sweep = specs.load_spec_file(Path(spec))
    else:
        sweep = specs.load_preset(preset or "quick")
    for axis in GRID_AXES:
        if axis in axes:
            sweep.override(axis, specs.parse_axis(axis, _raw(axes[axis]), name(axis)))
    if "in_channels" in axes and "out_channels" not in axes:
        sweep.override("out_channels", [None])  # "equal to in-channels", not the preset's value
    if "size" in axes and "dims" not in axes:
        sweep.override("dims", [None])  # as the sizes given say, not the preset's dimensions
    if bias:
        sweep.override("bias", [True])
    if twin != "separable":
        sweep.override("twin", [twin])
    _apply_settings(sweep, settings or {}, backend_options or {}, parity=parity, fresh=fresh)
    return sweep


def _raw(value: Any) -> Any:
    """A keyword's value as parse_axis takes it: a string or scalar as given, a sequence as a
    list (a spec file's list)."""
    if isinstance(value, str) or not isinstance(value, Sequence):
        return value
    return list(value)


SETTING_TYPES = {"min_time": float, "rounds": int, "warmup": float, "seed": int}


def _typed(key: str, value: Any) -> Any:
    """A setting as its type (a number given as a string is read), or SpecError naming it."""
    kind = SETTING_TYPES[key]
    if isinstance(value, bool) or (kind is int and isinstance(value, float)):
        raise SpecError(f"{key}={value!r}: not {'an integer' if kind is int else 'a number'}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise SpecError(
            f"{key}={value!r}: not {'an integer' if kind is int else 'a number'}"
        ) from None


def _apply_settings(
    sweep: Sweep,
    settings: Mapping[str, Any],
    backend_options: Mapping[str, Any],
    *,
    parity: bool,
    fresh: bool | None,
) -> None:
    for key, value in settings.items():
        if value is not None:
            setattr(sweep.settings, key, _typed(key, value))
    if not parity:
        sweep.settings.parity = False
    if fresh is not None:
        sweep.settings.fresh = fresh
    for key, choice in backend_options.items():
        if choice is not None:
            setattr(sweep.options, key, str(getattr(choice, "value", choice)).strip().lower())
    problems = sweep.settings.validate() + sweep.options.validate()
    if problems:
        raise SpecError("\n".join(problems))


def sweep(
    *,
    spec: str | Path | None = None,
    preset: str | None = None,
    bias: bool = False,
    twin: str = "separable",
    parity: bool = True,
    fresh: bool | None = None,
    **axes_and_settings: Any,
) -> Sweep:
    """A sweep from keywords: axes (``in_channels=[32, 64]``, ``size=56``, ``kernel="3,5"``,
    ``model="mobilenet-v1"``, ``backend=["torch-cpu", "onnxruntime-cpu"]``, ...; README
    'Choosing what to sweep'), settings (``min_time``, ``rounds``, ``warmup``, ``seed``) and
    backend options (``ort_opt_level``, ``ort_threadpool``, ``compile_mode``), over a preset
    (quick by default) or a spec file. ``sweep().cases(threads)`` lists what it would run."""
    settings = {k: axes_and_settings.pop(k) for k in SETTINGS if k in axes_and_settings}
    options = {k: axes_and_settings.pop(k) for k in BACKEND_OPTIONS if k in axes_and_settings}
    return build_sweep(
        axes_and_settings,
        spec=spec,
        preset=preset,
        bias=bias,
        twin=twin,
        settings=settings,
        backend_options=options,
        parity=parity,
        fresh=fresh,
    )


def run(
    sweep_: Sweep | None = None,
    *,
    output: str | Path | None = None,
    processes: int = PROCESSES,
    envs: Sequence[str] = (),
    force: bool = False,
    quiet: bool = True,
    console: Any = None,
    **options: Any,
) -> ResultSet:
    """Measure a sweep (``sweep_``, or one built from the keywords as ``sweep`` builds it) and
    return the run as a ResultSet (``.results`` and ``.samples`` DataFrames, ``.meta``).

    The run is written to ``output`` (default ``results/<UTC time>-<host>``, as the CLI), so
    nothing measured is lost and ``load``/``dscbench show`` read it again. ``processes`` and
    ``envs`` are ``--processes`` and ``--env``; other run options (``canary``, ``precision``,
    ``decide``, ``max_time``, ``skip_unavailable``, ``verify_counts``, ``calibrate``,
    ``start_method``, ``between_run_sd``;
    ``dry_run`` is not one) are keywords too. ``quiet=False`` prints the progress bar and the
    table to ``console`` (a rich Console; default: standard output). A run some of whose rows
    failed is returned (their ``status`` says why); one interrupted (Ctrl-C) returns what it
    measured, with ``meta["status"] == "interrupted"``. Bad input raises a DscbenchError."""
    from rich.console import Console

    from dscbench import results
    from dscbench.commands.run.execute import execute  # imports torch
    from dscbench.commands.run.options import DEFAULT_MAX_TIME_S, RunOptions, default_output

    run_keys = ("canary", "precision", "decide", "max_time", "skip_unavailable", "verify_counts",
                "calibrate", "interleave", "breakdown", "max_configs", "shard",
                "start_method", "between_run_sd")  # fmt: skip
    chosen = {k: options.pop(k) for k in run_keys if k in options}
    if "start_method" in chosen:
        from dscbench.commands.run.options import StartMethod

        methods = [m.value for m in StartMethod]
        if chosen["start_method"] not in methods:
            raise SpecError(
                f"start_method={chosen['start_method']!r}: choose one of {', '.join(methods)}"
            )
    if sweep_ is None:
        sweep_ = sweep(**options)
    elif options:
        raise SpecError(f"{sorted(options)[0]}=: give the axes to sweep(), or no sweep to run()")
    if chosen.get("precision") is not None and chosen.get("decide") is not None:
        raise SpecError("precision= and decide= each add rounds to their own end; give one")
    if (chosen.get("precision") or chosen.get("decide")) and chosen.get("max_time") is None:
        chosen["max_time"] = DEFAULT_MAX_TIME_S
    out = Path(output) if output is not None else default_output()
    settings = RunOptions(
        output=out, force=force, quiet=quiet, envs=list(envs), processes=processes, **chosen
    )
    if console is None:
        console = Console(file=io.StringIO()) if quiet else Console()
    execute(sweep_, settings, console=console, command_started=time.perf_counter())
    return results.load_results(out)


def load(path: str | Path) -> ResultSet:
    """A stored run: a run directory, a results file, or a JSON export (``dscbench export``)."""
    from dscbench import results

    return results.load_results(Path(path))
