from __future__ import annotations

import numpy as np
import pytest

from benchd.analysis import detect_change_points
from benchd.analysis.changepoint import split_statistics


def test_slow_creep_across_versions_is_detected():
    # +2% a version for 15 versions: each step is below any single comparison's smallest reportable change.
    detected = 0
    for seed in range(10):
        rng = np.random.default_rng(100 + seed)
        p99_s = 2e-3 * 1.02 ** np.arange(15) * (1 + 0.01 * rng.standard_normal(15))
        points = detect_change_points(p99_s, seed=seed)
        detected += bool(points)
        assert all(p.ratio > 1.0 and p.mean_after > p.mean_before for p in points)
    assert detected == 10


def test_sustained_step_is_located():
    rng = np.random.default_rng(7)
    p99_s = 2e-3 * np.r_[np.ones(12), np.full(12, 1.08)] * (1 + 0.01 * rng.standard_normal(24))
    (point,) = detect_change_points(p99_s)
    assert point.index == 12
    assert point.ratio == pytest.approx(1.08, abs=0.015)
    assert point.p_value <= 0.01


def test_pure_noise_is_not_flagged():
    flagged = 0
    for seed in range(20):
        rng = np.random.default_rng(seed)
        flagged += bool(detect_change_points(2e-3 * (1 + 0.05 * rng.standard_normal(30)), seed=seed))
    assert flagged <= 1


def test_a_single_spike_is_not_a_change():
    p99_s = 2e-3 * (1 + 0.02 * np.random.default_rng(3).standard_normal(30))
    p99_s[15] *= 3.0
    assert detect_change_points(p99_s) == []


def test_seeded_and_deterministic():
    rng = np.random.default_rng(1)
    values = np.r_[np.ones(10), np.full(10, 1.05)] * (1 + 0.02 * rng.standard_normal(20))
    assert detect_change_points(values, seed=5) == detect_change_points(values, seed=5)


def test_min_magnitude_merges_small_changes():
    values = np.r_[np.ones(10), np.full(10, 1.01), np.full(10, 1.3)]
    values = values * (1 + 0.001 * np.random.default_rng(0).standard_normal(30))
    assert [p.index for p in detect_change_points(values)] == [10, 20]
    (big,) = detect_change_points(values, min_magnitude=0.05)
    assert big.index == 20 and big.ratio == pytest.approx(1.3 / 1.005, rel=0.01)


def test_split_statistic_matches_the_definition():
    x = np.array([1.0, 2.0, 1.5, 4.0, 5.0, 4.5, 6.0])
    q = split_statistics(np.abs(x[:, None] - x[None, :]), 2)
    for i, tau in enumerate(range(2, 6)):
        left, right = x[:tau], x[tau:]
        between = np.abs(left[:, None] - right[None, :]).mean()
        within_l = np.abs(left[:, None] - left[None, :]).sum() / (len(left) * (len(left) - 1))
        within_r = np.abs(right[:, None] - right[None, :]).sum() / (len(right) * (len(right) - 1))
        expected = len(left) * len(right) / len(x) * (2 * between - within_l - within_r)
        assert q[i] == pytest.approx(expected)


def test_short_series_and_bad_input():
    assert detect_change_points([1.0, 2.0, 3.0, 4.0, 5.0]) == []
    with pytest.raises(ValueError, match="min_segment"):
        detect_change_points([1.0] * 10, min_segment=1)
    with pytest.raises(ValueError, match="finite"):
        detect_change_points([1.0] * 9 + [float("nan")])
