"""The harness and the sweep on a fake clock: known costs in, known medians and speedups out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dscbench import runner
from dscbench.backends.base import CompileFailed
from dscbench.measure import (
    HarnessOptions,
    Timed,
    Timer,
    measure_blocks,
    measure_pairs,
    warm_up_and_calibrate,
)
from dscbench.spec import Case, RunSettings

from .conftest import FakeBackend, FakeClock, fake_cases, spec


def costs(standard: float, separable: float):
    return lambda s, v: standard if v == "standard" else separable


def workload(clock: FakeClock, cost: float):
    return lambda: clock.advance(cost)


def test_timer_times_blocks_on_the_injected_clock(clock):
    timer = Timer(clock=clock)
    assert timer.time_block(workload(clock, 0.25), 4) == pytest.approx(1.0)
    assert timer.overhead() == 0.0


def test_timer_syncs_around_the_block():
    events = []
    timer = Timer(clock=lambda: events.append("clock") or 0.0, sync=lambda: events.append("sync"))
    timer.time_block(lambda: events.append("call"), 2)
    assert events == ["sync", "clock", "call", "call", "sync", "clock"]


def test_calibration_reaches_the_block_time(clock):
    timed = Timed(workload(clock, 3e-6))
    warm_up_and_calibrate(timed, Timer(clock=clock), HarnessOptions(block_time=2e-3, warmup=0.01))
    assert timed.iterations * 3e-6 >= 2e-3
    assert timed.iterations * 3e-6 < 2e-3 * 1.5  # not wildly past it
    assert timed.warmup_s >= 0.01 and timed.times == []


def test_calibration_of_a_slow_workload_uses_one_iteration(clock):
    timed = Timed(workload(clock, 0.5))
    warm_up_and_calibrate(timed, Timer(clock=clock), HarnessOptions(block_time=2e-3, warmup=0.0))
    assert timed.iterations == 1
    assert timed.warmup_s == pytest.approx(1.5)  # two warm-up calls and one calibration block


def test_measure_pairs_alternates_and_records(clock):
    timer = Timer(clock=clock)
    a, b = Timed(workload(clock, 2e-3), iterations=1), Timed(workload(clock, 1e-3), iterations=2)
    flips = iter([0.1, 0.9] * 100)
    measure_pairs(a, b, timer, budget_s=0.02, round_index=3, coin=lambda: next(flips))
    # Pairs of 2 ms + 2 ms blocks until they add up to 2 x 20 ms: 10 pairs.
    assert len(a.times) == len(b.times) == 10
    assert a.times == pytest.approx([2e-3] * 10) and b.times == pytest.approx([1e-3] * 10)
    assert a.rounds == [3] * 10 and a.pairs == list(range(10)) == b.pairs
    assert a.measured_s == pytest.approx(0.02) and b.measured_s == pytest.approx(0.02)
    measure_pairs(a, b, timer, budget_s=0.001, round_index=4, coin=lambda: next(flips))
    assert len(a.times) == 11  # a budget shorter than one pair still measures one pair


def run(clock, backend, cases, **settings):
    opts = dict(min_time=0.05, rounds=3, warmup=0.001)
    opts.update(settings)
    return runner.run_sweep(
        cases,
        RunSettings(**opts),
        {"fake": backend},
        harness=HarnessOptions(block_time=1e-3, warmup=opts["warmup"]),
    )


def test_sweep_recovers_known_costs_exactly(clock):
    backend = FakeBackend(clock, costs(3e-5, 1e-5))
    state = run(clock, backend, fake_cases(3))
    assert state.status == "complete" and state.rounds_done == 3
    for case in state.cases:
        assert case.status == "ok" and case.visits == 3
        a, b = case.timed["standard"], case.timed["separable"]
        assert np.median(a.times) == pytest.approx(3e-5)
        assert np.median(b.times) == pytest.approx(1e-5)
        assert set(a.rounds) == {0, 1, 2}
        # Both variants get the same number of blocks: per round, as many pairs as it takes to
        # fill 2 x min_time / rounds, so together they spend 2 x min_time in timed blocks.
        pair_s = a.iterations * 3e-5 + b.iterations * 1e-5
        per_round = math.ceil(2 * 0.05 / 3 / pair_s - 1e-9)
        assert len(a.times) == len(b.times) == 3 * per_round
        assert 0.1 <= a.measured_s + b.measured_s < 0.1 + 3 * pair_s


def test_pairing_cancels_a_machine_that_changes_speed(clock):
    # The machine alternates between normal and 1.6x slower every 7 ms: medians of each variant
    # move, but the paired speedup stays at the true 2.5x.
    slowdown = lambda t: 1.6 if (t // 0.007) % 2 else 1.0  # noqa: E731
    backend = FakeBackend(clock, costs(2.5e-4, 1e-4), noise=0.02, slowdown=slowdown, seed=4)
    state = run(clock, backend, fake_cases(2), min_time=0.2, rounds=4)
    from dscbench.stats import paired_speedup

    for case in state.cases:
        a, b = case.timed["standard"], case.timed["separable"]
        sp = paired_speedup(a.times, b.times, a.rounds)
        assert sp.value == pytest.approx(2.5, rel=0.03)
        assert sp.ci_low <= 2.5 * 1.03 and sp.ci_high >= 2.5 * 0.97


def test_rounds_visit_every_case_in_shuffled_order(clock):
    backend = FakeBackend(clock, costs(1e-4, 1e-4))
    seen: list[str] = []
    runner.run_sweep(
        fake_cases(6),
        RunSettings(min_time=0.006, rounds=4, warmup=0.0, seed=7),
        {"fake": backend},
        progress=lambda done, total, label: seen.append(label) if label else None,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )
    rounds = [seen[i * 6 : (i + 1) * 6] for i in range(4)]
    assert all(sorted(r) == sorted(rounds[0]) and len(set(r)) == 6 for r in rounds)
    assert len({tuple(r) for r in rounds}) > 1  # not the same order every round


def test_threads_are_set_for_every_visit(clock):
    backend = FakeBackend(clock, costs(1e-4, 1e-4))
    cases = [Case(spec(threads=1), "fake"), Case(spec(threads=2), "fake")]
    run(clock, backend, cases, rounds=2, min_time=0.002)
    assert sorted(backend.threads_set) == [1, 1, 2, 2]


def test_a_failing_case_is_isolated(clock):
    broken = spec(in_channels=16, out_channels=16)
    uncompilable = spec(in_channels=32, out_channels=32)

    def fail_prepare(s, v):
        if s == uncompilable:
            return CompileFailed.from_error("torch.compile", TypeError("graph break\nat line 3"))
        return RuntimeError("no kernel for this\nsecond line") if s == broken else None

    def fail_run(s, v, calls):
        if s.in_channels == 24 and v == "separable" and calls > 200:
            return RuntimeError("CUDA out of memory. Tried to allocate 2 GiB")
        return None

    backend = FakeBackend(clock, costs(1e-4, 1e-4), fail_prepare=fail_prepare, fail_run=fail_run)
    state = run(clock, backend, fake_cases(4), min_time=0.03, rounds=3)
    by_channels = {c.case.spec.in_channels: c for c in state.cases}
    assert by_channels[32].status == "compile_error"
    assert by_channels[32].error == "torch.compile failed: TypeError: graph break"
    assert by_channels[8].status == "ok" and by_channels[8].visits == 3
    assert by_channels[16].status == "build_error"
    assert by_channels[16].error == "RuntimeError: no kernel for this"
    oom = by_channels[24]
    assert oom.status == "out_of_memory" and 0 < oom.visits < 3
    assert oom.timed["separable"].times  # what it measured before failing is kept


def test_interrupt_checkpoints_what_was_measured(clock):
    checkpoints = []

    def fail_run(s, v, calls):
        return KeyboardInterrupt() if calls > 300 and s.in_channels == 16 else None

    backend = FakeBackend(clock, costs(1e-4, 1e-4), fail_run=fail_run)
    with pytest.raises(KeyboardInterrupt):
        runner.run_sweep(
            fake_cases(2),
            RunSettings(min_time=0.1, rounds=4, warmup=0.0),
            {"fake": backend},
            checkpoint=lambda s: checkpoints.append(
                (s.status, s.rounds_done, [c.visits for c in s.cases])
            ),
            harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        )
    assert checkpoints[-1][0] == "interrupted"
    assert checkpoints[0][0] == "running"  # written after the first full round already
    assert sum(checkpoints[-1][2]) >= 2


def test_measure_blocks_alone_until_budget(clock):
    timed = Timed(workload(clock, 1e-3), iterations=3)
    measure_blocks(timed, Timer(clock=clock), budget_s=0.01, round_index=0)
    assert len(timed.times) == 4  # 3 ms blocks: 3 blocks make 9 ms, the 4th passes 10 ms
    assert timed.times == pytest.approx([1e-3] * 4) and timed.pairs == [0, 1, 2, 3]
    slow = Timed(workload(clock, 1.0), iterations=1)
    measure_blocks(slow, Timer(clock=clock), budget_s=0.01, round_index=0)
    assert len(slow.times) == 1


@pytest.mark.parametrize(("cache_bytes", "prepares"), [(1 << 30, 2), (0, 6)])
def test_prepared_variants_are_cached_within_a_memory_budget(clock, cache_bytes, prepares):
    backend = FakeBackend(clock, costs(1e-4, 1e-4))
    calls = []
    real = backend.prepare
    backend.prepare = lambda s, v, seed: calls.append(v) or real(s, v, seed)
    state = runner.run_sweep(
        fake_cases(1),
        RunSettings(min_time=0.003, rounds=3, warmup=0.0),
        {"fake": backend},
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        cache_bytes=cache_bytes,
    )
    assert len(calls) == prepares  # evicted variants are rebuilt on every visit
    assert state.cases[0].status == "ok" and state.cases[0].visits == 3
