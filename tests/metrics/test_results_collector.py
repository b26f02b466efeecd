"""ResultsCollector through a fresh CollectorRegistry: values, labels, latest K, describe()."""

from __future__ import annotations

import dataclasses

import pytest
from metrics_fixtures import BOUNDS_S, result_series, small_snapshot
from prometheus_client import CollectorRegistry, generate_latest

from benchd.metrics.collectors import ResultsCollector
from benchd.metrics.snapshot import ResultsSnapshot, merge_histograms

SERIES = {"model": "resnet50", "version": "4", "scenario": "server", "device": "cuda:0", "batch_size": "1"}


def _registry(snapshot: ResultsSnapshot | None, k: int = 3) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ResultsCollector(lambda: snapshot, latest_versions=k))
    return registry


def test_latest_run_gauges(snapshot: ResultsSnapshot) -> None:
    r = _registry(snapshot)
    get = r.get_sample_value
    assert get("benchd_run_latency_seconds", {**SERIES, "percentile": "0.99"}) == 0.0093
    assert get("benchd_run_latency_seconds", {**SERIES, "percentile": "0.5"}) == 0.004
    assert get("benchd_run_throughput_queries_per_second", SERIES) == 240.0
    assert get("benchd_run_throughput_samples_per_second", SERIES) == 240.0
    assert get("benchd_run_energy_joules", SERIES) == 410.5
    assert get("benchd_run_energy_per_sample_joules", SERIES) == 0.0566
    assert get("benchd_run_power_watts", {**SERIES, "stat": "peak"}) == 287.0
    assert get("benchd_run_timestamp_seconds", SERIES) == 1_700_000_000.0 + 4 * 3600
    assert get("benchd_run_duration_seconds", SERIES) == 31.5
    assert get("benchd_run_throttled", SERIES) == 0.0
    offline = {**SERIES, "scenario": "offline", "batch_size": "8"}
    assert get("benchd_run_throttled", offline) == 1.0


def test_unmeasured_energy_is_absent_not_zero(snapshot: ResultsSnapshot) -> None:
    bert = {**SERIES, "model": "bert", "version": "1"}
    r = _registry(snapshot)
    assert r.get_sample_value("benchd_run_throughput_queries_per_second", bert) == 240.0
    assert r.get_sample_value("benchd_run_energy_joules", bert) is None
    assert r.get_sample_value("benchd_run_power_watts", {**bert, "stat": "mean"}) is None


def test_histogram_buckets_sum_and_count(snapshot: ResultsSnapshot) -> None:
    r = _registry(snapshot)
    key = ("resnet50", "4", "server")
    h = next(s for s in snapshot.results if (s.model, s.version, s.scenario) == key).histogram
    for bound, count in zip(BOUNDS_S, h.cumulative_counts, strict=False):
        bucket = {**SERIES, "le": str(bound)}
        assert r.get_sample_value("benchd_query_latency_seconds_bucket", bucket) == count
    assert r.get_sample_value("benchd_query_latency_seconds_bucket", {**SERIES, "le": "+Inf"}) == 400
    assert r.get_sample_value("benchd_query_latency_seconds_count", SERIES) == 400
    assert r.get_sample_value("benchd_query_latency_seconds_sum", SERIES) == pytest.approx(h.sum_s)


def test_only_latest_k_versions_are_exported(snapshot: ResultsSnapshot) -> None:
    v1 = {**SERIES, "version": "1"}
    assert _registry(snapshot, k=3).get_sample_value("benchd_run_duration_seconds", v1) is None
    assert _registry(snapshot, k=4).get_sample_value("benchd_run_duration_seconds", v1) == 31.5
    only_latest = _registry(snapshot, k=1)
    assert only_latest.get_sample_value("benchd_run_duration_seconds", {**SERIES, "version": "2"}) is None
    assert only_latest.get_sample_value("benchd_run_duration_seconds", SERIES) == 31.5
    # the champion (v3, deployed) stays exported however old: its verdict must keep alerting
    assert only_latest.get_sample_value("benchd_run_duration_seconds", {**SERIES, "version": "3"}) == 31.5


