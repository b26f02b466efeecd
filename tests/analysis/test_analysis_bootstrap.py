from __future__ import annotations

import numpy as np
import pytest

from benchd.analysis.bootstrap import (
    SortedGroups,
    coefficient_of_variation,
    expanded_alpha,
    interval,
    nearest_rank,
)
from benchd.loadgen.stats import percentile_s


def test_percentiles_are_nearest_rank_like_the_latency_summary():
    rng = np.random.default_rng(0)
    groups = [rng.lognormal(0, 1, n) for n in (1, 7, 100, 2000, 459)]
    packed = SortedGroups.pack(groups)
    for q in (50.0, 99.0):
        expected = [percentile_s(np.sort(np.round(g * 1e9)).astype(np.int64), q) for g in groups]
        got = SortedGroups.pack([np.round(g * 1e9) * 1e-9 for g in groups]).percentile(q)
        assert got == pytest.approx(expected, rel=1e-12)
    assert list(nearest_rank(np.array([1, 100, 2000]), 99.0)) == [1, 99, 1980]
    assert len(packed) == 5


@pytest.mark.parametrize("q", [50.0, 99.0])
def test_order_statistic_draw_matches_brute_force_resampling(q):
    # The Beta shortcut must give the same distribution as resampling the queries and taking the percentile.
    rng = np.random.default_rng(1)
    sample = rng.lognormal(0, 0.8, 300)
    packed = SortedGroups.pack([sample])
    shortcut = packed.resampled_percentile(q, np.zeros(20_000, dtype=np.int64), np.random.default_rng(2))
    brute_rng = np.random.default_rng(3)
    resamples = np.sort(sample[brute_rng.integers(0, 300, size=(20_000, 300))], axis=1)
    brute = resamples[:, nearest_rank(300, q) - 1]
    for level in (0.025, 0.25, 0.5, 0.75, 0.975):
        assert np.quantile(shortcut, level) == pytest.approx(np.quantile(brute, level), rel=0.02)
    assert shortcut.std() == pytest.approx(brute.std(), rel=0.05)
    assert set(np.unique(shortcut)) <= set(sample)


def test_each_chosen_group_is_resampled_independently():
    packed = SortedGroups.pack([np.arange(1000.0), np.arange(1000.0) + 5000])
    idx = np.array([[0, 0, 1, 1]] * 500)
    draws = packed.resampled_percentile(50.0, idx, np.random.default_rng(0))
    assert draws.shape == (500, 4)
    assert (draws[:, 0] != draws[:, 1]).mean() > 0.9
    assert (draws[:, 2:] >= 5000).all() and (draws[:, :2] < 1000).all()
    with pytest.raises(ValueError):
        SortedGroups.pack([np.array([])])


def test_expanded_interval_is_wider_for_few_clusters():
    assert expanded_alpha(2) < 1e-6
    assert expanded_alpha(5) < expanded_alpha(10) < expanded_alpha(40) < 0.05
    assert expanded_alpha(1000) == pytest.approx(0.05, abs=0.002)
    boots = np.random.default_rng(0).standard_normal(10_000)
    lo3, hi3 = interval(boots, 3)
    lo100, hi100 = interval(boots, 100)
    assert lo3 < lo100 < 0 < hi100 < hi3
    assert hi100 == pytest.approx(1.96, abs=0.1)
    assert np.isnan(interval(np.array([np.nan, np.inf]), 5)[0])


def test_coefficient_of_variation():
    assert coefficient_of_variation(np.array([1.0])) == 0.0
    assert coefficient_of_variation(np.array([0.9, 1.1])) == pytest.approx(np.std([0.9, 1.1], ddof=1))
