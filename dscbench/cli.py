"""The command line: parse -> call core -> render -> exit code. No statistics, no file formats.

Heavy modules (torch, pandas) are imported inside the commands that need them, so ``--help``,
``--version`` and ``presets`` start fast.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from dscbench import __version__
from dscbench.defaults import CONFIDENCE, THRESHOLD
from dscbench.errors import DscbenchError, SpecError

app = typer.Typer(
    name="dscbench",
    help="Measure what depthwise-separable convolution buys on this machine, against standard "
    "convolution: params, MACs and real latency, with statistics you can trust.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


# Piped output (CI logs, files) gets a wide table instead of rich's 80-column default;
# a terminal keeps its own width.
class _PipeSafe:
    """Standard output that survives its reader going away (``dscbench run ... | head -1``):
    on a broken pipe, output goes to /dev/null from then on, as CLI tools do, and the command
    finishes its work (a sweep keeps measuring and writes its result files). The exit code
    stays the command's own."""

    def __init__(self) -> None:
        self.broken = False

    @property
    def stream(self) -> Any:
        return sys.stdout  # looked up on every write, as rich does (CliRunner swaps it)

    def write(self, text: str) -> int:
        if self.broken:
            return len(text)
        try:
            return self.stream.write(text)
        except BrokenPipeError:
            self._divert()
            return len(text)

    def flush(self) -> None:
        if self.broken:
            return
        try:
            self.stream.flush()
        except BrokenPipeError:
            self._divert()

    def _divert(self) -> None:
        import os

        self.broken = True
        try:  # the interpreter's own flush at exit must not hit the closed pipe either
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


console = Console(file=_PipeSafe(), width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)  # one problem, one line, however long

F = TypeVar("F", bound=Callable[..., Any])


def fail(exc: DscbenchError) -> NoReturn:
    """One red line per problem on stderr, then the error's exit code (2 for bad input)."""
    for line in str(exc).splitlines():
        err_console.print(Text("error: ", style="bold red") + Text(line), highlight=False)
    raise typer.Exit(exc.exit_code)


def user_errors(func: F) -> F:
    """Turn DscbenchError into a one-line message and exit 2; bugs keep their traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except DscbenchError as exc:
            fail(exc)

    return wrapper  # type: ignore[return-value]


def _version(value: bool) -> None:
    if value:
        console.print(f"dscbench {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """dscbench: depthwise-separable vs standard convolution, measured."""


class Twin(str, Enum):
    """Which way a user model's twin is derived (models/twins.py)."""

    separable = "separable"
    dense = "dense"


class Interleave(str, Enum):
    """How a set orders its blocks when several environments are measured."""

    env = "env"
    block = "block"


JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ListOpt = Annotated[str | None, typer.Option(help="Comma-separated list; overrides the preset.")]


def _default_output() -> Path:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return Path("results") / f"{stamp}-{socket.gethostname()}"


def shard_of_run(text: str | None, count: int | None) -> Any:
    import os

    from dscbench import shards as sharding

    return sharding.parse(text, os.environ, count)


DEFAULT_MAX_TIME_S = 600.0  # how long --precision may keep adding rounds, unless --max-time