def test_verdict_gauges(snapshot: ResultsSnapshot) -> None:
    r = _registry(snapshot)
    labels = {**SERIES, "baseline_version": "3", "metric": "p99"}
    assert r.get_sample_value("benchd_regression_ratio", {**labels, "bound": "point"}) == 1.21
    assert r.get_sample_value("benchd_regression_ratio", {**labels, "bound": "low"}) == 1.12
    assert r.get_sample_value("benchd_regression_ratio", {**labels, "bound": "high"}) == 1.33
    assert r.get_sample_value("benchd_regression_detected", labels) == 1.0
    assert r.get_sample_value("benchd_regression_state", {**labels, "state": "regressed"}) == 1.0
    assert r.get_sample_value("benchd_regression_state", {**labels, "state": "unchanged"}) is None
    throughput = {**labels, "metric": "throughput"}
    assert r.get_sample_value("benchd_regression_detected", throughput) == 0.0
    # Version 1's verdict is outside the latest 3 versions.
    old = {**SERIES, "version": "1", "baseline_version": "0", "metric": "p99"}
    assert r.get_sample_value("benchd_regression_detected", old) is None


def test_run_counts_export_every_outcome_from_zero(snapshot: ResultsSnapshot) -> None:
    r = _registry(snapshot)
    get = r.get_sample_value
    assert get("benchd_runs_total", {"model": "resnet50", "scenario": "server", "outcome": "ok"}) == 4
    assert get("benchd_runs_total", {"model": "resnet50", "scenario": "server", "outcome": "failed"}) == 1
    assert get("benchd_runs_total", {"model": "bert", "scenario": "server", "outcome": "timeout"}) == 0
    assert get("benchd_runs_total", {"model": "bert", "scenario": "offline", "outcome": "ok"}) is None
    assert get("benchd_energy_joules_total", {"device": "cuda:0"}) == 123456.5


def test_info_metrics(snapshot: ResultsSnapshot) -> None:
    r = _registry(snapshot)
    champion = {"model": "resnet50", "version": "3", "role": "champion"}
    assert r.get_sample_value("benchd_model_version_info", champion) == 1
    device = {"device": "cuda:0", "name": "NVIDIA H100 80GB HBM3", "uuid": "GPU-3f2a", "driver": "550.54.15",
              "hardware_class": "h100-80gb"}  # fmt: skip
    assert r.get_sample_value("benchd_device_info", device) == 1


def test_describe_does_not_read_the_snapshot() -> None:
    def provider() -> ResultsSnapshot:
        raise AssertionError("describe() must not collect")

    collector = ResultsCollector(provider)
    described = {m.name for m in collector.describe()}
    assert "benchd_query_latency_seconds" in described and "benchd_runs" in described
    assert all(not m.samples for m in collector.describe())
    CollectorRegistry().register(collector)  # registering calls describe(), not collect()


def test_no_snapshot_exports_nothing() -> None:
    assert generate_latest(_registry(None)) == b""


def test_a_model_that_leaves_the_snapshot_stops_appearing(snapshot: ResultsSnapshot) -> None:
    current = {"snap": snapshot}
    registry = CollectorRegistry()
    registry.register(ResultsCollector(lambda: current["snap"]))
    bert = {**SERIES, "model": "bert", "version": "1"}
    assert registry.get_sample_value("benchd_run_duration_seconds", bert) == 31.5
    without_bert = tuple(r for r in snapshot.results if r.model != "bert")
    current["snap"] = dataclasses.replace(snapshot, results=without_bert)
    assert registry.get_sample_value("benchd_run_duration_seconds", bert) is None


def test_duplicate_series_keep_the_newest(snapshot: ResultsSnapshot) -> None:
    newer = result_series("resnet50", "4", run_timestamp_unix_s=1_900_000_000.0, run_duration_s=99.0)
    older = result_series("resnet50", "4", run_timestamp_unix_s=1_000_000_000.0, run_duration_s=1.0)
    snap = dataclasses.replace(snapshot, results=(*snapshot.results, newer, older))
    text = generate_latest(_registry(snap)).decode()
    assert _registry(snap).get_sample_value("benchd_run_duration_seconds", SERIES) == 99.0
    line = (
        'benchd_run_duration_seconds{batch_size="1",device="cuda:0",model="resnet50",scenario="server",version="4"}'
    )
    assert text.count(line) == 1


def test_restored_snapshot_exports_the_same_counters() -> None:
    """A restart rebuilds each cumulative histogram from the store's runs: same bytes, whatever the order."""
    base = small_snapshot()
    run_a = result_series("resnet50", "4", seed=4).histogram
    run_b = result_series("resnet50", "4", seed=44).histogram

    def with_histogram(histogram):
        series = dataclasses.replace(base.results[3], histogram=histogram)
        return dataclasses.replace(base, results=(*base.results[:3], series, *base.results[4:]))

    before_restart = with_histogram(merge_histograms(run_a, run_b))
    after_restart = with_histogram(merge_histograms(run_b, run_a))
    assert generate_latest(_registry(before_restart)) == generate_latest(_registry(after_restart))
    assert _registry(before_restart).get_sample_value("benchd_query_latency_seconds_count", SERIES) == 800
