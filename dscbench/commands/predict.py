"""`dscbench predict`: latency predicted for a network's layers and in total, from a layer
sweep's results (predict/), next to what a run measured where it did. The fitted predictor is
kept with the run it came from (predictor.json)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dscbench.commands.common import console, err_console
from dscbench.commands.run.options import Twin
from dscbench.errors import SpecError

if TYPE_CHECKING:
    from dscbench.predict.apply import Group
    from dscbench.results import ResultSet

app = typer.Typer()


class Method(str, Enum):
    auto = "auto"
    loglinear = "loglinear"
    trees = "trees"
    loglinear_trees = "loglinear+trees"


class PredictFormat(str, Enum):
    table = "table"
    json = "json"


@app.command("predict")
def predict(
    *,
    model: Annotated[
        str,
        typer.Option(help="A built-in network or package.module:callable (with --input-shape)."),
    ],
    from_run: Annotated[
        Path, typer.Option("--from", help="The layer sweep's run to fit on (a run directory).")
    ],
    against: Annotated[
        Path | None,
        typer.Option(
            help="A run whose measurements to show next to the predictions (default: "
            "the --from run); it must come from the same machine."
        ),
    ] = None,
    backend: Annotated[str, typer.Option(help="The backend to predict for.")] = "torch-cpu",
    threads: Annotated[int, typer.Option(min=1, help="The thread count to predict for.")] = 1,
    dtype: Annotated[str, typer.Option(help="The dtype to predict for.")] = "float32",
    batch: Annotated[int, typer.Option(min=1, help="The network's batch size.")] = 1,
    width_mult: Annotated[float | None, typer.Option(help="As run's --width-mult.")] = None,
    resolution: Annotated[int | None, typer.Option(help="As run's --resolution.")] = None,
    input_shape: Annotated[str | None, typer.Option(help="C,H,W for a model of your own.")] = None,
    twin: Annotated[
        Twin, typer.Option(case_sensitive=False, help="As run's --twin.")
    ] = Twin.separable,
    method: Annotated[
        Method, typer.Option(case_sensitive=False, help="auto: the best by cross-validation.")
    ] = Method.auto,
    env: Annotated[
        str | None,
        typer.Option(help="In a run that interleaved environments (--env), the one to fit on."),
    ] = None,
    holdout: Annotated[
        bool,
        typer.Option(
            "--holdout",
            help="Leave the network's own layer shapes out of the fit, to test the predictor "
            "on layers it never saw (they stay in the measured column).",
        ),
    ] = False,
    format: Annotated[
        PredictFormat, typer.Option("--format", case_sensitive=False)
    ] = PredictFormat.table,
) -> None:
    """Predict a network's latency, layer by layer and in total, from a layer sweep."""
    axes = {
        "model": model,
        "batch": batch,
        "threads": threads,
        "dtype": dtype,
        "width_mult": width_mult,
        "resolution": resolution,
        "input_shape": input_shape,
        "backend": backend,
    }
    raise typer.Exit(
        execute(axes, twin.value, from_run, against, method.value, format.value, holdout, env)
    )


def execute(
    axes: dict[str, Any],
    twin: str,
    from_run: Path,
    against: Path | None,
    method: str,
    fmt: str,
    holdout: bool = False,
    env: str | None = None,
) -> int:
    import json

    from dscbench import api, results
    from dscbench.export import prediction as render
    from dscbench.jsonsafe import json_safe
    from dscbench.predict.apply import Group, env_of, layer_ids, op_cost, predict_network

    cases = api.sweep(**axes, twin=twin).cases(axes["threads"])
    if len(cases) != 1:
        raise SpecError(
            f"predict takes one network on one backend, threads and dtype; these "
            f"options make {len(cases)}"
        )
    spec, backend = cases[0].spec, cases[0].backend
    fitted_from = results.load_results(from_run)
    measured = results.load_results(against) if against else fitted_from
    group = Group(backend, spec.threads, spec.dtype, env_of(fitted_from.results, backend, env))
    fingerprint = same_machine(fitted_from, measured, group, against)
    held = layer_ids(spec) if holdout else frozenset()
    fits, note = fitted(fitted_from, Path(from_run), group, method, fingerprint, held, spec)
    prediction = predict_network(spec, fits, op_cost(fitted_from.meta, group))
    doc = render.document(
        spec, group, fits, prediction, measured.results, str(from_run), str(against or from_run)
    )
    doc["holdout"] = sorted(held)
    if fmt == "json":
        console.print_json(json.dumps(json_safe(doc)))
    else:
        render.print_tables(doc, console)
    if note:
        err_console.print(f"note: predictor {note}", highlight=False)
    return 0


def same_machine(
    fitted_from: ResultSet, measured: ResultSet, group: Group, against: Path | None
) -> dict[str, str]:
    """The fit run's fingerprint; a PredictError when ``measured`` ran on another machine or
    stack (a predictor holds for the machine it was fitted on)."""
    from dscbench.history.fingerprint import DEFAULT_FACTS, facts_of
    from dscbench.predict.fit import PredictError

    def facts(rs: ResultSet) -> dict[str, str]:
        rows = rs.results[rs.results["backend"] == group.backend]
        row = rows.iloc[0].to_dict() if len(rows) else {}
        return facts_of(rs.meta, row, DEFAULT_FACTS)

    mine = facts(fitted_from)
    if against is not None:
        theirs = facts(measured)
        for name in DEFAULT_FACTS:
            if mine[name] != theirs[name]:
                raise PredictError(
                    f"--against {against}: measured on another machine or stack ({name} "
                    f"{theirs[name]!r}, the predictor's run {mine[name]!r}); a predictor holds "
                    "for the machine it was fitted on"
                )
    return mine


def fitted(
    run: ResultSet,
    directory: Path,
    group: Group,
    method: str,
    fingerprint: dict[str, str],
    holdout: frozenset[str],
    spec: Any,
) -> tuple[dict[str, Any], str]:
    """The group's predictors, fitted (without the ``holdout`` configurations); kept with the
    run (predictor.json, a fit with a holdout under its own key)."""
    from dscbench.predict import store
    from dscbench.predict.apply import fit_run

    directory = directory if directory.is_dir() else directory.parent
    groups = store.read(directory)
    key = store.group_key(group.backend, group.threads, group.dtype)
    if holdout:
        key += f"/without {spec.config_id}'s layers"
    fits = fit_run(run.results, group, method, holdout)
    groups[key] = {
        v: {
            "method": f.method,
            "digest": f.digest,
            "layers": f.n,
            "scores": {m: s.to_json() for m, s in f.scores.items()},
        }
        for v, f in fits.items()
    }
    return fits, store.write(directory, groups, fingerprint)
