"""`dscbench accuracy`: what the separable twin costs in accuracy, next to what it buys in
latency. Measures the twins' latency with a run (its files, versioned, with the environment,
go to the output directory as any run's), then trains both twins from the same seeds by one
fixed recipe (accuracy/train.py) and keeps the accuracy table beside the run
(results/accuracy.py), rewritten after every seed. `show` and `report` print it again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dscbench.commands.common import JsonFlag, console
from dscbench.commands.run.options import Twin
from dscbench.errors import DataError

if TYPE_CHECKING:
    from dscbench.accuracy.data import Dataset
    from dscbench.spec import ModelSpec

app = typer.Typer()

DEFAULT_MODEL = "digits-cnn"
PARETO_PNG = "pareto.png"


@dataclass(frozen=True)
class AccuracyOptions:
    model: str
    data: str
    seeds: int
    epochs: int
    twin: str
    threads: int
    min_time: float
    rounds: int
    processes: int
    output: Path | None
    force: bool
    json: bool
    quiet: bool


@app.command("accuracy")
def accuracy(
    *,
    model: Annotated[
        str,
        typer.Option(
            help="A built-in network (dscbench presets lists them) or "
            "package.module:callable, the standard twin (--twin)."
        ),
    ] = DEFAULT_MODEL,
    data: Annotated[
        str,
        typer.Option(
            help="digits (scikit-learn's, bundled), an .npz with x_train, y_train, "
            "x_test, y_test, or an image folder with train/<class>/ and test/<class>/."
        ),
    ] = "digits",
    seeds: Annotated[int, typer.Option(min=2, help="Seeds 0..N-1, each training both twins.")] = 5,
    epochs: Annotated[int, typer.Option(min=1, help="Epochs per training.")] = 20,
    twin: Annotated[
        Twin,
        typer.Option(
            case_sensitive=False,
            help="For a model of your own: which twin to derive (as run's --twin).",
        ),
    ] = Twin.separable,
    threads: Annotated[int, typer.Option(min=1, help="Threads for training and timing.")] = 1,
    min_time: Annotated[
        float, typer.Option(min=0.01, help="Seconds of timed calls per twin for the latency.")
    ] = 1.0,
    rounds: Annotated[int, typer.Option(min=1, help="Rounds of the latency run.")] = 5,
    processes: Annotated[int, typer.Option(min=1, help="Worker processes of the latency run.")] = 5,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The run directory to write.")
    ] = None,
    force: Annotated[bool, typer.Option(help="Overwrite a non-empty --output.")] = False,
    json: JsonFlag = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Train the standard and separable twins from the same seeds; report test accuracy with
    an interval over seeds, training time per epoch and latency, side by side."""
    options = AccuracyOptions(
        model,
        data,
        seeds,
        epochs,
        twin.value,
        threads,
        min_time,
        rounds,
        processes,
        output,
        force,
        json,
        quiet,
    )
    raise typer.Exit(execute(options))


def execute(opts: AccuracyOptions) -> int:
    from dscbench import api
    from dscbench.accuracy import data as datasets
    from dscbench.commands.run.options import default_output

    dataset = datasets.load(opts.data)
    sweep = api.sweep(model=opts.model, **user_shape(opts.model, dataset), batch=1,
                      threads=opts.threads, twin=opts.twin, min_time=opts.min_time,
                      rounds=opts.rounds)  # fmt: skip
    spec = model_spec(sweep.cases(opts.threads)[0].spec, opts, dataset)
    fits(spec, dataset, opts.model)
    out = opts.output or default_output()
    say = (lambda text: None) if opts.quiet or opts.json else console.print
    say(f"Timing the twins of {opts.model} (batch 1, {opts.threads} thread(s)) ...")
    run = api.run(sweep, output=out, processes=opts.processes, force=opts.force, quiet=True)
    if run.meta.get("status") == "interrupted":
        say(f"Interrupted while timing; what was measured is in {out}/")
        return 130
    table, doc = train_all(opts, spec, dataset, out, say)
    from dscbench.export import accuracy as render

    shown = render.document(table, doc, run.results)
    drawn = draw(shown, out / PARETO_PNG)
    if opts.json:
        import json

        from dscbench.jsonsafe import json_safe

        console.print_json(json.dumps(json_safe({**shown, "output": str(out)})))
    else:
        console.print(render.rich_table(shown))
        console.print(
            f"Results in {out}/ (the latency run, accuracy.parquet, accuracy.json"
            + (f", {PARETO_PNG}" if drawn else "")
            + ")",
            highlight=False,
        )
    failed = int((run.results["status"] != "ok").sum())
    if failed:  # the latency rows say why (status, run.json's failures)
        say(f"{failed} latency row(s) failed; the accuracies stand (exit 1)")
    return 1 if failed else 0


