"""Instruction counts (dscbench/instructions.py, ``dscbench run --measure instructions``): the
dump parsing and the two-window difference on fakes, the coordinator's counting visits, the
rows and compare's verdicts on them; one real run under valgrind where it is installed."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from typer.testing import CliRunner

from dscbench import compare, instructions, results, runner
from dscbench.cli import app
from dscbench.measure import HarnessOptions
from dscbench.spec import Case, RunSettings
from tests.tables import tables_of

from .conftest import FakeBackend, FakeClock, spec

cli = CliRunner()

DUMP = """\
# callgrind format
version: 1
creator: callgrind-3.19.0
pid: 4242
cmd:  python -m dscbench.worker
part: 2

positions: line
events: Ir
summary: {n}

fn=(1) main
0 {n}

totals: {n}
"""


def test_a_dump_names_its_total_instructions():
    assert instructions.total(DUMP.format(n=2002193)) == 2002193
    with pytest.raises(ValueError):
        instructions.total("events: Ir\n")


# A callgrind dump with compressed names, a call and its inclusive cost (not main's own), and
# allocator functions.
CALLS = """\
events: Ir
summary: 1000
ob=(1) /usr/lib/libc.so.6
fl=(1) ???
fn=(1) main
0 100
cfn=(2) malloc
calls=2 0
0 300
fn=(2)
0 250
fn=(3) _int_malloc
+3 50
fn=(4) 0x000000002b33a000
0 600
totals: 1000
"""


def test_self_costs_leave_callees_out_and_the_allocators_are_counted_apart():
    assert instructions.self_costs(CALLS) == {
        "main": 100,
        "malloc": 250,
        "_int_malloc": 50,
        "0x000000002b33a000": 600,  # oneDNN's JIT code has no name, only an address
    }
    count = instructions.count(CALLS)
    assert (count.total, count.allocator, count.compute) == (1000, 300, 700)


def test_a_call_costs_the_difference_of_two_windows_and_the_dumps_are_removed(
    tmp_path, monkeypatch
):
    # A fake callgrind: each window's dump counts 5000 for the toggles and loop, 1234 per call.
    torch = pytest.importorskip("torch")
    calls = []
    windows = []

    def toggle():
        windows.append(len(calls))

    def dump():
        n = len(calls) - windows[-1]
        part = len(windows)
        (tmp_path / f"callgrind.{pid}.{part}").write_text(DUMP.format(n=5000 + 1234 * n))

    pid = __import__("os").getpid()
    monkeypatch.setattr(torch._C, "_valgrind_toggle", toggle)
    monkeypatch.setattr(torch._C, "_valgrind_toggle_and_dump_stats", dump)
    monkeypatch.setenv(instructions.OUT_DIR_VARIABLE, str(tmp_path))
    assert instructions.per_iteration(lambda: calls.append(1), 17) == (1234.0, 0.0)
    assert len(calls) == 1 + 17  # the uncounted first call, then the window (empty: none)
    calls.clear()
    assert instructions.per_iteration(lambda: calls.append(1), 1) == (1234.0, 0.0)
    assert len(calls) == 1 + 1
    assert list(tmp_path.iterdir()) == []


def test_a_window_is_sized_from_the_layers_macs_never_from_a_measured_call(monkeypatch):
    from dscbench.workers import checks

    # about 20 M instructions at 250 k + MACs / 4 a call, 1 to 200 calls
    layer = spec(in_channels=16, out_channels=16, height=14, width=14)
    assert checks.macs(layer, "standard", None) == 16 * 16 * 9 * 14 * 14  # the closed form
    assert instructions.calls_for(16 * 16 * 9 * 14 * 14) == 56  # 362,896 a call
    assert instructions.calls_for(128 * 128 * 9 * 28 * 28) == 1  # 29 M a call
    assert instructions.calls_for(0) == 80
    monkeypatch.setattr(instructions, "CALL_OVERHEAD", 1_000)
    assert instructions.calls_for(0) == instructions.MAX_ITERATIONS


def test_the_wrapper_runs_callgrind_with_collection_off_until_toggled(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: "/usr/bin/valgrind")
    assert instructions.command_prefix(tmp_path) == [
        "/usr/bin/valgrind",
        "--tool=callgrind",
        "--collect-atstart=no",
        f"--callgrind-out-file={tmp_path}/callgrind.%p",
        "--trace-children=no",
        "--quiet",
    ]


def test_without_valgrind_measure_instructions_is_one_line_and_exit_2(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name: None)
    res = cli.invoke(
        app,
        ["run", "--in-channels", "8", "--size", "8", "--kernel", "3", "--measure",
         "instructions", "-o", str(tmp_path / "run")],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--measure instructions: valgrind is not on the PATH" in res.output
    assert "Traceback" not in res.output
    bad = cli.invoke(app, ["run", "--measure", "instructions", "--decide", "5%"])
    assert bad.exit_code == 2 and "--measure instructions counts exactly" in bad.output
    bad = cli.invoke(app, ["run", "--jobs", "2"])
    assert bad.exit_code == 2 and "--jobs 2 counts rows at the same time" in bad.output


def fake_counts(
    counts: dict[tuple[int, str], list[float]], before: Callable[[], object] | None = None
) -> Callable[[Any, int], tuple[float, float]]:
    """instructions.per_iteration on fakes: the next of the workload's (in_channels, variant)
    counts, 7 in the allocators; the count's first call (a kernel probe) and ``before`` run
    first (in the counting thread)."""

    def per_iteration(fn: Any, iterations: int, first: Any) -> tuple[float, float]:
        if first is not None:
            first()
        if before is not None:
            before()
        spec_, variant = fn.key  # conftest.FakeBackend's workloads say which they are
        return counts[(spec_.in_channels, variant)].pop(0), 7.0

    return per_iteration


def count_sweep(
    cases: list[Case], rounds: int, processes: int, kernels: Any = None
) -> runner.SweepState:
    backend = FakeBackend(FakeClock(), lambda s, v: 1e-4, kernels=kernels)
    sweep = runner.run_sweep(
        cases,
        RunSettings(min_time=0.01, rounds=rounds, seed=0, parity=False),
        {"": [runner.LocalExecutor({"fake": backend}) for _ in range(processes)]},
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        verify_counts=False,
        measure="instructions",
    )
    assert backend.calls == 0  # nothing was timed (the fake per_iteration calls nothing)
    return sweep


def test_the_coordinator_counts_each_row_once_per_process_and_times_nothing(monkeypatch):
    counts = {(8, "standard"): [1000.0] * 2, (8, "separable"): [500.0] * 2,
              (16, "standard"): [2000.0] * 2, (16, "separable"): [900.0] * 2}  # fmt: skip
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    monkeypatch.setattr(instructions, "per_iteration", fake_counts(counts))
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in (8, 16)]
    sweep = count_sweep(cases, rounds=2, processes=2)
    table, samples = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    assert samples.empty
    assert (table.status == "ok").all() and table.latency_median_s.isna().all()
    assert sorted(table.instructions) == [500.0, 900.0, 1000.0, 2000.0]
    assert (table.instructions_spread == 0).all() and (table.warnings == "").all()
    assert (table.allocator_instructions == 7.0).all()
    assert sweep.phases.timed == 0
    assert not any(counts.values())  # every row counted twice, once per round


def test_the_counts_first_call_names_the_kernels_once_for_every_process(monkeypatch):
    # Under valgrind the kernel probe is the count's uncounted first call, in every process
    # (the same history everywhere); the first build does not call it again.
    from dscbench.kernels import Found

    probes: list[tuple[int, str]] = []

    def kernels(s: Any, v: str) -> Found:
        probes.append((s.in_channels, v))
        if v == "standard":
            return Found(["Mkldnn/jit:avx2"])
        return Found(["Slow2d"], [(1, "Slow2d", "bfloat16")])

    counts = {(8, "standard"): [1000.0] * 2, (8, "separable"): [500.0] * 2}
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    monkeypatch.setattr(instructions, "per_iteration", fake_counts(counts))
    sweep = count_sweep([Case(spec(), "fake")], rounds=2, processes=2, kernels=kernels)
    table, _ = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    assert sorted(probes) == [(8, "separable")] * 2 + [(8, "standard")] * 2
    rows = table.set_index("variant")
    assert rows.at["standard", "kernels"] == "Mkldnn/jit:avx2"
    assert rows.at["separable", "kernels"] == "Slow2d"
    assert rows.at["separable", "warnings"].startswith("reference_kernel")
    assert sweep.phases.kernels >= 0 and sweep.phases.instructions >= 0


def test_processes_count_at_once_and_no_row_twice_in_one_process(monkeypatch):
    # Four cases, two rounds, three processes: each count waits at a barrier for another
    # thread's, which only a count running at the same time can pass.
    together = threading.Barrier(2, timeout=10)
    counted_by: dict[str, list[int]] = {}
    count = runner.LocalExecutor.count

    def recording(self: Any, key: str, iterations: int) -> Any:
        counted_by.setdefault(key, []).append(id(self))
        return count(self, key, iterations)

    counts = {(c, v): [100.0 * c] * 2 for c in (8, 16, 24, 32) for v in ("standard", "separable")}
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    monkeypatch.setattr(runner.LocalExecutor, "count", recording)
    monkeypatch.setattr(instructions, "per_iteration", fake_counts(counts, together.wait))
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in (8, 16, 24, 32)]
    sweep = count_sweep(cases, rounds=2, processes=2)
    table, _ = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    assert (table.status == "ok").all(), table.error.tolist()
    assert sorted(table.instructions) == sorted(100.0 * c for c in (8, 16, 24, 32) for _ in "ab")
    assert sorted(len(set(ids)) for ids in counted_by.values()) == [2, 2, 2, 2]


class ForkedFake(runner.LocalExecutor):
    """A fake worker forked from a fork server: restarts are counted, not made."""

    forks = SimpleNamespace(usable=True)  # a fork server that works

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.restarts = self.counts = 0

    def count(self, key: str, iterations: int) -> Any:
        self.counts += 1
        return super().count(key, iterations)

    def begin_restart(self) -> None:
        self.restarts += 1

    def finish_restart(self) -> None:
        pass


def test_every_case_is_counted_in_a_fresh_fork(monkeypatch):
    # Three cases, one round, two forked processes: a process that counted n cases was
    # replaced by a fresh fork before each case but its first, except process 0, which answered
    # the run's set-up questions and is replaced before every case; each fork is a new process
    # number.
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    monkeypatch.setattr(instructions, "per_iteration", lambda fn, n, first: (1.0, 0.0))
    backend = FakeBackend(FakeClock(), lambda s, v: 1e-4)
    pool = [ForkedFake({"fake": backend}) for _ in range(2)]
    coordinator = runner.Coordinator(
        [Case(spec(in_channels=c, out_channels=c), "fake") for c in (8, 16, 24)],
        RunSettings(min_time=0.01, rounds=1, seed=0, parity=False),
        {"": pool},
        verify_counts=False,
        measure="instructions",
    )
    sweep = coordinator.run()
    assert sum(e.counts for e in pool) == 3
    assert [e.restarts for e in pool] == [pool[0].counts, max(0, pool[1].counts - 1)]
    assert coordinator.next_identity[""] == 2 + sum(e.restarts for e in pool)
    assert all(
        s.envs[""].instructions == {"standard": [1.0], "separable": [1.0]} for s in sweep.cases
    )


def test_a_bug_while_counting_at_once_still_raises_with_its_traceback(monkeypatch):
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    monkeypatch.setattr(instructions, "per_iteration", lambda fn, n, first: (1.0, 0.0))

    def broken(self: Any, state: Any, live: Any, slot: int) -> None:
        raise ZeroDivisionError("a bug in the bookkeeping")

    monkeypatch.setattr(runner.Coordinator, "count", broken)
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in (8, 16)]
    with pytest.raises(ZeroDivisionError, match="a bug in the bookkeeping"):
        count_sweep(cases, rounds=1, processes=2)


def test_processes_that_disagree_leave_a_warning_on_the_row(monkeypatch):
    counts = {(8, "standard"): [1000.0, 1020.0], (8, "separable"): [500.0, 500.0]}
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    monkeypatch.setattr(instructions, "per_iteration", fake_counts(counts))
    sweep = count_sweep([Case(spec(in_channels=8, out_channels=8), "fake")], 2, 2)
    table, _ = tables_of(sweep, {"fake": ("cpu", "Test CPU")})
    std = table[table.variant == "standard"].iloc[0]
    assert std.instructions == 1010.0 and std.instructions_spread == pytest.approx(0.02 / 1.01)
    assert std.warnings.startswith("instructions_vary: 2 processes counted 1000 to 1020")
    assert table[table.variant == "separable"].iloc[0].warnings == ""


def test_a_worker_counting_instructions_leaves_peak_memory_to_timed_runs(monkeypatch):
    # The memory probe runs a whole call under valgrind for a number a timed run measures.
    from dscbench.backends.base import Prepared
    from dscbench.workers import PrepareReport, checks

    layer = spec(in_channels=8, out_channels=8)
    prepared = {
        v: Prepared(run=lambda: None, output=lambda: None, memory=lambda: 4096)
        for v in ("standard", "separable")
    }
    for valgrind, expected in ((False, {"standard": 4096, "separable": 4096}), (True, {})):
        monkeypatch.setattr(instructions, "under_valgrind", lambda valgrind=valgrind: valgrind)
        report = PrepareReport()
        checks.first_build(layer, prepared, report)
        assert report.peak_memory_bytes == expected


def test_a_networks_counts_and_window_come_from_its_layers_under_valgrind(monkeypatch):
    pytest.importorskip("torch")
    from dscbench import counting, ops
    from dscbench.backends.base import Prepared
    from dscbench.spec import ModelSpec
    from dscbench.workers import PrepareReport, checks

    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    net = ModelSpec(1, "article", (3, 28, 28))
    modules = {v: ops.build(net, v) for v in ("standard", "separable")}
    prepared = {
        v: Prepared(run=lambda: None, output=lambda: None, module=m) for v, m in modules.items()
    }
    report = PrepareReport()
    checks.first_build(net, prepared, report)
    for v, module in modules.items():
        expected = counting.counts_of(net, v).macs
        assert report.counts[v]["macs"] == expected == checks.macs(net, v, module) > 0


def test_count_refuses_to_run_outside_valgrind():
    executor = runner.LocalExecutor({"fake": FakeBackend(FakeClock(), lambda s, v: 1e-4)})
    with pytest.raises(RuntimeError, match="does not run under valgrind"):
        executor.count("x", 10)


def _counted(rs_rows: list[tuple[int, str, float]], *, env: str = "") -> results.ResultSet:
    """A result set of a counted run: (in_channels, variant, instructions) rows."""
    from tests.test_compare import synthetic

    rs = synthetic(seed=1, channels=sorted({c for c, _, _ in rs_rows}))
    table = rs.results.copy()
    for c, v, n in rs_rows:
        mask = (table.in_channels == c) & (table.variant == v)
        table.loc[mask, "instructions"] = n
        table.loc[mask, "instructions_spread"] = 0.0
    meta = dict(rs.meta, harness={"measure": "instructions"})
    return results.ResultSet(meta, table, rs.samples.iloc[0:0])


def test_compare_judges_counts_exactly_against_the_threshold():
    base = _counted([(8, "standard", 1e6), (8, "separable", 5e5), (16, "standard", 2e6),
                     (16, "separable", 9e5)])  # fmt: skip
    cand = _counted([(8, "standard", 1.0004e6), (8, "separable", 5.5e5), (16, "standard", 1.8e6),
                     (16, "separable", 9e5)])  # fmt: skip
    comparison = compare.compare_sets(base, cand, metric="instructions", threshold=0.05)
    verdicts = {(c.config_id.split("_")[1], c.variant): c.verdict for c in comparison.changes}
    assert verdicts == {
        ("c8-8", "standard"): "same",  # +0.04%: within 5%
        ("c8-8", "separable"): "slower",  # +10%
        ("c16-16", "standard"): "faster",  # -10%
        ("c16-16", "separable"): "same",
    }
    slower = next(c for c in comparison.changes if c.verdict == "slower")
    assert slower.ratio == pytest.approx(1.1) and slower.ci_low == slower.ci_high == slower.ratio
    assert comparison.exit_code() == 1
    from dscbench.export import comparison as render

    assert "exact counts (no intervals)" in render.title(comparison)
    assert "1.1000" in render.markdown(comparison)
    # A timed run on one side is one line, not a traceback.
    with pytest.raises(compare.CompareError, match="the candidate did not count instructions"):
        from tests.test_compare import synthetic

        compare.compare_sets(base, synthetic(seed=2), metric="instructions")


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("valgrind") is None, reason="needs valgrind")
def test_a_real_count_under_valgrind_repeats_exactly_and_names_the_kernels(tmp_path):
    # Two forked workers under callgrind count two 16->16 convs and their twins on one thread,
    # in the rounds' random orders: a count does not depend on what the process did before.
    out = tmp_path / "run"
    res = cli.invoke(
        app,
        ["run", "--in-channels", "16", "--size", "14", "--kernel", "3", "--stride", "1,2",
         "--threads", "1", "--measure", "instructions", "--processes", "2", "--jobs", "3",
         "--no-parity",
         "-o", str(out)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    loaded = results.load_results(out)
    table = loaded.results
    assert loaded.meta["harness"]["measure"] == "instructions"
    assert loaded.meta["harness"]["instructions"]["valgrind"].startswith("valgrind-")
    counted = loaded.meta["harness"]["instructions"]
    assert (counted["processes"], counted["jobs"], loaded.meta["harness"]["processes"]) == (2, 3, 3)
    assert len(table) == 4 and (table.status == "ok").all()
    # A conv of 16x14x14 outputs (7x7 at stride 2) with 144 MACs each takes at least that many
    # instructions' worth of work (at most 16 float MACs per instruction), and the same code
    # in two processes counts the same to within 0.01% (the memory allocators, whose work
    # depends on the process's history, counted apart).
    std = table[table.variant == "standard"].set_index("stride")
    assert (std.instructions > 16 * std.out_height * std.out_width * 144 / 16).all()
    assert (table.instructions_spread <= 1e-4).all() and (table.allocator_instructions > 0).all()
    assert not table.warnings.str.contains("instructions_vary").any()
    sep = table[table.variant == "separable"]
    assert (std.kernels != "").all() and sep.kernels.str.contains(" + ", regex=False).all()
    assert table.latency_median_s.isna().all()
    assert "counting instructions under valgrind" in res.output
    assert json.loads((out / "run.json").read_text())["environment"]["torch"]["cpu_capability"] in (
        "AVX2",
        "DEFAULT",
        "NO AVX",
    )  # valgrind emulates no AVX-512
    assert not list(Path(out / "workers" / "callgrind").glob("callgrind.*.*"))


def test_a_resumed_counting_round_skips_the_cases_it_counted_already(monkeypatch):
    # an interrupted round keeps its counts (sweep_state.restore): counting it again would give
    # a one-process row two counts and a spread it never had
    monkeypatch.setattr(instructions, "under_valgrind", lambda: True)
    calls: list[int] = []

    def per_iteration(fn: Any, n: int, first: Any) -> tuple[float, float]:
        calls.append(1)
        return 1.0, 0.0

    monkeypatch.setattr(instructions, "per_iteration", per_iteration)
    backend = FakeBackend(FakeClock(), lambda s, v: 1e-4)
    cases = [Case(spec(in_channels=c, out_channels=c), "fake") for c in (8, 16)]
    coordinator = runner.Coordinator(
        cases,
        RunSettings(min_time=0.01, rounds=1, seed=0, parity=False),
        {"": [runner.LocalExecutor({"fake": backend})]},
        verify_counts=False,
        measure="instructions",
    )
    first, second = coordinator.states
    first.envs[""].instructions = {"standard": [5.0], "separable": [4.0]}  # as restored
    assert coordinator.counted_already(first, 0) and not coordinator.counted_already(second, 0)
    coordinator.run()
    assert len(calls) == 2  # the second case's two variants only
    assert first.envs[""].instructions == {"standard": [5.0], "separable": [4.0]}
    assert coordinator.done == 2
