"""The machine canary: its workload, its per-round estimate, and what compare makes of it."""

from __future__ import annotations

import math
import platform

import numpy as np
import pytest

from dscbench import canary


def test_a_real_canary_times_both_parts_on_its_threads():
    slept: list[float] = []
    c = canary.Canary(2, sleep=slept.append)
    try:
        samples = [c.sample() for _ in range(3)]
    finally:
        c.close()
    assert slept == [canary.SETTLE_S] * 3  # it lets the previous workload's threads settle
    for s in samples:
        assert set(s) == set(canary.PARTS)
        assert all(0 < v < 1.0 for v in s.values())  # milliseconds, not seconds
    described = c.describe()
    assert described["threads"] == 2 and described["parts"] == list(canary.PARTS)
    impl = described["implementation"]
    assert impl["version"] == canary.CANARY_VERSION == 2
    assert impl["python"] == platform.python_version() and impl["openssl"]


def test_the_canary_times_one_parallel_section_per_part():
    ticks = iter(range(100))
    c = canary.Canary(3, clock=lambda: float(next(ticks)), sleep=lambda s: None)
    try:
        sample = c.sample()
    finally:
        c.close()
    # one clock reading before and one after the parallel section: one tick apart
    assert sample == {"compute": 1.0}


def test_default_threads_follow_the_sweep_within_the_cpus(monkeypatch):
    monkeypatch.setattr(canary.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert canary.default_threads([1, 1]) == 1
    assert canary.default_threads([1, 4, 2]) == 2
    assert canary.default_threads([]) == 1


def test_index_uses_the_current_parts_only():
    assert canary.index({"compute": 4e-3}) == pytest.approx(4e-3)
    assert canary.index({"compute": 4e-3, "memory": 1e-3}) == pytest.approx(4e-3)  # version 1
    assert math.isnan(canary.index({}))


def test_per_round_values_and_the_run_estimate():
    samples = [
        {"round": 0, "compute": 1e-3},
        {"round": 0, "compute": 3e-3},
        {"round": 0, "compute": 2e-3},
        {"round": 1, "compute": 4e-3, "memory": 8e-3},
        {"round": 2, "compute": 2e-3},
    ]
    per = canary.per_round(samples)
    assert per == pytest.approx({0: math.log(2e-3), 1: math.log(4e-3), 2: math.log(2e-3)})
    assert canary.per_round(samples, "memory") == pytest.approx({1: math.log(8e-3)})
    est = canary.run_estimate(samples)
    values = np.log([2e-3, 4e-3, 2e-3])
    assert est.mean == pytest.approx(values.mean()) and est.n == 3
    # The error of this run's average: round 0's robust spread (1.4826 x its MAD, log(3/2)),
    # borrowed by the one-sample rounds, a median's sqrt(pi / 2n) each, averaged over 3 rounds;
    # the within-round degrees of freedom (3 samples in round 0: 2).
    sd = 1.4826 * math.log(1.5)
    assert est.df == 2
    assert est.se2 == pytest.approx(math.pi / 2 * (sd**2 / 3 + sd**2 + sd**2) / 9)
    assert canary.run_estimate([]) is None
    # No round of two samples: the spread over rounds is all there is (the old estimate).
    single = canary.run_estimate([s for s in samples if s["round"] > 0] + [samples[0]])
    logs = np.log([1e-3, 4e-3, 2e-3])
    assert single.se2 == pytest.approx(logs.var(ddof=1) / 3) and single.df == 2


def test_the_run_estimate_measures_the_run_not_the_next_one():
    """A busy machine: rounds 20% apart, samples within a round 1% apart. The estimate's error
    is that of this run's average (small), not the spread of machine states over rounds."""
    rng = np.random.default_rng(0)
    level = {0: 1.0, 1: 1.2, 2: 0.9, 3: 1.15, 4: 1.0}
    samples = [
        {"round": r, "compute": 1e-3 * f * (1 + 0.01 * rng.standard_normal())}
        for r, f in level.items()
        for _ in range(10)
    ]
    est = canary.run_estimate(samples)
    centers = np.log(1e-3 * np.array(list(level.values())))
    assert est.mean == pytest.approx(centers.mean(), abs=0.005)
    assert math.sqrt(est.se2) < 0.005  # the rounds' own spread would be 5%
    assert est.df == 45
    # Samples that record their visit: those taken back to back after one visit are one
    # moment, so 10 samples from 2 visits a round give the error of 2, not of 10.
    two_visits = [{**x, "visit": 2 * x["round"] + (i % 10) // 5} for i, x in enumerate(samples)]
    paired = canary.run_estimate(two_visits)
    assert paired.mean == est.mean and paired.df == 5  # 5 rounds of 2 visits: 1 each
    assert paired.se2 == pytest.approx(est.se2 * 10 / 2)
    # One slow sample (a preempted thread) in a round moves neither its median nor its spread.
    spiked = [*samples, {"round": 0, "compute": 5e-3}]
    assert canary.run_estimate(spiked).se2 == pytest.approx(est.se2, rel=0.3)