def user_shape(model: str, dataset: Dataset) -> dict[str, Any]:
    from dscbench.models import is_user_model

    return {"input_shape": ",".join(map(str, dataset.shape))} if is_user_model(model) else {}


def model_spec(spec: ModelSpec, opts: AccuracyOptions, dataset: Dataset) -> ModelSpec:
    """``spec``, checked: a built-in network must take the data's input shape (a DataError
    naming both otherwise)."""
    if tuple(spec.input_shape) != dataset.shape:
        raise DataError(
            f"--data {opts.data}: its inputs are {'x'.join(map(str, dataset.shape))} (C x H x W) "
            f"but --model {opts.model} takes {'x'.join(map(str, spec.input_shape))}"
        )
    return spec


def fits(spec: ModelSpec, dataset: Dataset, model: str) -> None:
    """Both twins take the data and give enough logits, checked before anything is measured."""
    from dscbench import ops
    from dscbench.accuracy.train import check_fits

    for variant in ("standard", "separable"):
        check_fits(ops.build(spec, variant, 0), dataset, f"--model {model} ({variant})")


def train_all(
    opts: AccuracyOptions, spec: ModelSpec, dataset: Dataset, out: Path, say: Any
) -> tuple:
    """Every seed, both twins (which goes first alternates by seed, so drift falls on both),
    the files rewritten after each training."""
    import pandas as pd
    import torch

    from dscbench import lock, ops
    from dscbench.accuracy.train import RECIPE
    from dscbench.env import collect_environment
    from dscbench.results.accuracy import write_accuracy

    recipe = type(RECIPE)(**{**RECIPE.to_json(), "epochs": opts.epochs})
    torch.set_num_threads(opts.threads)
    doc = {
        "model": opts.model,
        "twin": opts.twin,
        "data": dataset.describe(),
        "recipe": recipe.to_json(),
        "seeds": list(range(opts.seeds)),
        "threads": opts.threads,
        "deterministic": "per seed, at this thread count and torch build",
        "environment": collect_environment(),
        "status": "partial",
    }
    rows: list[dict[str, Any]] = []
    with lock.hold(out):
        for seed in range(opts.seeds):
            order = ("standard", "separable") if seed % 2 == 0 else ("separable", "standard")
            for variant in order:
                net = ops.build(spec, variant, seed)
                done = trained(net, dataset, seed, recipe, f"--model {opts.model} ({variant})")
                rows.append(
                    {
                        "variant": variant,
                        "seed": seed,
                        "epochs": recipe.epochs,
                        "test_accuracy": done.test_accuracy,
                        "test_loss": done.test_loss,
                        "train_loss": done.train_loss,
                        "train_time_s": done.train_time_s,
                        "epoch_time_s": done.epoch_time_s,
                        "params": sum(p.numel() for p in net.parameters()),
                    }
                )
                write_accuracy(out, pd.DataFrame(rows), with_summary(doc, rows))
                say(
                    f"seed {seed} {variant}: test accuracy {done.test_accuracy:.2%}, "
                    f"{done.epoch_time_s:.2f} s an epoch"
                )
        doc["status"] = "complete"
        table = pd.DataFrame(rows)
        doc = with_summary(doc, rows)
        write_accuracy(out, table, doc)
    return table, doc


def trained(net: Any, dataset: Dataset, seed: int, recipe: Any, what: str) -> Any:
    """One training; an error raised by a model of the user's own is one line (a built-in
    network's is a bug and keeps its traceback)."""
    from dscbench.accuracy.train import train
    from dscbench.errors import ModelError
    from dscbench.models import is_user_model

    if not is_user_model(what.split()[1]):
        return train(net, dataset, seed, recipe)
    try:
        return train(net, dataset, seed, recipe)
    except Exception as exc:
        raise ModelError(f"{what}: training raised {type(exc).__name__}: {exc}") from None


def with_summary(doc: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """accuracy.json's document with the summary over the seeds trained so far."""
    import pandas as pd

    from dscbench.accuracy.summary import summarize

    return {**doc, "summary": summarize(pd.DataFrame(rows)).to_json()}


def draw(shown: dict[str, Any], path: Path) -> bool:
    """The Pareto view as a PNG when matplotlib is installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return False
    from dscbench import plot as plots
    from dscbench.export.accuracy import pareto_figure

    plots.save(pareto_figure(shown), path)
    return True
