"""The harness and the sweep on a fake clock: known costs in, known medians and speedups out."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from dscbench import runner, sweep_state
from dscbench.backends.base import CompileFailed
from dscbench.measure import HarnessOptions, Timer, Workload, run_turn, warm_up_and_calibrate
from dscbench.spec import Case, RunSettings
from dscbench.status import Status

from .conftest import FakeBackend, FakeClock, fake_cases, spec


def costs(standard: float, separable: float):
    return lambda s, v: standard if v == "standard" else separable


def workload(clock: FakeClock, cost: float) -> Workload:
    return Workload(lambda: clock.advance(cost))


def test_timer_times_blocks_on_the_injected_clock(clock):
    timer = Timer(clock=clock)
    assert timer.time_block(workload(clock, 0.25).fn, 4) == pytest.approx(1.0)
    assert timer.overhead() == 0.0


def test_timer_syncs_around_the_block():
    events = []
    timer = Timer(clock=lambda: events.append("clock") or 0.0, sync=lambda: events.append("sync"))
    timer.time_block(lambda: events.append("call"), 2)
    assert events == ["sync", "clock", "call", "call", "sync", "clock"]


def test_calibration_reaches_the_block_time(clock):
    cal = warm_up_and_calibrate(
        workload(clock, 3e-6), Timer(clock=clock), HarnessOptions(block_time=2e-3, warmup=0.01)
    )
    assert cal.iterations * 3e-6 >= 2e-3
    assert cal.iterations * 3e-6 < 2e-3 * 1.5  # not wildly past it
    assert cal.spent_s >= 0.01 and cal.per_iteration_s == pytest.approx(3e-6)


def test_calibration_of_a_slow_workload_uses_one_iteration(clock):
    cal = warm_up_and_calibrate(
        workload(clock, 0.5), Timer(clock=clock), HarnessOptions(block_time=2e-3, warmup=0.0)
    )
    assert cal.iterations == 1
    assert cal.spent_s == pytest.approx(1.5)  # two warm-up calls and one calibration block


def test_a_turn_rewarms_settles_then_times_its_blocks(clock):
    calls = {"a": 0, "b": 0}

    def counted(name: str, cost: float) -> Workload:
        def fn() -> None:
            calls[name] += 1
            clock.advance(cost)

        return Workload(fn)

    work = {"a": counted("a", 1e-3), "b": counted("b", 2e-3)}
    times = run_turn(
        work, Timer(clock=clock), [("b", 3), ("a", 2)], rewarm=["a", "b"], settle_s=0.0045
    )
    assert times.block_s == pytest.approx([6e-3, 2e-3])
    # rewarm: one call each (3 ms); settle: calls of the first block's variant (b, 2 ms each)
    # until 4.5 ms have passed: three calls.
    assert times.untimed_s == pytest.approx(3e-3 + 6e-3)
    assert calls == {"a": 1 + 2, "b": 1 + 3 + 3}


def test_an_interrupted_turn_keeps_its_finished_blocks(clock):
    def boom() -> None:
        raise KeyboardInterrupt

    work = {"a": workload(clock, 1e-3), "b": Workload(boom)}
    with pytest.raises(KeyboardInterrupt) as caught:
        run_turn(work, Timer(clock=clock), [("a", 2), ("a", 3), ("b", 1)])
    assert caught.value.partial.block_s == pytest.approx([2e-3, 3e-3])


def test_plan_visit_fills_the_budget_with_shuffled_sets():
    series = {
        "x": {"standard": runner.Series(10, 1e-4), "separable": runner.Series(20, 1e-4)},
        "y": {"standard": runner.Series(10, 2e-4), "separable": runner.Series(20, 1e-4)},
    }
    rng = np.random.default_rng(0)
    # A set is 1 + 2 + 2 + 2 = 7 ms; 4 slots x 10 ms = 40 ms -> 6 sets.
    sets = runner.plan_visit(["x", "y"], series, 0.01, rng)
    assert len(sets) == 6
    slots = {(e, v) for e in "xy" for v in ("standard", "separable")}
    assert all(set(s) == slots and len(s) == 4 for s in sets)
    assert len({tuple(s) for s in sets}) > 1  # a fresh order per set
    turns = runner.turns_of(sets)
    assert sum(len(blocks) for _, blocks in turns) == 24
    assert all(a[0] != b[0] for a, b in itertools.pairwise(turns))  # runs merged


def coordinator(backend, cases, **settings) -> runner.Coordinator:
    opts = dict(min_time=0.05, rounds=3, warmup=0.001)
    opts.update(settings)
    return runner.Coordinator(
        cases,
        RunSettings(**opts),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=opts["warmup"]),
    )


def run(clock, backend, cases, **settings):
    return coordinator(backend, cases, **settings).run()


def test_sweep_recovers_known_costs_exactly(clock):
    backend = FakeBackend(clock, costs(3e-5, 1e-5))
    state = run(clock, backend, fake_cases(3))
    assert state.status == "complete" and state.rounds_done == 3
    for case in state.cases:
        env = case.only
        assert env.status == "ok" and env.visits == 3
        a, b = env.series["standard"], env.series["separable"]
        assert np.median(a.times) == pytest.approx(3e-5)
        assert np.median(b.times) == pytest.approx(1e-5)
        assert set(a.rounds) == {0, 1, 2}
        # Both variants get the same number of blocks: per round, as many sets as it takes to
        # fill 2 x min_time / rounds, so together they spend 2 x min_time in timed blocks.
        pair_s = a.iterations * 3e-5 + b.iterations * 1e-5
        per_round = math.ceil(2 * 0.05 / 3 / pair_s - 1e-9)
        assert len(a.times) == len(b.times) == 3 * per_round
        assert 0.1 <= a.measured_s + b.measured_s < 0.1 + 3 * pair_s
        assert a.pairs == b.pairs == list(range(3 * per_round))
        sp = env.speedup()
        assert sp.value == pytest.approx(3.0) and sp.rounds == 3
        assert sp.ci_low == pytest.approx(3.0) and sp.ci_high == pytest.approx(3.0)


def test_the_coordinator_can_be_driven_one_visit_at_a_time(clock):
    """The coordinator's steps are methods: one visit prepares, calibrates and times one case
    (its sets of blocks add up to the round's share of min_time) and leaves the others be."""
    steps = coordinator(FakeBackend(clock, costs(3e-5, 1e-5)), fake_cases(2), min_time=0.06)
    first, second = steps.states
    steps.visit(first, 0)
    env = first.only
    assert env.status == "ok" and env.visits == 1 and env.checked
    a, b = env.series["standard"], env.series["separable"]
    assert len(a.times) == len(b.times) == first.sets > 0 and set(a.rounds) == {0}
    assert a.measured_s >= 0.02 and b.measured_s >= 0.02
    assert second.only.status == Status.NOT_MEASURED and not second.only.series and second.sets == 0


def test_pairing_cancels_a_machine_that_changes_speed(clock):
    # The machine alternates between normal and 1.6x slower every 7 ms: medians of each variant
    # move, but the paired speedup stays at the true 2.5x.
    slowdown = lambda t: 1.6 if (t // 0.007) % 2 else 1.0  # noqa: E731
    backend = FakeBackend(clock, costs(2.5e-4, 1e-4), noise=0.02, slowdown=slowdown, seed=4)
    state = run(clock, backend, fake_cases(2), min_time=0.2, rounds=4)
    for case in state.cases:
        sp = case.only.speedup()
        assert sp.value == pytest.approx(2.5, rel=0.03)
        assert sp.ci_low <= 2.5 * 1.03 and sp.ci_high >= 2.5 * 0.97


def test_rounds_visit_every_case_in_shuffled_order(clock):
    backend = FakeBackend(clock, costs(1e-4, 1e-4))
    seen: list[str] = []
    runner.run_sweep(
        fake_cases(6),
        RunSettings(min_time=0.006, rounds=4, warmup=0.0, seed=7),
        runner.local({"fake": backend}),
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
    # calibration on the first visit, then one turn per visit
    assert sorted(set(backend.threads_set)) == [1, 2]
    assert backend.threads_set.count(1) == backend.threads_set.count(2) == 3


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
    by_channels = {c.case.spec.in_channels: c.only for c in state.cases}
    assert by_channels[32].status == "compile_error"
    assert by_channels[32].error == "torch.compile failed: TypeError: graph break"
    assert by_channels[8].status == "ok" and by_channels[8].visits == 3
    assert by_channels[16].status == "build_error"
    assert by_channels[16].error == "RuntimeError: no kernel for this"
    assert "Traceback" in by_channels[16].traceback  # kept for the record (run.json)
    oom = by_channels[24]
    assert oom.status == "out_of_memory" and 0 < oom.visits < 3
    assert oom.series["separable"].times  # what it measured before failing is kept


def test_interrupt_checkpoints_what_was_measured(clock):
    checkpoints = []

    def fail_run(s, v, calls):
        return KeyboardInterrupt() if calls > 300 and s.in_channels == 16 else None

    backend = FakeBackend(clock, costs(1e-4, 1e-4), fail_run=fail_run)
    with pytest.raises(KeyboardInterrupt):
        runner.run_sweep(
            fake_cases(2),
            RunSettings(min_time=0.1, rounds=4, warmup=0.0),
            runner.local({"fake": backend}),
            checkpoint=lambda s: checkpoints.append(
                (s.status, s.rounds_done, [c.only.visits for c in s.cases])
            ),
            harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        )
    assert checkpoints[-1][0] == "interrupted"
    assert checkpoints[0][0] == "running"  # written after the first full round already
    assert sum(checkpoints[-1][2]) >= 2


@pytest.mark.parametrize(
    ("fresh", "cache_bytes", "build_s", "builds"),
    [
        (False, 1 << 30, 0.0, 1),  # kept between visits
        (False, 0, 0.0, 3),  # evicted: rebuilt on every visit
        (True, 1 << 30, 0.0, 3),  # fresh tensors on every visit (the default)
        (True, 1 << 30, 0.01, 1),  # unless building costs more than 5% of a visit
    ],
)
def test_variants_are_rebuilt_fresh_or_cached(clock, fresh, cache_bytes, build_s, builds):
    backend = FakeBackend(clock, costs(1e-4, 1e-4), build_s=build_s)
    state = runner.run_sweep(
        fake_cases(1),
        RunSettings(min_time=0.03, rounds=3, warmup=0.0, fresh=fresh),
        runner.local({"fake": backend}, cache_bytes=cache_bytes),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )
    assert set(backend.builds.values()) == {builds}  # per variant
    env = state.cases[0].only
    assert env.status == "ok" and env.visits == 3
    assert env.fresh == (build_s == 0.0)
    assert env.build_s >= 2 * build_s


# ---------------------------------------------------------------------------------------------
# Several environments, precision, the canary
# ---------------------------------------------------------------------------------------------


def two_envs(clock, factor: float, **kwargs) -> dict:
    """Two executors on one fake clock: 'base' at the given costs, 'head' ``factor`` slower."""
    base = FakeBackend(clock, costs(2e-4, 1e-4), **kwargs)
    head = FakeBackend(clock, lambda s, v: factor * (2e-4 if v == "standard" else 1e-4), **kwargs)
    return {
        "base": runner.LocalExecutor({"fake": base}),
        "head": runner.LocalExecutor({"fake": head}),
    }


def test_environments_are_interleaved_within_every_set(clock):
    order: list[tuple[str, str]] = []

    class Spy(runner.LocalExecutor):
        def __init__(self, name, backend):
            super().__init__({"fake": backend})
            self.name = name

        def turn(self, key, blocks, rewarm=(), settle_s=0.0):
            order.extend((self.name, v) for v, _ in blocks)
            assert settle_s == pytest.approx(5e-4)
            return super().turn(key, blocks, rewarm, settle_s)

    executors = {n: Spy(n, FakeBackend(clock, costs(2e-4, 1e-4))) for n in ("base", "head")}
    state = runner.run_sweep(
        fake_cases(1),
        RunSettings(min_time=0.02, rounds=2, warmup=0.0),
        executors,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0, switch_settle=5e-4),
    )
    case = state.cases[0]
    assert set(case.envs) == {"base", "head"}
    n_sets = case.sets
    assert len(order) == 4 * n_sets
    for i in range(n_sets):  # every set holds every environment x variant once
        assert sorted(order[4 * i : 4 * i + 4]) == sorted(
            (e, v) for e in ("base", "head") for v in ("standard", "separable")
        )
    # the same set index pairs the environments' blocks
    assert case.envs["base"].series["standard"].pairs == case.envs["head"].series["standard"].pairs


def test_a_slowdown_of_one_environment_is_measured_exactly(clock):
    state = runner.run_sweep(
        fake_cases(2),
        RunSettings(min_time=0.02, rounds=3, warmup=0.0),
        two_envs(clock, 1.25),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )
    for case in state.cases:
        base, head = case.envs["base"].series, case.envs["head"].series
        assert np.median(head["standard"].times) / np.median(base["standard"].times) == (
            pytest.approx(1.25)
        )


class Crashing(runner.LocalExecutor):
    """An executor whose 'process' dies on the n-th turn of one case."""

    def __init__(self, backend, crash_key: str, on_turn: int):
        super().__init__({"fake": backend})
        self.crash_key, self.on_turn, self.turns, self.restarts = crash_key, on_turn, 0, 0

    def turn(self, key, blocks, rewarm=(), settle_s=0.0):
        if key == self.crash_key:
            self.turns += 1
            if self.turns == self.on_turn:
                raise runner.ExecutorLost("the worker died (killed by SIGSEGV)")
        return super().turn(key, blocks, rewarm, settle_s)

    def restart(self):
        self.restarts += 1


def test_a_crashing_worker_fails_its_case_and_the_rest_completes(clock):
    cases = fake_cases(3)
    crash_key = f"{cases[1].spec.config_id}@fake"
    executors = {
        "base": runner.LocalExecutor({"fake": FakeBackend(clock, costs(2e-4, 1e-4))}),
        "head": Crashing(FakeBackend(clock, costs(2e-4, 1e-4)), crash_key, on_turn=2),
    }
    state = runner.run_sweep(
        cases,
        RunSettings(min_time=0.02, rounds=3, warmup=0.0),
        executors,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )
    assert state.status == "complete" and state.crashes == {"head": 1}
    assert executors["head"].restarts == 1
    crashed = state.cases[1].envs["head"]
    assert crashed.status == "worker_crashed" and "SIGSEGV" in crashed.error
    assert state.cases[1].envs["base"].status == "ok"  # the other environment went on
    assert state.cases[1].envs["base"].visits == 3
    for i in (0, 2):
        assert all(e.status == "ok" and e.visits == 3 for e in state.cases[i].envs.values())


def test_an_environment_whose_worker_keeps_dying_is_given_up(clock):
    class AlwaysDies(runner.LocalExecutor):
        def prepare(self, *args, **kwargs):
            raise runner.ExecutorLost("the worker died (exit status 1)")

    executors = {
        "base": runner.LocalExecutor({"fake": FakeBackend(clock, costs(2e-4, 1e-4))}),
        "head": AlwaysDies({"fake": FakeBackend(clock, costs(2e-4, 1e-4))}),
    }
    state = runner.run_sweep(
        fake_cases(5),
        RunSettings(min_time=0.01, rounds=2, warmup=0.0),
        executors,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )
    heads = [c.envs["head"] for c in state.cases]
    assert all(h.status == "worker_crashed" for h in heads)
    assert sum("died 3 times" in h.error for h in heads) == 2  # never tried
    assert all(c.envs["base"].status == "ok" for c in state.cases)


def test_precision_adds_rounds_to_the_imprecise_rows_only(clock):
    # Row 8 is steady; row 16 is noisy. Precision 2%: only the noisy row earns extra rounds.
    noise = lambda s, v: 0.0 if s.in_channels == 8 else 0.15  # noqa: E731
    backend = FakeBackend(clock, costs(2e-4, 1e-4), noise=noise, seed=3)
    state = runner.run_sweep(
        fake_cases(2),
        RunSettings(min_time=0.01, rounds=3, warmup=0.0),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        precision=0.02,
        wall=clock,
    )
    steady, noisy = (c.only for c in state.cases)
    assert steady.visits == 3
    assert noisy.visits > 3
    p = state.precision
    assert p.extra_rounds == noisy.visits - 3 and state.rounds_done == 3 + p.extra_rounds
    if p.stopped == "every row reached the target":
        assert noisy.speedup().relative_half_width <= 0.02 and p.unmet == []


def test_max_time_stops_the_extra_rounds_and_reports_the_unmet_rows(clock):
    backend = FakeBackend(clock, costs(2e-4, 1e-4), noise=0.3, seed=1)
    state = runner.run_sweep(
        fake_cases(2),
        RunSettings(min_time=0.01, rounds=3, warmup=0.0),
        runner.local({"fake": backend}),
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        precision=0.001,
        max_time=0.2,
        wall=clock,
    )
    p = state.precision
    assert p.stopped == "--max-time ran out"
    assert clock.t >= 0.2 and clock.t < 0.2 + 0.05  # stops at the first visit past the limit
    assert {u["config_id"] for u in p.unmet} == {c.case.spec.config_id for c in state.cases}
    assert all(u["relative_half_width"] > 0.001 for u in p.unmet)


def test_the_canary_is_sampled_after_every_visit_at_least_ten_times_a_round(clock):
    class FakeCanary:
        def __init__(self):
            self.n = 0

        def sample(self):
            self.n += 1
            return {"compute": 0.001 * self.n, "memory": 0.002}

    canary = FakeCanary()
    backend = FakeBackend(clock, costs(1e-4, 1e-4))

    def sweep(configurations: int, rounds: int):
        return runner.run_sweep(
            fake_cases(configurations),
            RunSettings(min_time=0.006, rounds=rounds, warmup=0.0),
            runner.local({"fake": backend}),
            harness=HarnessOptions(block_time=1e-3, warmup=0.0),
            canary=canary,
        )

    state = sweep(3, 2)
    # 3 visits a round: 4 samples after each (at least CANARY_PER_ROUND = 10 a round).
    assert runner.CANARY_PER_ROUND == 10
    assert [s["round"] for s in state.canary] == [0] * 12 + [1] * 12
    assert [s["compute"] for s in state.canary] == pytest.approx([0.001 * i for i in range(1, 25)])
    # Each sample names the visit it followed: the 4 after one visit are one moment.
    assert [s["visit"] for s in state.canary] == [v for v in range(1, 7) for _ in range(4)]
    assert len(sweep(20, 1).canary) == 20  # a round of 20 visits: once after each


def test_rounds_take_turns_between_an_environments_processes(clock):
    served: list[tuple[int, str]] = []

    class Process(runner.LocalExecutor):
        def __init__(self, number, backend):
            super().__init__({"fake": backend})
            self.number, self.calibrations = number, 0

        def calibrate(self, key, harness):
            self.calibrations += 1
            return super().calibrate(key, harness)

        def turn(self, key, blocks, rewarm=(), settle_s=0.0):
            served.append((self.number, key))
            return super().turn(key, blocks, rewarm, settle_s)

    # Process 1 runs this workload 10% slower (a kernel in a slow mode, say): rounds show it.
    processes = [
        Process(0, FakeBackend(clock, costs(2e-4, 1e-4))),
        Process(1, FakeBackend(clock, costs(2.2e-4, 1e-4))),
    ]
    state = runner.run_sweep(
        fake_cases(2),
        RunSettings(min_time=0.02, rounds=5, warmup=0.0),
        {"": processes},
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
    )
    assert [n for n, _ in served] == [0, 0, 1, 1, 0, 0, 1, 1, 0, 0]  # round r: process r % 2
    assert [p.calibrations for p in processes] == [2, 0]  # the first one sizes the blocks
    for case in state.cases:
        env = case.only
        assert env.visits == 5 and env.warmed == {0, 1}
        sp = env.speedup()
        # rounds 0, 2, 4 say 2.0, rounds 1 and 3 say 2.2: the interval spans both
        assert sp.ci_low < 2.0 * 1.01 and sp.ci_high > 2.2 * 0.99


class FreshProcess(runner.LocalExecutor):
    """A 'worker process' with a personality: it runs everything ``personality`` times slower,
    drawn again (sd 4%) at each restart, which the coordinator can ask for (a new process, as
    WorkerExecutor gives). Counts its restarts."""

    restartable = True

    def __init__(self, clock, cost, seed: int, noise: float = 0.0):
        self.rng = np.random.default_rng(seed)
        self.personality = 1.0
        backend = FakeBackend(
            clock, lambda s, v: self.personality * cost(s, v), seed=seed, noise=noise
        )
        super().__init__({"fake": backend})
        self.restarts = 0

    spread = 0.04  # of the personality a restart draws
    after = 1.0  # what a restart's personality is centred on

    def restart(self):
        self.restarts += 1
        self.personality = self.after * float(np.exp(self.rng.normal(0, self.spread)))


def test_decide_adds_rounds_in_fresh_processes_until_every_row_is_settled(clock):
    # Head is 25% slower on the 8-channel layer and the same on the 16-channel one; processes
    # differ by 4%. At a 5% threshold the slowdown is settled by the first rounds; the A/A
    # layer needs more process pairs before its interval fits inside +/-5%.
    base = costs(2e-4, 1e-4)

    def head(s, v):
        return (1.25 if s.in_channels == 8 else 1.0) * base(s, v)

    pools = {
        "base": [FreshProcess(clock, base, seed) for seed in (1, 2)],
        "head": [FreshProcess(clock, head, seed) for seed in (3, 4)],
    }
    for i, pool in enumerate(pools.values()):  # two different first processes per environment
        for j, process in enumerate(pool):
            process.personality = (1.03, 0.98)[j] if i == 0 else (0.97, 1.02)[j]
    state = runner.run_sweep(
        fake_cases(2),
        RunSettings(min_time=0.02, rounds=3, warmup=0.0),
        pools,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        decide=0.05,
        wall=clock,
    )
    p = state.precision
    assert p.mode == "decide" and p.stopped == "every row reached the target" and p.unmet == []
    slow, same = state.cases
    assert slow.envs["head"].visits < same.envs["head"].visits  # settled sooner
    assert same.envs["head"].visits == 3 + p.extra_rounds > 3
    # every extra round ran in a fresh process of each environment, numbered after the first
    # two; so did the 5 rounds that confirmed the slowdown
    assert sum(e.restarts for pool in pools.values() for e in pool) == 2 * (p.extra_rounds + 5)
    assert [(r["config_id"], r["confirmed"]) for r in state.confirmation] == [
        (slow.case.spec.config_id, True)
    ] * 2
    series = same.envs["head"].series["standard"]
    measured = list(zip(series.processes, series.rounds, strict=True))
    assert sorted({pr for pr, r in measured if r >= 3}) == list(range(2, 2 + p.extra_rounds))
    assert sorted({pr for pr, r in measured if r < 3}) == [0, 1]
    for variant in ("standard", "separable"):
        ratio = sweep_state.env_ratio(
            same.envs["head"].series[variant], same.envs["base"].series[variant]
        )
        assert ratio.units == 2 + p.extra_rounds
        assert ratio.ci_low > 1 / 1.05 and ratio.ci_high < 1.05
        slow_ratio = sweep_state.env_ratio(
            slow.envs["head"].series[variant], slow.envs["base"].series[variant]
        )
        assert slow_ratio.ci_low > 1.05


def test_decide_in_a_plain_run_settles_the_speedup_against_one(clock):
    # separable is 2x faster (settled at once) on one layer, as fast as standard on the other;
    # a process's personality moves both variants alike, so the speedup needs few processes
    def cost(s, v):
        return 1e-4 if (v == "separable" or s.in_channels == 16) else 2e-4

    processes = [FreshProcess(clock, cost, seed, noise=0.05) for seed in (5, 6, 7)]
    state = runner.run_sweep(
        fake_cases(2),
        RunSettings(min_time=0.02, rounds=3, warmup=0.0),
        {"": processes},
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        decide=0.05,
        wall=clock,
        max_time=30,
    )
    faster, even = (c.only for c in state.cases)
    assert faster.visits == 3 and faster.speedup().ci_low > 1.05
    assert state.precision.stopped == "every row reached the target"
    sp = even.speedup()
    assert sp.ci_low > 1 / 1.05 and sp.ci_high < 1.05


def decide_with_confirmation(clock, first_head: float, later_head: float):
    """An interleaved A/B on one 8-channel layer with --decide 5%: head's first two processes
    run it ``first_head`` times slower, every fresh one ``later_head`` times (each process also
    draws a 1% personality)."""
    base = costs(2e-4, 1e-4)
    pools = {
        "base": [FreshProcess(clock, base, seed, noise=0.01) for seed in (1, 2)],
        "head": [FreshProcess(clock, base, seed, noise=0.01) for seed in (3, 4)],
    }
    for pool in pools.values():
        for process in pool:
            process.personality = 1.0
            process.spread = 0.01
    for process in pools["head"]:
        process.personality = first_head
        process.after = later_head
    state = runner.run_sweep(
        fake_cases(1),
        RunSettings(min_time=0.02, rounds=4, warmup=0.0),
        pools,
        harness=HarnessOptions(block_time=1e-3, warmup=0.0),
        decide=0.05,
        wall=clock,
    )
    return state, pools


def test_a_slowdown_is_confirmed_in_fresh_processes_before_it_fails(clock):
    state, pools = decide_with_confirmation(clock, 1.25, 1.25)
    records = state.confirmation
    assert [(r["env"], r["variant"], r["confirmed"]) for r in records] == [
        ("head", "standard", True),
        ("head", "separable", True),
    ]
    extra = state.precision.extra_rounds
    assert all(r["rounds"] == [4 + extra, 4 + extra + 5] for r in records)
    assert state.rounds_done == 4 + extra + 5
    assert all(1.2 < r["ratio"] < 1.3 and r["ci_low"] > 1 for r in records)
    assert all(r["confidence"] == pytest.approx(0.9) for r in records)  # one-sided 95%
    assert sum(p.restarts for pool in pools.values() for p in pool) == 2 * (extra + 5)


def test_a_slowdown_of_the_first_processes_only_is_not_confirmed(clock):
    # the first two head processes drew a slow mode; fresh ones do not: not a regression
    state, _ = decide_with_confirmation(clock, 1.25, 1.0)
    assert [r["confirmed"] for r in state.confirmation] == [False, False]
    assert all(0.95 < r["ratio"] < 1.05 for r in state.confirmation)


def test_compare_keeps_a_slowdown_only_when_fresh_processes_confirm_it(clock):
    from dscbench import compare, results

    from .tables import tables_of

    state, _ = decide_with_confirmation(clock, 1.25, 1.25)
    table, samples = tables_of(state, {"fake": ("cpu", "Test CPU")})

    def judged(records):
        meta = {"schema_version": results.SCHEMA_VERSION, "confirmation": records}
        return compare.compare_envs(results.ResultSet(meta, table, samples))

    shown = [
        f"in 5 round(s) of fresh processes: x{r['ratio']:.3f}, one-sided 95% lower bound "
        f"{r['ci_low']:.3f}"
        for r in state.confirmation
    ]
    confirmed = judged(state.confirmation)
    assert [c.verdict for c in confirmed.changes] == ["slower", "slower"]
    assert [c.note for c in confirmed.changes] == [f"confirmed {w}" for w in shown]
    assert confirmed.exit_code() == 1
    # The same rows, had the fresh processes not reproduced the slowdown: no failure.
    refuted = judged([dict(r, confirmed=False) for r in state.confirmation])
    assert [c.verdict for c in refuted.changes] == ["inconclusive", "inconclusive"]
    assert [c.note for c in refuted.changes] == [
        f"slower in this run but not confirmed {w}" for w in shown
    ]
    assert refuted.exit_code() == 0
    assert judged(None).changes[0].note == ""  # a run without --decide: nothing to say
