"""`dscbench run`: its options, and the sweep and settings they ask for (flags over a preset or
spec file); ``execute`` (execute.py, which imports torch) does the work. Light: cli.py
imports this module for ``--help``."""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from dscbench import api
from dscbench.commands import common
from dscbench.commands.run.options import (
    DEFAULT_MAX_TIME_S,
    Interleave,
    Measure,
    RunOptions,
    StartMethod,
    Twin,
    check_interleave,
    check_measure,
    check_run_flags,
    default_output,
)
from dscbench.defaults import BETWEEN_RUN_SD, PROCESSES
from dscbench.errors import SpecError
from dscbench.spec import CompileMode, OrtOptLevel, OrtThreadpool, parse_fraction

if TYPE_CHECKING:
    pass

app = typer.Typer()

ListOpt = Annotated[str | None, typer.Option(help="Comma-separated list; overrides the preset.")]


def finite_seconds(value: float | None) -> float | None:
    """Refuse inf, which a range check lets through, and nan (older typers' click lets it
    through the range check too: it compares false)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"{value} is not a finite number of seconds")
    return value


def decide_fraction(text: str) -> float:
    """--decide as a fraction: '5%' or '0.05', between 0 and 100% (exclusive)."""
    threshold = parse_fraction("--decide", text)
    if not 0 < threshold < 1:
        raise SpecError(f"--decide {text!r}: must be between 0 and 100%")
    return threshold


def precision_fraction(text: str) -> float:
    """--precision as a fraction: '1%' or '0.01', between 0 and 100% (exclusive)."""
    target = parse_fraction("--precision", text)
    if not 0 < target < 1:
        raise SpecError(f"--precision {text!r}: must be between 0 and 100%")
    return target


@app.command()
def run(
    ctx: typer.Context,
    *,
    batch: ListOpt = None,
    in_channels: ListOpt = None,
    out_channels: Annotated[
        str | None,
        typer.Option(help="Comma-separated list; default: equal to --in-channels."),
    ] = None,
    size: Annotated[
        str | None,
        typer.Option(
            help="Input sizes, comma-separated: '56' (every dimension), '56x48' (HxW), "
            "'8x56x56' (DxHxW, a Conv3d's input)."
        ),
    ] = None,
    dims: Annotated[
        str | None,
        typer.Option(
            help="Spatial dimensions of the layer: 1 (Conv1d: a size is a length), 2 (Conv2d), "
            "3 (Conv3d); default: as --size says (2 for '56'). Comma-separated."
        ),
    ] = None,
    kernel: Annotated[str | None, typer.Option(help="Odd kernel sizes, comma-separated.")] = None,
    stride: ListOpt = None,
    dilation: Annotated[
        str | None,
        typer.Option(help="Dilations of both variants' KxK convs (atrous), comma-separated."),
    ] = None,
    depth_multiplier: Annotated[
        str | None,
        typer.Option(
            help="The separable twin's depthwise outputs per input channel (Keras' "
            "depth_multiplier), comma-separated."
        ),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32, float16, bfloat16, float64; comma-separated.")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="inference, training (forward, loss, backward, optimizer step); comma-separated."
        ),
    ] = None,
    optimizer: Annotated[
        str | None,
        typer.Option(help="Training optimizer: sgd (momentum 0.9), adam; comma-separated."),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Whole networks instead of single layers: mobilenet-v1, mobilenet-v2, "
            "xception-middle, article, or package.module:callable (a model of your own, with "
            "--input-shape); comma-separated. Each runs as itself and as its twin."
        ),
    ] = None,
    width_mult: Annotated[
        str | None, typer.Option(help="MobileNet width multipliers, e.g. 0.25,0.5,0.75,1.0.")
    ] = None,
    resolution: Annotated[
        str | None, typer.Option(help="MobileNet input resolutions, e.g. 128,160,192,224.")
    ] = None,
    depth: Annotated[
        str | None, typer.Option(help="Xception middle-flow blocks (default 8).")
    ] = None,
    input_shape: Annotated[
        str | None,
        typer.Option(help="C,H,W of a model of your own (several: separate with ';')."),
    ] = None,
    twin: Annotated[
        Twin,
        typer.Option(
            case_sensitive=False,
            help="A model of your own is the standard variant and its twin gets depthwise-"
            "separable convs (separable), or it is the separable one and its twin gets dense "
            "convs (dense).",
        ),
    ] = Twin.separable,
    breakdown: Annotated[
        bool,
        typer.Option(
            "--breakdown", help="Print MACs and params per layer type of each model variant."
        ),
    ] = False,
    max_configs: Annotated[
        int,
        typer.Option(
            min=1,
            help="Refuse sweeps of more configurations than this (a typo can ask for millions).",
        ),
    ] = 2000,
    yes: Annotated[
        bool, typer.Option("--yes", help="Run a sweep of any size (no --max-configs limit).")
    ] = False,
    shard: Annotated[
        str | None,
        typer.Option(
            help="K/N: run only shard K of N (a stable hash of each configuration), or auto "
            "(Slurm job arrays; Kubernetes Indexed Jobs with --shards N).",
        ),
    ] = None,
    shards: Annotated[
        int | None,
        typer.Option(min=1, help="N for --shard auto where the scheduler does not say it."),
    ] = None,
    calibrate: Annotated[
        bool,
        typer.Option(
            "--calibrate",
            help="Measure peak FLOP/s and memory bandwidth first (`dscbench calibrate`) for "
            "the efficiency columns; without it a cached calibration is used if there is one.",
        ),
    ] = False,
    backend: Annotated[
        str | None,
        typer.Option(
            help="Backends, comma-separated, or 'all' for every available one "
            "(`dscbench backends` lists them). Default: torch-cpu."
        ),
    ] = None,
    memory_format: Annotated[
        str | None, typer.Option(help="contiguous (NCHW), channels_last (NHWC); comma-separated.")
    ] = None,
    cache: Annotated[
        str | None, typer.Option(help="warm, cold (each call reads uncached copies); comma-sep.")
    ] = None,
    threads: Annotated[
        str | None,
        typer.Option(help="Intra-op thread counts, comma-separated; default: what torch uses."),
    ] = None,
    bias: Annotated[bool, typer.Option("--bias", help="Give every conv a bias.")] = False,
    spec: Annotated[
        Path | None, typer.Option(help="A TOML sweep spec (see README 'Spec files').")
    ] = None,
    preset: Annotated[
        str | None, typer.Option(help="A shipped preset (`dscbench presets`); default: quick.")
    ] = None,
    min_time: Annotated[
        float | None,
        typer.Option(
            min=0,
            callback=finite_seconds,
            help="Seconds of timed blocks per variant per configuration, all rounds.",
        ),
    ] = None,
    rounds: Annotated[
        int | None,
        typer.Option(min=1, help="Rounds over the shuffled configurations (default 5)."),
    ] = None,
    warmup: Annotated[
        float | None,
        typer.Option(
            min=0, callback=finite_seconds, help="Warm-up seconds per variant before calibration."
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option(min=0, help="Seed for weights, inputs and order.")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Run directory (default results/<UTC time>-<host>)."),
    ] = None,
    force: Annotated[
        bool, typer.Option(help="Write into an existing, non-empty --output.")
    ] = False,
    resume: Annotated[
        Path | None,
        typer.Option(
            help="Finish the interrupted or killed run in this directory: give the command it "
            "was started with, plus --resume DIR instead of -o. Measures only the rounds and "
            "configurations that are missing; refuses a different sweep, settings, dscbench "
            "version or hardware.",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(help="Validate and list the configurations with their counts; no timing."),
    ] = False,
    verify_counts: Annotated[
        bool, typer.Option(help="Cross-check closed-form params/MACs with fvcore per config.")
    ] = True,
    skip_unavailable: Annotated[
        bool,
        typer.Option(
            help="Record configurations an unavailable backend (or one lacking the dtype or "
            "memory format) cannot run as skipped, and run the rest, instead of exiting 2."
        ),
    ] = False,
    parity: Annotated[
        bool,
        typer.Option(help="Check every output against a float64 reference before timing."),
    ] = True,
    fresh: Annotated[
        bool | None,
        typer.Option(
            "--fresh/--no-fresh",
            help="Rebuild every configuration's tensors on each visit (default), so where memory "
            "places them varies from round to round instead of biasing the whole run; builds "
            "costing over 5% of a visit (compilation) are kept.",
            show_default=False,
        ),
    ] = None,
    ort_opt_level: Annotated[
        OrtOptLevel | None,
        typer.Option(
            case_sensitive=False,
            metavar="<level>",
            help="onnxruntime graph optimisation: disable, basic, extended, all.",
        ),
    ] = None,
    ort_threadpool: Annotated[
        OrtThreadpool | None,
        typer.Option(
            case_sensitive=False,
            metavar="<pool>",
            help="onnxruntime-cpu thread pool: auto, global, session (see README).",
        ),
    ] = None,
    compile_mode: Annotated[
        CompileMode | None,
        typer.Option(
            case_sensitive=False,
            metavar="<mode>",
            help="torch.compile mode: default, reduce-overhead, max-autotune, "
            "max-autotune-no-cudagraphs.",
        ),
    ] = None,
    env: Annotated[
        list[str] | None,
        typer.Option(
            "--env",
            help="NAME=PYTHON[:VAR=VALUE,...]: measure in a worker process started with that "
            "interpreter (empty: this one) and variables; give it twice or more to interleave "
            "environments block by block (README 'Interleaved environments').",
        ),
    ] = None,
    precision: Annotated[
        float | None,
        typer.Option(
            parser=precision_fraction,
            metavar="<fraction>",
            help="Keep adding rounds until every speedup interval is within +/-this (1% or "
            "0.01), or --max-time runs out.",
        ),
    ] = None,
    decide: Annotated[
        float | None,
        typer.Option(
            parser=decide_fraction,
            metavar="<fraction>",
            help="Keep adding rounds, each in fresh worker processes, until every row's "
            "question is settled at this threshold (5% or 0.05; with several --env: each "
            "environment's latency against the first's; else the speedup against 1x), or "
            "--max-time runs out.",
        ),
    ] = None,
    max_time: Annotated[
        float | None,
        typer.Option(
            min=0, help="Seconds the whole run may take while --precision or --decide adds rounds."
        ),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes per environment; round r runs in process r mod N, and "
            "intervals are over processes (a process's rounds averaged first), so what differs "
            "between processes shows in them. 1 measures a plain run in this process.",
        ),
    ] = PROCESSES,
    between_run_sd: Annotated[
        float,
        typer.Option(
            min=0,
            max=1,
            metavar="<fraction>",
            help="How far a speedup moves between runs on this machine (standard deviation, "
            "about relative): the rerun interval (speedup_rerun_low/high) adds it to twice "
            "the run's own sampling error. The default was measured on reruns of a busy 2-core "
            "VM (benchmarks/REPORT-decide.md); a quiet, dedicated machine can set less.",
        ),
    ] = BETWEEN_RUN_SD,
    measure: Annotated[
        Measure,
        typer.Option(
            case_sensitive=False,
            help="'time' each variant, or count its 'instructions' per call under valgrind "
            "(callgrind; deterministic, blind to memory stalls; needs valgrind installed). "
            "Counting takes each row once per worker process (one, unless --processes says); "
            "timing options do not apply.",
        ),
    ] = Measure.time,
    jobs: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="--measure instructions: worker processes per environment that count at the "
            "same time, each row in one of them (default: one per CPU this process may use). "
            "Counts do not depend on what else runs.",
        ),
    ] = None,
    start_method: Annotated[
        StartMethod,
        typer.Option(
            case_sensitive=False,
            help="How worker processes start: 'fork' them from one process per environment "
            "that has imported torch (each is still a new process, with its own heap and "
            "caches), or 'spawn' a fresh interpreter for each (seconds more per process).",
        ),
    ] = StartMethod.fork,
    interleave: Annotated[
        Interleave,
        typer.Option(
            case_sensitive=False,
            help="With several --env: 'env' runs a set's environments in random order, each "
            "one's two variants back to back; 'block' shuffles every environment x variant "
            "block (more mixing, twice the switches between worker processes).",
        ),
    ] = Interleave.env,
    canary: Annotated[
        bool,
        typer.Option(help="Time the machine canary after every visit (compare uses it)."),
    ] = True,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or table.")] = False,
) -> None:
    """Sweep configurations and measure standard vs depthwise-separable convolution."""
    if resume is not None and not given(ctx, exclude={"resume", "quiet"}):
        raise typer.Exit(resume_as_recorded(ctx, resume, quiet))
    command_started = time.perf_counter()
    check_interleave(interleave, several_envs=len(env or []) >= 2)
    sweep = api.build_sweep(
        {axis: ctx.params[axis] for axis in api.GRID_AXES},
        spec=spec,
        preset=preset,
        bias=bias,
        twin=twin.value,
        settings={"min_time": min_time, "rounds": rounds, "warmup": warmup, "seed": seed},
        backend_options={
            "ort_opt_level": ort_opt_level,
            "ort_threadpool": ort_threadpool,
            "compile_mode": compile_mode,
        },
        parity=parity,
        fresh=fresh,
        name=api.flag,
    )
    check_run_flags(precision, decide, max_time, resume, output, dry_run)
    check_measure(measure, precision, decide, jobs)
    options = RunOptions(
        output=resume or (output if output is not None else default_output()),
        resume=resume is not None,
        force=force,
        dry_run=dry_run,
        verify_counts=verify_counts,
        skip_unavailable=skip_unavailable,
        quiet=quiet,
        envs=list(env or []),
        precision=precision,
        decide=decide,
        max_time=max_time
        if max_time is not None
        else (DEFAULT_MAX_TIME_S if precision or decide else None),
        canary=canary,
        interleave=interleave.value,
        processes=processes,
        processes_given=getattr(ctx.get_parameter_source("processes"), "name", "DEFAULT")
        != "DEFAULT",
        start_method=start_method.value,
        measure=measure.value,
        jobs=jobs,
        between_run_sd=between_run_sd,
        breakdown=breakdown,
        calibrate=calibrate,
        max_configs=sys.maxsize if yes else max_configs,
        shard=shard_of_run(shard, shards),
    )
    from dscbench.commands.run.execute import execute  # imports torch

    code = execute(sweep, options, console=common.console, command_started=command_started)
    raise typer.Exit(code)


def shard_of_run(text: str | None, count: int | None) -> Any:
    import os

    from dscbench import shards as sharding

    return sharding.parse(text, os.environ, count)


def given(ctx: typer.Context, exclude: set[str]) -> list[str]:
    """The parameters of ``ctx`` set on the command line (or by environment variables)."""
    return [
        name
        for name in ctx.params
        if name not in exclude
        and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT",)
    ]


def resume_as_recorded(ctx: typer.Context, directory: Path, quiet: bool) -> int:
    """``run --resume DIR`` alone: the command the run was started with, replayed with
    ``--resume DIR`` (its sweep and settings as recorded) through the root command, as if
    typed; its exit code."""
    from dscbench import results
    from dscbench.commands.run.resume import resume_arguments

    if not (Path(directory) / results.RUN_JSON).is_file():
        raise SpecError(
            f"--resume {directory}: no {results.RUN_JSON}: not a dscbench run directory"
        )
    meta = results.read_meta(directory)
    command = meta.get("command") or []
    if len(command) < 2 or command[1] != "run":
        raise SpecError(
            f"--resume {directory}: its run.json does not record a `dscbench run` command "
            f"({command!r}); give the sweep's arguments with --resume"
        )
    args = resume_arguments(command)
    common.err_console.print(
        Text(f"resuming with the recorded command: dscbench run {' '.join(args)}"),
        highlight=False,
    )
    root = ctx.find_root().command
    code = root.main(
        args=["run", *args, "--resume", str(directory), *(["--quiet"] if quiet else [])],
        standalone_mode=False,
    )
    return code if isinstance(code, int) else 0