def _float_setting(name: str, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise SpecError(f"--{name} {value!r} is not a number of seconds") from None


def _int_setting(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise SpecError(f"--{name} {value!r} is not an integer") from None


@app.command()
@user_errors
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
        str | None, typer.Option(help="Input sizes, '56' or '56x48' (HxW), comma-separated.")
    ] = None,
    kernel: Annotated[str | None, typer.Option(help="Odd kernel sizes, comma-separated.")] = None,
    stride: ListOpt = None,
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
        str | None,
        typer.Option(help="Seconds of timed blocks per variant per configuration, all rounds."),
    ] = None,
    rounds: Annotated[
        str | None, typer.Option(help="Rounds over the shuffled configurations (default 5).")
    ] = None,
    warmup: Annotated[
        str | None, typer.Option(help="Warm-up seconds per variant before calibration.")
    ] = None,
    seed: Annotated[str | None, typer.Option(help="Seed for weights, inputs and order.")] = None,
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
        str | None,
        typer.Option(help="onnxruntime graph optimisation: disable, basic, extended, all."),
    ] = None,
    ort_threadpool: Annotated[
        str | None,
        typer.Option(help="onnxruntime-cpu thread pool: auto, global, session (see README)."),
    ] = None,
    compile_mode: Annotated[
        str | None,
        typer.Option(
            help="torch.compile mode: default, reduce-overhead, max-autotune, "
            "max-autotune-no-cudagraphs."
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
        str | None,
        typer.Option(
            help="Keep adding rounds until every speedup interval is within +/-this (1% or "
            "0.01), or --max-time runs out."
        ),
    ] = None,
    max_time: Annotated[
        str | None,
        typer.Option(help="Seconds the whole run may take while --precision adds rounds."),
    ] = None,
    processes: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes per environment; round r runs in process r mod N, so what "
            "differs between processes shows in the intervals. 1 measures a plain run in this "
            "process.",
        ),
    ] = 3,
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
    from dscbench import spec as specs

    if resume is not None and not _given(ctx, exclude={"resume", "quiet"}):
        raise typer.Exit(_resume_as_recorded(resume, quiet))
    command_started = time.perf_counter()
    if interleave is not Interleave.env and len(env or []) < 2:
        raise SpecError(
            f"--interleave {interleave.value} orders the blocks of several environments; give "
            "two or more --env"
        )
    if spec is not None and preset is not None:
        raise SpecError("give either --spec or --preset, not both")
    if model is not None and (spec is not None or preset is not None):
        raise SpecError("--model builds its own sweep; give it without --spec or --preset")
    if model is not None:
        sweep = specs.Sweep([{}], source="<flags>")
    else:
        sweep = (
            specs.load_spec_file(spec) if spec is not None else specs.load_preset(preset or "quick")
        )
    grid_flags = {
        "model": model,
        "width_mult": width_mult,
        "resolution": resolution,
        "depth": depth,
        "input_shape": input_shape,
        "optimizer": optimizer,
        "batch": batch,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "size": size,
        "kernel": kernel,
        "stride": stride,
        "dtype": dtype,
        "mode": mode,
        "backend": backend,
        "threads": threads,
        "memory_format": memory_format,
    }
    for axis, raw in grid_flags.items():
        if raw is not None:
            sweep.override(axis, specs.parse_axis(axis, raw, f"--{axis.replace('_', '-')}"))
    if in_channels is not None and out_channels is None:
        sweep.override("out_channels", [None])  # "equal to in-channels", not the preset's value
    if bias:
        sweep.override("bias", [True])
    if twin is not Twin.separable:
        sweep.override("twin", [twin.value])
    for name, value in (
        ("min_time", _float_setting("min-time", min_time)),
        ("rounds", _int_setting("rounds", rounds)),
        ("warmup", _float_setting("warmup", warmup)),
        ("seed", _int_setting("seed", seed)),
    ):
        if value is not None:
            setattr(sweep.settings, name, value)
    if not parity:
        sweep.settings.parity = False
    if fresh is not None:
        sweep.settings.fresh = fresh
    for name, value in (
        ("ort_opt_level", ort_opt_level),
        ("ort_threadpool", ort_threadpool),
        ("compile_mode", compile_mode),
    ):
        if value is not None:
            setattr(sweep.options, name, value.strip().lower())
    problems = sweep.settings.validate() + sweep.options.validate()
    if problems:
        raise SpecError("\n".join(problems))
    target = None if precision is None else specs.parse_fraction("--precision", precision)
    if target is not None and not 0 < target < 1:
        raise SpecError(f"--precision {precision!r}: must be between 0 and 100%")
    limit = _float_setting("max-time", max_time)
    if limit is not None and not limit > 0:
        raise SpecError(f"--max-time {max_time!r}: must be a positive number of seconds")
    if limit is not None and target is None:
        raise SpecError("--max-time limits --precision; give --precision too")

    if resume is not None and output is not None and Path(output) != Path(resume):
        raise SpecError(f"--resume {resume} writes into that run; leave out -o {output}")
    if resume is not None and dry_run:
        raise SpecError("--resume measures; it cannot be combined with --dry-run")

    from dscbench.commands import run as run_command  # imports torch

    options = run_command.RunOptions(
        output=resume or (output if output is not None else _default_output()),
        resume=resume is not None,
        force=force,
        dry_run=dry_run,
        verify_counts=verify_counts,
        skip_unavailable=skip_unavailable,
        quiet=quiet,
        envs=list(env or []),
        precision=target,
        max_time=limit if limit is not None else (DEFAULT_MAX_TIME_S if target else None),
        canary=canary,
        interleave=interleave.value,
        processes=processes,
        breakdown=breakdown,
        calibrate=calibrate,
        max_configs=sys.maxsize if yes else max_configs,
        shard=shard_of_run(shard, shards),
    )
    code = run_command.execute(sweep, options, console=console, command_started=command_started)
    raise typer.Exit(code)


