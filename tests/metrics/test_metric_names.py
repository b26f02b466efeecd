"""The metric contract in names.py: names, kinds, labels."""

from __future__ import annotations

import pytest

from benchd.metrics import names
from benchd.metrics.names import MetricSpec


def test_names_are_unique_prefixed_and_follow_prometheus_conventions() -> None:
    seen = [m.name for m in names.ALL_METRICS]
    assert len(seen) == len(set(seen))
    for spec in names.ALL_METRICS:
        assert spec.name.startswith("benchd_")
        assert spec.help.endswith(".")
        if spec.kind == "counter":
            assert spec.name.endswith("_total") and spec.family == spec.name[: -len("_total")]
        else:
            assert not spec.name.endswith("_total")


def test_contract_names_from_design_are_all_there() -> None:
    contract = {
        "benchd_query_latency_seconds": "histogram",
        "benchd_run_latency_seconds": "gauge",
        "benchd_run_throughput_queries_per_second": "gauge",
        "benchd_run_throughput_samples_per_second": "gauge",
        "benchd_run_energy_joules": "gauge",
        "benchd_run_energy_per_sample_joules": "gauge",
        "benchd_run_power_watts": "gauge",
        "benchd_energy_joules_total": "counter",
        "benchd_runs_total": "counter",
        "benchd_run_timestamp_seconds": "gauge",
        "benchd_run_duration_seconds": "gauge",
        "benchd_regression_ratio": "gauge",
        "benchd_regression_detected": "gauge",
        "benchd_model_version_info": "info",
        "benchd_registry_polls_total": "counter",
        "benchd_registry_last_success_timestamp_seconds": "gauge",
        "benchd_device_info": "info",
        "benchd_queue_runs": "gauge",
        "benchd_build_info": "info",
        "benchd_scrape_collector_success": "gauge",
        "benchd_scrape_collector_duration_seconds": "gauge",
    }
    by_name = {m.name: m.kind for m in names.ALL_METRICS}
    for name, kind in contract.items():
        assert by_name.get(name) == kind, name


def test_result_series_labels_never_carry_unbounded_values() -> None:
    forbidden = {"run_id", "path", "timestamp", "hostname", "host", "instance", "job"}
    for spec in names.ALL_METRICS:
        assert not forbidden & set(spec.labels), spec.name
    assert names.RUN_LATENCY.labels == (*names.SERIES_LABELS, "percentile")
    assert names.REGRESSION_RATIO.labels[-1] == "bound"
    assert "baseline_version" in names.REGRESSION_DETECTED.labels


@pytest.mark.parametrize(
    ("name", "kind", "labels"),
    [
        ("benchd_runs", "counter", ()),  # a counter without _total
        ("benchd_x_info", "histogram", ("le",)),  # le is reserved
        ("other_metric", "gauge", ()),  # no prefix
        ("benchd_x", "summary", ()),  # unsupported kind
        ("benchd_x", "gauge", ("__reserved",)),
    ],
)
def test_invalid_specs_are_refused(name: str, kind: str, labels: tuple[str, ...]) -> None:
    with pytest.raises(ValueError):
        MetricSpec(name, kind, "help.", labels)


def test_default_buckets_are_increasing_and_dense_between_1_and_100_ms() -> None:
    bounds = names.DEFAULT_LATENCY_BUCKETS_S
    assert list(bounds) == sorted(set(bounds))
    assert sum(1 for b in bounds if 0.001 <= b <= 0.1) >= 12
