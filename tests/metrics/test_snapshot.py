"""Histogram building and merging, and the latest-K version selection."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from metrics_fixtures import result_series, small_snapshot

from benchd.metrics.snapshot import (
    HistogramState,
    ResultsSnapshot,
    histogram_from_latencies,
    latest_versions,
    limit_versions,
    merge_histograms,
)


def test_histogram_counts_use_le_semantics_and_are_cumulative() -> None:
    bounds = (0.001, 0.002, 0.005)
    latencies_ns = np.array([500_000, 1_000_000, 1_000_001, 2_000_000, 4_999_999, 7_000_000, 9_000_000_000])
    h = histogram_from_latencies(latencies_ns, bounds)
    assert h.cumulative_counts == (2, 4, 5, 7)  # 1 ms is in le=0.001; 7 ms and 9 s overflow to +Inf
    assert h.count == 7
    assert h.sum_s == pytest.approx(latencies_ns.sum() / 1e9)


def test_empty_latencies_give_an_empty_histogram() -> None:
    h = histogram_from_latencies(np.array([], dtype=np.int64), (0.1, 0.2))
    assert h == HistogramState.empty((0.1, 0.2))


def test_merge_adds_runs_and_equals_bucketing_all_latencies_at_once() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.integers(1, 20_000_000, 300), rng.integers(1, 20_000_000, 500)
    bounds = (0.001, 0.005, 0.01)
    merged = merge_histograms(histogram_from_latencies(a, bounds), histogram_from_latencies(b, bounds))
    whole = histogram_from_latencies(np.concatenate([a, b]), bounds)
    assert merged.cumulative_counts == whole.cumulative_counts
    assert merged.count == 800
    assert merged.sum_s == pytest.approx(whole.sum_s)


def test_merge_refuses_different_bounds() -> None:
    with pytest.raises(ValueError, match="bounds"):
        merge_histograms(HistogramState.empty((0.1,)), HistogramState.empty((0.2,)))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(bucket_upper_bounds_s=(0.2, 0.1), cumulative_counts=(0, 0, 0), count=0, sum_s=0.0),
        dict(bucket_upper_bounds_s=(0.1,), cumulative_counts=(0,), count=0, sum_s=0.0),
        dict(bucket_upper_bounds_s=(0.1,), cumulative_counts=(3, 2), count=2, sum_s=0.0),
        dict(bucket_upper_bounds_s=(0.1,), cumulative_counts=(1, 2), count=3, sum_s=0.0),
    ],
)
def test_inconsistent_histograms_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        HistogramState(**kwargs)


def test_negative_or_nan_latencies_are_refused() -> None:
    with pytest.raises(ValueError):
        histogram_from_latencies(np.array([1.0, np.nan]), (0.1,))
    with pytest.raises(ValueError):
        histogram_from_latencies(np.array([-5]), (0.1,))


def test_latest_versions_follow_registry_order_not_run_time() -> None:
    snap = small_snapshot()
    # Version 1 re-ran most recently (a cron re-run); it is still the oldest version.
    rerun = result_series("resnet50", "1", run_timestamp_unix_s=1_800_000_000.0)
    snap = dataclasses.replace(snap, results=(*snap.results, rerun))
    assert latest_versions(snap, 3)["resnet50"] == {"2", "3", "4"}
    assert latest_versions(snap, 1)["bert"] == {"1"}


def test_latest_versions_fall_back_to_run_time_for_unlisted_models() -> None:
    times = [("a", 3.0), ("b", 1.0), ("c", 2.0)]
    results = tuple(result_series("m", v, run_timestamp_unix_s=t) for v, t in times)
    assert latest_versions(ResultsSnapshot(results=results), 2)["m"] == {"a", "c"}


def test_limit_versions_drops_old_results_and_verdicts_keeps_counts() -> None:
    snap = small_snapshot()
    limited = limit_versions(snap, 3)
    assert {r.version for r in limited.results if r.model == "resnet50"} == {"2", "3", "4"}
    assert {v.version for v in limited.verdicts} == {"4"}
    assert limited.run_counts == snap.run_counts
    assert limit_versions(limited, 3) is limited
    with pytest.raises(ValueError):
        limit_versions(snap, 0)