def _given(ctx: typer.Context, exclude: set[str]) -> list[str]:
    """The parameters of ``ctx`` set on the command line (or by environment variables)."""
    return [
        name
        for name in ctx.params
        if name not in exclude
        and getattr(ctx.get_parameter_source(name), "name", "DEFAULT") not in ("DEFAULT",)
    ]


def _resume_as_recorded(directory: Path, quiet: bool) -> int:
    """``run --resume DIR`` alone: the command the run was started with, replayed with
    ``--resume DIR`` (its sweep and settings as recorded); its exit code."""
    from dscbench import results
    from dscbench.commands.run import resume_arguments

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
    err_console.print(
        Text(f"resuming with the recorded command: dscbench run {' '.join(args)}"),
        highlight=False,
    )
    code = app(
        args=["run", *args, "--resume", str(directory), *(["--quiet"] if quiet else [])],
        standalone_mode=False,
    )
    return code if isinstance(code, int) else 0


class Variant(str, Enum):
    standard = "standard"
    separable = "separable"


@app.command("show")
@user_errors
def show_run(
    run: Annotated[Path, typer.Argument(help="A run directory, results file or JSON export.")],
    *,
    backend: Annotated[
        str | None, typer.Option(help="Only these backends (comma-separated).")
    ] = None,
    variant: Annotated[
        Variant | None,
        typer.Option(case_sensitive=False, help="Only this variant: one line per row."),
    ] = None,
    where: Annotated[
        str | None,
        typer.Option(
            help="Only configurations where this holds, over the result columns, e.g. "
            "\"in_channels >= 64 and kernel == 3\" (README 'Columns')."
        ),
    ] = None,
    breakdown: Annotated[
        bool, typer.Option("--breakdown", help="Also print each model's layer-type breakdown.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Summary lines only.")] = False,
) -> None:
    """Print a stored run's table and summary again, as `dscbench run` printed them."""
    from dscbench.commands import show as command

    backends = [b.strip() for b in backend.split(",")] if backend else None
    code = command.execute(
        run, backends, variant.value if variant else None, where, breakdown, quiet, console
    )
    raise typer.Exit(code)


RunsArg = Annotated[
    list[Path], typer.Argument(help="Run directories, results files or JSON exports.")
]


class PlotKind(str, Enum):
    speedup = "speedup"
    roofline = "roofline"
    latency = "latency"
    breakeven = "breakeven"


@app.command("plot")
@user_errors
def plot_run(
    runs: RunsArg,
    *,
    kind: Annotated[
        PlotKind,
        typer.Option(
            case_sensitive=False,
            help="speedup (vs MAC reduction), roofline (needs a calibration), latency (vs "
            "channels), breakeven (where separable starts to win).",
        ),
    ],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The image: FILE.png, FILE.svg or FILE.pdf.")
    ],
) -> None:
    r"""Draw a stored run (needs matplotlib: pip install 'dscbench\[plot]')."""
    from dscbench.commands import report as command

    raise typer.Exit(command.plot(runs, kind.value, output))


class ReportFormat(str, Enum):
    markdown = "markdown"
    html = "html"
    csv = "csv"
    latex = "latex"


@app.command("report")
@user_errors
def report_runs(
    runs: RunsArg,
    *,
    fmt: Annotated[
        ReportFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="markdown, html (one self-contained file with plots), csv (the table), latex.",
        ),
    ] = ReportFormat.markdown,
    output: Annotated[
        str, typer.Option("--output", "-o", help="The file to write; - for stdout.")
    ] = "-",
) -> None:
    """Render runs as a report: summary, wins and losses, break-even channel counts, the full
    table and the environment."""
    from dscbench.commands import report as command
    from dscbench.export import write_output

    write_output(output, command.report(runs, fmt.value), inputs=runs)


