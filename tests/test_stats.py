"""Statistics on known samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dscbench import stats


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


def test_paired_speedup_exact_when_noise_free():
    a = [2e-3] * 20
    b = [1e-3] * 20
    sp = stats.paired_speedup(a, b, strata=[i % 4 for i in range(20)])
    assert (sp.value, sp.ci_low, sp.ci_high) == (2.0, 2.0, 2.0)


def test_paired_speedup_interval_covers_truth_and_narrows_with_n():
    rng = np.random.default_rng(1)

    def draw(n):
        a = 3e-3 * (1 + 0.05 * rng.standard_normal(n))
        b = 1e-3 * (1 + 0.05 * rng.standard_normal(n))
        return stats.paired_speedup(a, b, resamples=1000, seed=2)

    small, large = draw(20), draw(2000)
    assert small.ci_low < 3.0 < small.ci_high
    assert large.ci_low < 3.0 < large.ci_high
    assert (large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 4
    assert large.value == pytest.approx(3.0, rel=0.01)


def test_bootstrap_keeps_pairs_together():
    # Both sides drift together by 2x halfway through: the pairs cancel it, so every resample
    # (which moves pairs as units) gives a ratio near 2.
    drift = np.r_[np.ones(50), 2 * np.ones(50)]
    a = 2e-3 * drift
    b = 1e-3 * drift
    sp = stats.paired_speedup(a, b, strata=np.r_[np.zeros(50), np.ones(50)])
    assert sp.value == pytest.approx(2.0)
    assert sp.ci_low == pytest.approx(2.0) and sp.ci_high == pytest.approx(2.0)


def test_paired_speedup_rejects_mismatched_lengths():
    with pytest.raises(ValueError):
        stats.paired_speedup([1.0, 2.0], [1.0])


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
