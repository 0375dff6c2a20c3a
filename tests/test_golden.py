"""Golden files: today's command-line outputs, pinned as exact text under tests/data/golden/.

What is pinned, and how each is made deterministic:

- ``compare BASE CAND`` over tests/data/compare/ (baseline, candidate: see tests/compare_data.py)
  as the table the terminal gets, ``--format json``, ``--format github-benchmark`` and the
  speedup metric's JSON. (The rich table and markdown alone are pinned in tests/test_compare.py.)
- ``compare RUN`` of one run that measured two environments interleaved. The run is checked in
  under tests/data/golden/interleaved/, made by :func:`make_interleaved` (the fake clock and
  fake backend of tests/conftest.py, so it is exactly reproducible; a test checks the stored
  files are what the generator makes). Its path is written as ``<RUN>`` in the goldens.
- ``run --dry-run`` of small fixed sweeps (threads given, so the machine's core count does not
  enter); the dry run imports torch and counts, but times nothing.
- ``presets``: exact.
- ``backends``: the registry's names, devices, dtypes and memory formats are pinned exactly; what
  depends on the machine (availability, device names, reasons, versions) is not. The table is
  rendered from the real listing with those fields replaced by fixed placeholders
  (:func:`placeholder_listing`); ``--json`` is pinned with them dropped, keeping each row's keys,
  plus torch-cpu's availability and version keys.
- ``env``: keys only, never values. The table's key column in order, and ``--json``'s key paths;
  the installed libraries vary, so ``libraries.<name>`` rows are pinned as one ``libraries.*``.

Every CLI call goes through CliRunner with the Rich console's width pinned to 160 columns (what
the CLI uses when stdout is not a terminal; pinned so ``pytest -s`` in a terminal agrees).
Outputs are compared as exact text, floats at full precision: a refactor that changes the order
of a floating-point sum shows up here, on purpose.

To regenerate on purpose (after a deliberate output change; review the diff, it is what the change
does to a user's screen and files):

    DSCBENCH_REGOLDEN=1 pytest tests/test_golden.py

rewrites every file under tests/data/golden/ (the interleaved run included) instead of checking.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from dscbench import instructions, results
from dscbench.cli import app

from . import compare_data

GOLDEN = Path(__file__).parent / "data" / "golden"
INTERLEAVED = GOLDEN / "interleaved"
BASE, CAND = compare_data.DATA / "baseline", compare_data.DATA / "candidate"
WIDTH = 160
REGOLDEN = os.environ.get("DSCBENCH_REGOLDEN") == "1"

cli = CliRunner()


@pytest.fixture(autouse=True)
def _pinned_width(monkeypatch):
    from dscbench import cli as cli_module

    monkeypatch.setattr(cli_module.console, "width", WIDTH)


def check(name: str, text: str) -> None:
    """``text`` equals the golden file ``name`` (or, with DSCBENCH_REGOLDEN=1, becomes it)."""
    path = GOLDEN / name
    if REGOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert text == path.read_text(), f"{name} differs from its golden file ({path})"


def invoke(args: list[str], exit_code: int = 0) -> str:
    res = cli.invoke(app, args)
    assert res.exit_code == exit_code, res.output
    return res.output


# ---------------------------------------------------------------------------------------------
# compare over the checked-in baseline and candidate
# ---------------------------------------------------------------------------------------------

COMPARE_CASES = {
    "compare-table.txt": [],
    "compare.json": ["--format", "json"],
    "compare-github-benchmark.json": ["--format", "github-benchmark"],
    "compare-speedup.json": ["--metric", "speedup", "--format", "json"],
}


@pytest.mark.parametrize("name", list(COMPARE_CASES))
def test_compare_outputs(name):
    check(name, invoke(["compare", str(BASE), str(CAND), *COMPARE_CASES[name]], exit_code=1))


# ---------------------------------------------------------------------------------------------
# compare of one interleaved run of two environments
# ---------------------------------------------------------------------------------------------


def make_interleaved() -> results.ResultSet:
    """Environments base and head on one fake machine: head's 16-channel standard conv is 1.25x
    slower, its 24-channel separable 0.8x (faster), the rest unchanged."""
    from .test_compare import interleaved

    factor = {(16, "standard"): 1.25, (24, "separable"): 0.8}
    return interleaved(lambda c, v: factor.get((c, v), 1.0), seed=8, channels=(8, 16, 24))


@pytest.fixture(scope="module")
def interleaved_run() -> Path:
    if REGOLDEN:
        rs = make_interleaved()
        INTERLEAVED.mkdir(parents=True, exist_ok=True)
        results.write_run(INTERLEAVED, rs.results, rs.samples, rs.meta)
    return INTERLEAVED


def test_checked_in_interleaved_run_is_what_the_generator_makes(interleaved_run):
    fresh, stored = make_interleaved(), results.load_results(interleaved_run)
    pd.testing.assert_frame_equal(stored.samples, fresh.samples)
    columns = [c for c in results.RESULT_COLUMNS if c != "prepare_s"]  # wall-clock time
    pd.testing.assert_frame_equal(stored.results[columns], fresh.results[columns])


INTERLEAVED_CASES = {
    "interleaved-table.txt": [],
    "interleaved.json": ["--format", "json"],
    "interleaved.md": ["--format", "markdown"],
    "interleaved-github-benchmark.json": ["--format", "github-benchmark"],
}


@pytest.mark.parametrize("name", list(INTERLEAVED_CASES))
def test_interleaved_compare_outputs(interleaved_run, name):
    out = invoke(["compare", str(interleaved_run), *INTERLEAVED_CASES[name]], exit_code=1)
    check(name, out.replace(str(interleaved_run), "<RUN>"))


# ---------------------------------------------------------------------------------------------
# run --dry-run
# ---------------------------------------------------------------------------------------------

DRY_RUNS = {
    "dry-run-sweep.txt": "--in-channels 8,16 --out-channels 16,32 --size 8,14 --kernel 3,5 "
    "--stride 1,2 --threads 1",
    "dry-run-modes.txt": "--in-channels 8 --size 8 --kernel 3 --stride 1 "
    "--mode training,inference --dtype float32,float64 --threads 1,2",
    "dry-run-model.txt": "--model mobilenet-v1 --threads 1",
}


@pytest.mark.parametrize("name", list(DRY_RUNS))
def test_dry_run_tables(name):
    check(name, invoke(["run", "--dry-run", *DRY_RUNS[name].split()]))


# ---------------------------------------------------------------------------------------------
# presets, backends, env
# ---------------------------------------------------------------------------------------------


def test_presets_table():
    check("presets.txt", invoke(["presets"]))


def placeholder_listing(listing) -> list[dict]:
    """The real backend listing with what depends on the machine replaced by placeholders:
    every cpu backend available on "Test CPU", every cuda one not."""
    rows = []
    for row in listing():
        cpu = row["device"] == "cpu"
        rows.append(
            dict(
                row,
                available=cpu,
                device_name="Test CPU" if cpu else "",
                reason="" if cpu else "no CUDA device",
                versions={"lib": "1.0", "mode": "on"} if cpu else {},
            )
        )
    return rows


def test_backends_table(monkeypatch):
    import dscbench.backends

    real = dscbench.backends.listing
    monkeypatch.setattr(dscbench.backends, "listing", lambda: placeholder_listing(real))
    # whether this machine has valgrind, pinned: the line it gives and the one it does not
    monkeypatch.setattr(instructions, "valgrind_version", lambda: "valgrind-3.19.0")
    check("backends.txt", invoke(["backends"]))
    monkeypatch.setattr(instructions, "valgrind_version", lambda: "")
    assert invoke(["backends"]).endswith(
        "--measure instructions: no valgrind on the PATH; install it with your package manager "
        "(apt-get install valgrind)\n"
    )


def test_backends_json():
    rows = json.loads(invoke(["backends", "--json"]))
    pinned = []
    for row in rows:
        keep = {k: row[k] for k in ("name", "device", "dtypes", "memory_formats")}
        keep["keys"] = list(row)
        if row["name"] == "torch-cpu":
            keep["available"] = row["available"]
            keep["version_keys"] = list(row["versions"])
        pinned.append(keep)
    check("backends.json", json.dumps(pinned, indent=2) + "\n")


def _libraries_as_one(keys: list[str]) -> list[str]:
    out: list[str] = []
    for key in keys:
        key = re.sub(r"^libraries\..+$", "libraries.*", key)
        if not out or out[-1] != key:
            out.append(key)
    return out


def test_env_table_keys():
    out = invoke(["env"])
    rows = [line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│")]
    keys = _libraries_as_one([k for k in rows if k])  # a multi-line value leaves blank keys
    check("env-keys.txt", "\n".join(keys) + "\n")


def _paths(value, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _paths(v, f"{prefix}{k}.")] or [prefix]
    return [prefix[:-1]]


def test_env_json_keys():
    keys = _libraries_as_one(_paths(json.loads(invoke(["env", "--json"]))))
    check("env-json-keys.txt", "\n".join(keys) + "\n")
