"""`dscbench calibrate`: measure the roofs (calibrate.py, which imports torch when it measures),
cache them, print them."""

from __future__ import annotations

import json
from enum import Enum
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from dscbench import calibrate
from dscbench.commands import common
from dscbench.errors import BackendUnavailable
from dscbench.export.units import format_rate

app = typer.Typer()


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"


@app.command("calibrate")
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
    raise typer.Exit(execute(device.value, threads, as_json, common.console))


def execute(device: str, threads: int | None, as_json: bool, console: Console) -> int:
    if device == "cuda":
        from dscbench.backends.cuda import cuda_availability

        status = cuda_availability()
        if not status.available:
            raise BackendUnavailable(f"--device cuda: {status.reason}")
    result = calibrate.calibrate(device, threads)
    path = calibrate.save(result)
    if as_json:
        console.print_json(json.dumps(result.to_json()))
        return 0
    console.print(calibration_table(result))
    console.print(f"Cached in {path}; `dscbench run` uses it for the efficiency columns.")
    return 0


KERNEL_NAMES = {
    "mm": "matrix product",
    "conv3x3": "3x3 conv",
    "conv1x1": "1x1 conv",
    "conv7x7": "7x7 conv",
}


def calibration_table(result: calibrate.Calibration) -> Table:
    where = f"{result.threads} thread(s)" if result.device == "cpu" else "GPU"
    repeats = max((len(r.per_repeat) for r in result.bandwidth.values()), default=0)
    table = Table(
        title=f"{result.device_name}, {where}: best of {repeats} repeats", header_style="bold"
    )
    for column in ("roof", "best", "median", "spread"):
        table.add_column(column, justify="left" if column == "roof" else "right")
    for label, rate in result.compute.items():
        kernel, dtype = label.split(":")
        peak = rate.best == result.peak_flops(dtype)
        table.add_row(
            f"compute, {dtype} {KERNEL_NAMES.get(kernel, kernel)}" + (" (peak)" if peak else ""),
            format_rate(rate.best, "FLOP/s"),
            format_rate(rate.median, "FLOP/s"),
            f"{rate.spread:.1%}",
        )
    for kind, rate in result.bandwidth.items():
        table.add_row(
            f"memory bandwidth, {kind}",
            format_rate(rate.best, "B/s"),
            format_rate(rate.median, "B/s"),
            f"{rate.spread:.1%}",
        )
    return table