@app.command("merge")
@user_errors
def merge_shards(
    runs: RunsArg,
    *,
    output: Annotated[Path, typer.Option("--output", "-o", help="The merged run directory.")],
    force: Annotated[bool, typer.Option(help="Write into an existing, non-empty -o.")] = False,
    allow_partial: Annotated[
        bool, typer.Option(help="Merge even if shards are missing or unfinished.")
    ] = False,
    allow_different_hardware: Annotated[
        bool, typer.Option(help="Merge shards measured on different hardware (marked so).")
    ] = False,
) -> None:
    """Union the shards of one sweep (`run --shard K/N`) into one run."""
    from dscbench import merge, results
    from dscbench.export import check_not_input

    check_not_input(output / results.RUN_JSON, runs)
    merged, breakdown = merge.merge_runs(
        runs, allow_partial=allow_partial, allow_different_hardware=allow_different_hardware
    )
    out = merge.write_merged(output, merged, breakdown, force)
    shards = len(merged.meta["merged_from"])
    console.print(
        f"Merged {shards} shards ({len(merged.results)} rows, status {merged.meta['status']}"
        + (", mixed hardware" if merged.meta["mixed_hardware"] else "")
        + f") into {out}/",
        highlight=False,
    )


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


@app.command("calibrate")
@user_errors
def calibrate_machine(
    *,
    device: Annotated[Device, typer.Option(case_sensitive=False, help="cpu or cuda.")] = Device.cpu,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Intra-op threads (the CPU; default: what torch uses)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the calibration as JSON.")] = False,
) -> None:
    """Measure peak FLOP/s (matrix products per dtype) and memory bandwidth (STREAM-like copy
    and triad); cache them for the efficiency columns and the roofline."""
    from dscbench.commands import calibrate as command  # imports torch

    raise typer.Exit(command.execute(device.value, threads, as_json, console))


@app.command()
@user_errors
def presets() -> None:
    """List the shipped presets: what they sweep and how long they measure."""
    from dscbench import spec as specs

    table = Table(header_style="bold")
    for col in ("preset", "configurations", "min-time/variant", "rounds", "description"):
        table.add_column(col)
    for name in specs.preset_names():
        sweep = specs.load_preset(name)
        n = len(sweep.cases(default_threads=1))
        s = sweep.settings
        table.add_row(name, str(n), f"{s.min_time:g} s", str(s.rounds), sweep.description)
    console.print(table)


class CompareMetric(str, Enum):
    latency = "latency"
    speedup = "speedup"


class CompareFormat(str, Enum):
    table = "table"
    markdown = "markdown"
    json = "json"
    github_benchmark = "github-benchmark"


@app.command("compare")
@user_errors
def compare_runs(
    baseline: Annotated[
        Path,
        typer.Argument(
            help="Baseline run: a run directory, results file or JSON export; alone, a run "
            "that measured two environments interleaved."
        ),
    ],
    candidate: Annotated[
        Path | None, typer.Argument(help="Candidate run, in any of the same forms.")
    ] = None,
    *,
    metric: Annotated[
        CompareMetric,
        typer.Option(
            case_sensitive=False,
            help="latency (per variant), or speedup (standard/separable ratio: cancels "
            "machine speed).",
        ),
    ] = CompareMetric.latency,
    threshold: Annotated[
        str, typer.Option(help="Smallest change that counts, as 0.05 or 5%.")
    ] = f"{THRESHOLD:.0%}",
    confidence: Annotated[
        str, typer.Option(help="Confidence of the intervals.")
    ] = f"{CONFIDENCE:g}",
    fmt: Annotated[
        CompareFormat,
        typer.Option(
            "--format", case_sensitive=False, help="table, markdown, json or github-benchmark."
        ),
    ] = CompareFormat.table,
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write the format to; - is stdout.")
    ] = "-",
    fail_on_inconclusive: Annotated[
        bool, typer.Option(help="Exit 3 when rows are inconclusive (and nothing regressed).")
    ] = False,
    allow_different_hardware: Annotated[
        bool, typer.Option(help="Compare runs measured on different CPUs or GPUs.")
    ] = False,
    baseline_env: Annotated[
        str | None,
        typer.Option(help="The baseline's environment (a run that measured several)."),
    ] = None,
    candidate_env: Annotated[
        str | None,
        typer.Option(help="The candidate's environment (a run that measured several)."),
    ] = None,
) -> None:
    """Compare two runs row by row, or two environments of one interleaved run; exit 1 on a
    regression (a CI gate).

    Exit codes: 0 no regression, 1 at least one regression, 2 bad input, 3 inconclusive rows
    with --fail-on-inconclusive.
    """
    from dscbench.commands import compare as compare_command  # pandas and scipy, no torch

    code = compare_command.execute(
        baseline,
        candidate,
        baseline_env=baseline_env,
        candidate_env=candidate_env,
        metric=metric.value,
        threshold=threshold,
        confidence=confidence,
        fmt=fmt.value,
        output=output,
        fail_on_inconclusive=fail_on_inconclusive,
        allow_different_hardware=allow_different_hardware,
        console=console,
    )
    raise typer.Exit(code)


