"""Statistics on known samples."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from dscbench import stats

KEY = ["config_id", "backend", "env", "variant"]


def test_summarize_known_values():
    s = stats.summarize([1.0, 2.0, 3.0, 4.0, 5.0])
    assert (s.n, s.median, s.mean, s.min, s.max) == (5, 3.0, 3.0, 1.0, 5.0)
    assert (s.q1, s.q3, s.iqr) == (2.0, 4.0, 2.0)
    assert s.p10 == pytest.approx(1.4) and s.p90 == pytest.approx(4.6)
    assert s.std == pytest.approx(math.sqrt(2.5))
    assert s.cv == pytest.approx(math.sqrt(2.5) / 3)


def test_summarize_single_and_empty():
    assert stats.summarize([2.0]).std == 0.0
    with pytest.raises(ValueError):
        stats.summarize([])


def test_round_speedup_exact_when_noise_free_and_no_interval_without_spread():
    sp = stats.round_speedup([2e-3] * 20, [1e-3] * 20, [i % 4 for i in range(20)])
    assert (sp.value, sp.rounds) == (2.0, 4)
    # Identical rounds leave nothing to estimate a spread from: not a zero-width interval.
    assert math.isnan(sp.ci_low) and math.isnan(sp.ci_high)
    assert [w.code for w in stats.check_rounds(4, interval=False)] == ["zero_spread"]


def test_round_speedup_is_a_t_interval_over_round_medians():
    # Per-round medians of the pair ratios: 2.0, 2.2, 1.8 (times e^0 noise) -> log values.
    rounds = np.repeat([0, 1, 2], 3)
    ratios = np.array([2.0, 1.9, 2.1, 2.2, 2.2, 2.3, 1.8, 1.7, 1.8])
    sp = stats.round_speedup(ratios * 1e-3, np.full(9, 1e-3), rounds)
    logs = np.log([2.0, 2.2, 1.8])
    half = scipy_stats.t.ppf(0.975, 2) * logs.std(ddof=1) / np.sqrt(3)
    assert sp.value == pytest.approx(np.exp(logs.mean()))
    assert sp.ci_low == pytest.approx(np.exp(logs.mean() - half))
    assert sp.ci_high == pytest.approx(np.exp(logs.mean() + half))
    assert sp.relative_half_width == pytest.approx((sp.ci_high - sp.ci_low) / 2 / sp.value)


def test_pairs_cancel_a_drift_that_moves_both_sides():
    # Both sides drift together by 2x halfway through: every pair still says 2.
    drift = np.r_[np.ones(50), 2 * np.ones(50)]
    jitter = np.exp(np.random.default_rng(0).normal(0, 0.001, 100))
    sp = stats.round_speedup(2e-3 * drift * jitter, 1e-3 * drift, np.repeat(np.arange(4), 25))
    assert sp.value == pytest.approx(2.0, rel=1e-3)
    assert 2.0 * 0.997 < sp.ci_low < sp.ci_high < 2.0 * 1.003


def test_one_round_gives_no_interval_and_a_warning():
    sp = stats.round_speedup([2e-3, 2e-3], [1e-3, 1e-3], [0, 0])
    assert sp.value == pytest.approx(2.0) and math.isnan(sp.ci_low) and math.isnan(sp.ci_high)
    assert [w.code for w in stats.check_rounds(sp.rounds)] == ["few_rounds"]
    assert stats.check_rounds(3) == []


def test_the_rerun_interval_is_a_prediction_interval_with_the_between_run_sd():
    rounds = np.repeat([0, 1, 2], 3)
    ratios = np.array([2.0, 1.9, 2.1, 2.2, 2.2, 2.3, 1.8, 1.7, 1.8])
    sp = stats.round_speedup(ratios * 1e-3, np.full(9, 1e-3), rounds)
    logs = np.log([2.0, 2.2, 1.8])
    se2 = logs.var(ddof=1) / 3
    assert (sp.se2, sp.df) == (pytest.approx(se2), 2.0)
    # tau = 0: a rerun has its own sampling error, as large as this run's: sqrt(2) se, same df.
    low, high = stats.rerun_interval(sp, 0.0)
    half = scipy_stats.t.ppf(0.975, 2) * math.sqrt(2 * se2)
    assert (low, high) == (
        pytest.approx(sp.value * math.exp(-half)),
        pytest.approx(sp.value * math.exp(half)),
    )
    # tau > 0 adds 2 tau^2; tau is known, so the degrees of freedom grow (Welch-Satterthwaite).
    tau = 0.04
    v = 2 * se2 + 2 * tau**2
    df = v**2 / ((2 * se2) ** 2 / 2)
    low, high = stats.rerun_interval(sp, tau)
    assert math.log(high / sp.value) == pytest.approx(scipy_stats.t.ppf(0.975, df) * math.sqrt(v))
    assert math.log(sp.value / low) == pytest.approx(math.log(high / sp.value))
    # No interval without a spread to estimate from.
    flat = stats.round_speedup([2e-3] * 8, [1e-3] * 8, [i % 4 for i in range(8)])
    assert all(math.isnan(x) for x in stats.rerun_interval(flat, tau))


def test_the_between_run_variance_is_recovered_from_pairs_of_runs():
    """Runs whose true log speedup moves by tau = 5% from run to run, each estimated with a
    known se: tau^2 comes back from the pairs, and the rerun interval with it covers the
    next run's estimate about 95% of the time, the run's own interval far less often."""
    rng = np.random.default_rng(3)
    tau, se, n = 0.05, 0.02, 4000
    truth = rng.normal(0, tau, n)
    estimate = truth + rng.normal(0, se, n)
    d = np.diff(estimate)
    got = stats.between_run_variance(d, np.full(n - 1, se**2), np.full(n - 1, se**2))
    assert math.sqrt(got) == pytest.approx(tau, rel=0.05)
    assert stats.between_run_variance(np.zeros(3), np.ones(3), np.ones(3)) == 0.0  # floored
    z = scipy_stats.norm.ppf(0.975)
    prediction = np.mean(np.abs(d) <= z * math.sqrt(2 * se**2 + 2 * tau**2))
    confidence = np.mean(np.abs(d) <= z * se)
    assert 0.93 < prediction < 0.97 and confidence < 0.5


def test_round_speedup_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        stats.round_speedup([1.0, 2.0], [1.0], [0, 0])


def simulated_run(rng, true_speedup, rounds, pairs, round_sd, pair_sd, run_shift=0.0):
    """Blocks of one row from a machine whose state differs from round to round: every round
    shifts the (log) speedup by N(0, round_sd) (the separable variant suffers more from a busy
    phase), pairs add N(0, pair_sd) each, and the whole run can sit ``run_shift`` off."""
    round_effect = rng.normal(0, round_sd, rounds)
    r = np.repeat(np.arange(rounds), pairs)
    log_ratio = np.log(true_speedup) + run_shift + round_effect[r] + rng.normal(0, pair_sd, r.size)
    sep = 1e-4 * np.exp(rng.normal(0, 0.05, r.size))
    return sep * np.exp(log_ratio), sep, r


@pytest.mark.parametrize("rounds", [5, 10])
def test_round_intervals_cover_the_truth_and_a_rerun_under_round_effects(rounds):
    """Coverage on simulated data with round effects: the 95% interval over rounds covers the
    true speedup about 95% of the time, and the next run's estimate most of the time. Blocks
    within a round share its state, so an interval that treated every pair as independent
    (what the block bootstrap did) would cover far less; the naive one is shown for contrast."""
    rng = np.random.default_rng(7)
    truth, trials = 2.5, 400
    covered = covers_rerun = naive_covered = 0
    for _ in range(trials):
        a, b, r = simulated_run(rng, truth, rounds, 20, round_sd=0.03, pair_sd=0.01)
        sp = stats.round_speedup(a, b, r)
        covered += sp.ci_low <= truth <= sp.ci_high
        a2, b2, r2 = simulated_run(rng, truth, rounds, 20, round_sd=0.03, pair_sd=0.01)
        covers_rerun += sp.ci_low <= stats.round_speedup(a2, b2, r2).value <= sp.ci_high
        logs = np.log(a / b)
        half = 1.96 * logs.std(ddof=1) / np.sqrt(logs.size)
        naive_covered += np.exp(logs.mean() - half) <= truth <= np.exp(logs.mean() + half)
    assert 0.91 <= covered / trials <= 0.99
    assert covers_rerun / trials >= 0.80
    assert naive_covered / trials < 0.6


def test_process_intervals_cover_where_round_intervals_do_not():
    """Rounds measured by one worker process share that process's draw (REPORT-noise: between
    processes alive at once, 1 thread, the latency differs by several percent). Round r runs in
    process r mod K; the interval over process means covers the truth about 95% of the time,
    while one that took the rounds as independent covers far less."""
    rng = np.random.default_rng(19)
    truth, trials, rounds, processes = 2.0, 400, 12, 3
    covered = naive = 0
    for _ in range(trials):
        personality = rng.normal(0, 0.06, processes)
        r = np.repeat(np.arange(rounds), 10)
        p = r % processes
        log_ratio = np.log(truth) + personality[p] + rng.normal(0, 0.01, rounds)[r]
        b = 1e-4 * np.ones(r.size)
        a = b * np.exp(log_ratio + rng.normal(0, 0.005, r.size))
        sp = stats.round_speedup(a, b, r, processes=p)
        assert (sp.rounds, sp.units) == (rounds, processes)
        covered += sp.ci_low <= truth <= sp.ci_high
        flat = stats.round_speedup(a, b, r)
        assert flat.units == rounds
        naive += flat.ci_low <= truth <= flat.ci_high
    assert 0.91 <= covered / trials <= 0.99
    assert naive / trials < 0.7


def test_row_estimates_average_the_rounds_of_a_process_first():
    values = pd.DataFrame(
        [
            ("a", "fake", "", "standard", 0, 0, 0.0),
            ("a", "fake", "", "standard", 1, 1, 1.0),
            ("a", "fake", "", "standard", 2, 0, 0.2),
            ("a", "fake", "", "standard", 3, 1, 1.2),
            ("b", "fake", "", "standard", 0, 0, 0.0),  # one process: its rounds are the units
            ("b", "fake", "", "standard", 1, 0, 0.4),
        ],
        columns=[*KEY, "round", "process", "cost"],
    )
    est = stats.row_estimates(values, KEY)
    a, b = est.loc[("a", "fake", "", "standard")], est.loc[("b", "fake", "", "standard")]
    # a: process means 0.1 and 1.1 -> mean 0.6, se2 = var([0.1, 1.1]) / 2 = 0.25, 1 df
    assert (a["mean"], a["n"], a["df"], a["rounds"], a["unit"]) == (
        pytest.approx(0.6),
        2,
        1,
        4,
        "process",
    )
    assert a["se2"] == pytest.approx(0.25)
    assert a["round_sd"] == pytest.approx(np.std([0.0, 1.0, 0.2, 1.2], ddof=1))
    assert (b["mean"], b["n"], b["unit"]) == (pytest.approx(0.2), 2, "round")
    assert b["se2"] == pytest.approx(0.04)


def test_trimming_ignores_one_spoiled_round_in_ten():
    clean = np.array([[0.00, 0.01, -0.01, 0.02, -0.02, 0.00, 0.01, -0.01, 0.02, -0.02]])
    spoiled = clean.copy()
    spoiled[0, 3] = 0.5  # one round during a slow phase of the machine
    mean, se2, df = stats.trimmed_stats(spoiled)
    assert abs(mean[0]) < 0.01 and df[0] == 7  # 10 rounds, one trimmed from each end
    plain_se = spoiled.std(ddof=1) / np.sqrt(10)
    assert np.sqrt(se2[0]) < plain_se / 3
    mean5, se5, df5 = stats.trimmed_stats(clean[:, :5])  # below 10 rounds: a plain mean
    assert mean5[0] == pytest.approx(clean[0, :5].mean()) and df5[0] == 4
    assert se5[0] == pytest.approx(clean[0, :5].var(ddof=1) / 5)


def test_a_slow_round_shared_by_every_row_is_removed_before_the_spread():
    rows = [(f"c{i}", "fake", "", "standard") for i in range(6)]
    effect = {0: 0.0, 1: 0.15, 2: 0.0, 3: -0.02, 4: 0.0}  # round 1: the machine ran 16% slow
    own = {0: 0.01, 1: -0.01, 2: 0.0, 3: 0.01, 4: -0.01}
    values = pd.DataFrame(
        [
            (*key, r, i * 0.5 + effect[r] + (-1) ** i * own[r])  # each row's own noise differs
            for i, key in enumerate(rows)
            for r in range(5)
        ],
        columns=[*KEY, "round", "cost"],
    )
    corrected = stats.remove_round_effects(values, KEY, "backend", 5)
    spread = corrected.groupby("config_id").cost.std()
    assert spread.max() == pytest.approx(pd.Series(own).std(), rel=1e-9)
    few = values[values.config_id.isin(["c0", "c1"])]
    assert stats.remove_round_effects(few, KEY, "backend", 5).cost.tolist() == few.cost.tolist()
    effects = stats.round_effects(values, KEY)
    assert effects[1] - effects[0] == pytest.approx(0.15, abs=0.02)


def test_welch_combines_two_estimates():
    v, df = stats.welch(np.array([0.01]), np.array([4.0]), np.array([0.01]), np.array([4.0]))
    assert v[0] == pytest.approx(0.02) and df[0] == pytest.approx(8.0)
    v, df = stats.welch(np.array([0.0]), np.array([4.0]), np.array([0.0]), np.array([9.0]))
    assert v[0] == 0.0 and df[0] == 4.0  # degenerate: the smaller df


def test_geometric_mean_ignores_missing():
    assert stats.geometric_mean([2.0, 8.0, float("nan")]) == pytest.approx(4.0)
    assert math.isnan(stats.geometric_mean([]))


def codes(ws):
    return [w.code for w in ws]


def test_no_warnings_for_clean_samples():
    x = 1e-3 * (1 + 0.01 * np.random.default_rng(0).standard_normal(100))
    assert stats.check_samples(x, block_seconds=5e-3, timer_overhead=1e-7) == []


def test_high_spread_warning():
    x = np.r_[np.full(50, 1.0), np.full(50, 1.5)]
    ws = stats.check_samples(x)
    assert codes(ws) == ["high_spread"]
    assert ws[0].message == "IQR is 40% of the median"


def test_outlier_warning_only_when_common():
    base = 1e-3 * (1 + 0.01 * np.random.default_rng(0).standard_normal(100))
    one = base.copy()
    one[0] = 1.0
    assert "outliers" not in codes(stats.check_samples(one))
    many = base.copy()
    many[:10] = 1.0
    ws = stats.check_samples(many)
    assert "outliers" in codes(ws)
    assert "10 of 100 samples are outliers" in [w.message for w in ws]


def test_few_and_short_samples():
    ws = stats.check_samples([1.0] * 5, block_seconds=5e-5, timer_overhead=1e-7)
    assert codes(ws) == ["few_samples", "short_samples"]
