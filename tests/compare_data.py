"""The small result sets checked in under tests/data/compare/, and how they were made.

Two runs of a fake backend with a fake clock, so they are exactly reproducible:
`python -m tests.compare_data` rewrites them. The candidate differs from the baseline by design:

  8 ch   unchanged                         -> same
  16 ch  standard 1.25x slower             -> slower (a regression)
  24 ch  separable 0.8x (faster)           -> faster
  32 ch  1.02x slower under heavy noise    -> same or inconclusive, never slower
  40 ch  candidate returns a wrong output  -> parity_failed in the candidate (newly failing)
  48 ch  baseline only                     -> removed
  56 ch  candidate only                    -> added
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from dscbench import results, runner
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, RunSettings
from tests.tables import tables_of

from .conftest import FakeBackend, FakeCanary, FakeClock, spec

DATA = Path(__file__).parent / "data" / "compare"


def _cost(scale: dict[tuple[int, str], float]):
    def cost(s, variant):
        base = (1e-4 if variant == "standard" else 5e-5) * s.in_channels / 8
        return base * scale.get((s.in_channels, variant), 1.0)

    return cost


def _meta(torch_version: str, fake_version: str) -> dict:
    return {
        "tool": "dscbench",
        "status": "complete",
        "environment": {
            "cpu_model": "Test CPU",
            "machine": "x86_64",
            "cpu_count": 2,
            "libraries": {"torch": torch_version, "numpy": "2.0.0"},
        },
        "backends": {
            "fake": {"device": "cpu", "device_name": "Test CPU", "versions": {"fake": fake_version}}
        },
    }


def make_run(role: str) -> results.ResultSet:
    """The baseline or candidate ResultSet, built from scratch."""
    candidate = role == "candidate"
    channels = [8, 16, 24, 32, 40, 56] if candidate else [8, 16, 24, 32, 40, 48]
    scale = {(16, "standard"): 1.25, (24, "separable"): 0.8, (32, "standard"): 1.02}
    clock = FakeClock()

    def corrupt(s, variant, out):
        return out * 1.5 if candidate and s.in_channels == 40 else out

    backend = FakeBackend(
        clock,
        _cost(scale if candidate else {}),
        noise=lambda s, v: 0.3 if s.in_channels == 32 else 0.01,
        slowdown=lambda t: 1.0 + 0.01 * math.sin(40.0 * t),  # a machine that wanders a little
        seed=11 if candidate else 7,
        corrupt=corrupt,
    )
    canary = FakeCanary(clock, seed=11 if candidate else 7)
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in channels]
    sweep = runner.run_sweep(
        cases,
        RunSettings(min_time=0.05, rounds=5, seed=3 if candidate else 2),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        verify_counts=False,
        canary=canary,
    )
    table, samples = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    meta = _meta("2.13.0" if candidate else "2.12.0", "2" if candidate else "1")
    meta["canary"] = {"describe": canary.describe(), "samples": sweep.canary}
    return results.ResultSet(dict(meta, schema_version=results.SCHEMA_VERSION), table, samples)


def write(directory: Path = DATA) -> None:
    """Rewrite both result sets, then the golden outputs of comparing them (review the diff:
    it is what a change of the model or the renderers does to a user's report)."""
    import io

    from rich.console import Console

    from dscbench import compare
    from dscbench.export import comparison as render

    for role in ("baseline", "candidate"):
        rs = make_run(role)
        out = directory / role
        out.mkdir(parents=True, exist_ok=True)
        results.write_run(out, rs.results, rs.samples, rs.meta)
    comparison = compare.compare_sets(
        results.load_results(directory / "baseline"), results.load_results(directory / "candidate")
    )
    buffer = Console(width=160, file=io.StringIO(), record=True, color_system=None)
    buffer.print(render.rich_table(comparison))
    (directory / "expected-table.txt").write_text(buffer.export_text())
    (directory / "expected.md").write_text(render.markdown(comparison))


if __name__ == "__main__":
    np.seterr(all="raise")
    write()
    print(f"wrote {DATA}")