@app.command("export")
@user_errors
def export_run(
    run_path: Annotated[Path, typer.Argument(help="A run directory or results file.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="JSON file to write; - is stdout.")
    ] = "-",
) -> None:
    """Write a run (metadata, result rows and raw samples) as one JSON document."""
    from dscbench import results
    from dscbench.export import write_output

    loaded = results.load_results(run_path)
    if loaded.samples.empty and loaded.results.n_samples.fillna(0).sum() > 0:
        raise DscbenchError(
            f"{run_path}: its samples.parquet is missing, so an export could not be compared "
            "(compare recomputes its statistics from the samples)"
        )
    document = results.to_json(loaded)
    write_output(output, json.dumps(document, allow_nan=False) + "\n", inputs=[run_path])


@app.command("backends")
@user_errors
def list_backends(
    as_json: JsonFlag = False,
) -> None:
    """List the backends: device, whether they can run here and why not, library versions."""
    from dscbench.backends import listing

    rows = listing()
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table(header_style="bold")
    for col in ("backend", "device", "available", "device name / reason", "versions"):
        table.add_column(col)
    for row in rows:
        ok = row["available"]
        table.add_row(
            row["name"],
            row["device"],
            Text("yes", style="green") if ok else Text("no", style="red"),
            Text(row["device_name"] if ok else row["reason"]),
            Text(", ".join(f"{k} {v}" for k, v in row["versions"].items())),
        )
    console.print(table)


@app.command()
@user_errors
def env(
    as_json: JsonFlag = False,
) -> None:
    """Print the environment dscbench records with every run."""
    from dscbench.env import collect_environment

    info = collect_environment()
    if as_json:
        sys.stdout.write(json.dumps(info, indent=2, default=str) + "\n")
        return
    table = Table(show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    for key, value in info.items():
        if isinstance(value, dict):
            for sub, subvalue in value.items():
                table.add_row(f"{key}.{sub}", _plain(subvalue))
        else:
            table.add_row(key, _plain(value))
    console.print(table)


def _plain(value: Any) -> Text:
    if isinstance(value, list):
        return Text("\n".join(str(v) for v in value))
    return Text("-" if value is None else str(value))


def _click_exceptions() -> tuple[type[Exception], type[BaseException]]:
    """(ClickException, Abort) as the installed typer raises them: typer >= 0.2x vendors click
    as ``typer._click``, older releases use click itself."""
    try:
        from typer._click.exceptions import ClickException
        from typer.exceptions import Abort
    except ImportError:
        from click.exceptions import Abort, ClickException
    return ClickException, Abort


def main() -> None:
    """Console-script entry point: usage errors become one red line and exit 2 too."""
    prefer_system_allocator()
    click_exception, abort = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except click_exception as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":
            _exit(exc.exit_code)  # the help is already printed
        ctx = getattr(exc, "ctx", None)
        hint = f" (see '{ctx.command_path} --help')" if ctx is not None else ""
        err_console.print(
            Text("error: ", style="bold red") + Text(exc.format_message() + hint), highlight=False
        )
        _exit(exc.exit_code)
    except abort:  # Ctrl-C or end of input outside a sweep (a sweep handles its own)
        err_console.print(Text("interrupted", style="yellow"), highlight=False)
        _exit(130)
    _exit(code if isinstance(code, int) else 0)


def prefer_system_allocator() -> None:
    """Give pyarrow the C library's allocator, unless ARROW_DEFAULT_MEMORY_POOL already
    chooses one; it must happen before pyarrow is first imported, so the command does it first.

    pandas 3 keeps string columns in arrow memory, and pyarrow's default pool (mimalloc) keeps
    what it frees: a long sweep's result tables made peak RSS grow with the number of
    configurations (benchmarks/REPORT-robust.md). A library user's process is left alone."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def _exit(code: int) -> None:
    """Exit with ``code``, deaf to Ctrl-C from here on: a second Ctrl-C landing while the
    process unwinds would otherwise turn a clean exit (130 after an interrupt, with every
    result written) into a death by SIGINT."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)
