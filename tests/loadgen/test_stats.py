import numpy as np
import pytest

from benchd.loadgen.stats import (
    min_queries_for_percentile,
    percentile_ci_ranks,
    percentile_s,
    summarise_latencies,
)


def test_nearest_rank_percentiles_report_observed_values():
    lat = np.arange(1, 101, dtype=np.int64) * 1000  # 1..100 us
    s = np.sort(lat)
    assert percentile_s(s, 50) == pytest.approx(50e-6)
    assert percentile_s(s, 99) == pytest.approx(99e-6)
    assert percentile_s(s, 99.9) == pytest.approx(100e-6)
    summary = summarise_latencies(lat)
    assert summary.n == 100
    assert summary.min_s == pytest.approx(1e-6) and summary.max_s == pytest.approx(100e-6)
    assert summary.p90_s == pytest.approx(90e-6)
    assert summary.mean_s == pytest.approx(50.5e-6)


def test_min_queries_for_percentile_matches_the_binomial_argument():
    assert min_queries_for_percentile(90) == 44
    assert min_queries_for_percentile(99) == 459
    assert min_queries_for_percentile(99.9) == 4603
    # (q)^n <= 1 - confidence holds at n and not at n - 1
    n = min_queries_for_percentile(99)
    assert 0.99**n <= 0.01 < 0.99 ** (n - 1)


@pytest.mark.parametrize("n", [500, 5_000, 300_000])
def test_p99_interval_covers_the_true_quantile_about_95_percent_of_the_time(n):
    rng = np.random.default_rng(1)
    ranks = percentile_ci_ranks(n, 99.0)
    assert ranks is not None
    lo, hi = ranks
    assert 1 <= lo < hi <= n
    true_q = -np.log(0.01)  # exponential(1) p99
    trials = 400 if n < 100_000 else 40
    hits = 0
    for _ in range(trials):
        s = np.sort(rng.exponential(size=n))
        hits += s[lo - 1] <= true_q <= s[hi - 1]
    assert hits / trials >= 0.90


def test_too_few_queries_give_no_p99_interval():
    assert percentile_ci_ranks(50, 99.0) is None
    summary = summarise_latencies(np.full(50, 1000, dtype=np.int64))
    assert summary.p99_ci_low_s is None and summary.p99_ci_high_s is None


def test_empty_latencies_summarise_to_nan():
    summary = summarise_latencies(np.empty(0, dtype=np.int64))
    assert summary.n == 0 and np.isnan(summary.p50_s)
