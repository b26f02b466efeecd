"""The metric contract: every name, type, help text and label set benchd exports.

This module is the single place metric names are spelled (DESIGN.md, "Metric contract"). Collectors,
tests, alert rules and dashboards refer to these constants. ``MetricSpec.name`` is the name as PromQL
sees it (counters end in ``_total``, info gauges in ``_info``); ``MetricSpec.family`` is the OpenMetrics
family name (suffix stripped), which is what ``prometheus_client`` metric families take.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PREFIX = "benchd_"

# Label names.
MODEL = "model"
VERSION = "version"
SCENARIO = "scenario"
DEVICE = "device"
BATCH_SIZE = "batch_size"
BASELINE_VERSION = "baseline_version"

SERIES_LABELS: tuple[str, ...] = (MODEL, VERSION, SCENARIO, DEVICE, BATCH_SIZE)
"""Labels identifying one result series: a model version's scenario at one batch size on one device."""

VERDICT_LABELS: tuple[str, ...] = (MODEL, VERSION, BASELINE_VERSION, SCENARIO, DEVICE, BATCH_SIZE, "metric")
"""Labels of verdict gauges; ``version`` is the candidate version."""

PERCENTILES: tuple[str, ...] = ("0.5", "0.9", "0.95", "0.99", "0.999")
"""Values of the ``percentile`` label of ``benchd_run_latency_seconds`` (quantiles, 0-1)."""

POWER_STATS: tuple[str, ...] = ("mean", "peak")
"""Values of the ``stat`` label of ``benchd_run_power_watts``."""

RATIO_BOUNDS: tuple[str, ...] = ("point", "low", "high")
"""Values of the ``bound`` label of ``benchd_regression_ratio`` (estimate and 95% interval)."""

VERDICT_METRICS: tuple[str, ...] = ("p99", "p50", "throughput", "energy")
"""Verdict metric names the alert rules and dashboards know (``metric`` label); others export as-is."""

VERDICT_STATES: tuple[str, ...] = ("regressed", "unchanged", "improved", "inconclusive")
"""Values of the ``state`` label of ``benchd_regression_state``."""

ROLES: tuple[str, ...] = ("candidate", "baseline", "champion")
"""Values of the ``role`` label of ``benchd_model_version_info``."""

POLL_OUTCOMES: tuple[str, ...] = ("ok", "error")
"""Values of the ``outcome`` label of ``benchd_registry_polls_total``."""

DEFAULT_LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.00075,
    0.001, 0.0015, 0.002, 0.003, 0.004, 0.005, 0.0075,
    0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.075,
    0.1, 0.15, 0.2, 0.3, 0.5, 0.75,
    1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
"""Upper bounds (s) of the latency histogram: dense from 1 ms to 100 ms, where inference latencies live."""

_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_KINDS = ("gauge", "counter", "histogram", "info")


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the contract.

    Attributes:
        name: the name PromQL sees (``benchd_runs_total``, ``benchd_build_info``).
        kind: ``gauge``, ``counter``, ``histogram`` or ``info`` (a gauge of value 1 named ``*_info``).
        help: the HELP text.
        labels: label names in export order (the exposition sorts them anyway).
    """

    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name) or not self.name.startswith(PREFIX):
            raise ValueError(f"invalid metric name {self.name!r}")
        if self.kind not in _KINDS:
            raise ValueError(f"invalid metric kind {self.kind!r}")
        if self.kind == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"counter {self.name!r} must end in _total")
        if self.kind == "info" and not self.name.endswith("_info"):
            raise ValueError(f"info metric {self.name!r} must end in _info")
        for label in self.labels:
            if not _LABEL_RE.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"invalid label name {label!r} on {self.name}")

    @property
    def family(self) -> str:
        """The OpenMetrics family name: the name without ``_total`` (counters) or ``_info`` (info)."""
        if self.kind == "counter":
            return self.name[: -len("_total")]
        if self.kind == "info":
            return self.name[: -len("_info")]
        return self.name


# Results: derived from the history store, rendered when a run ends.
QUERY_LATENCY = MetricSpec(
    "benchd_query_latency_seconds", "histogram",
    "Latency of every measured query of every run of the series (cumulative over runs).", SERIES_LABELS,
)  # fmt: skip
RUN_LATENCY = MetricSpec(
    "benchd_run_latency_seconds", "gauge",
    "Exact latency percentile of the latest run, from its raw samples.", (*SERIES_LABELS, "percentile"),
)  # fmt: skip
RUN_THROUGHPUT_QPS = MetricSpec(
    "benchd_run_throughput_queries_per_second", "gauge", "Queries per second of the latest run.",
    SERIES_LABELS,
)  # fmt: skip
RUN_THROUGHPUT_SPS = MetricSpec(
    "benchd_run_throughput_samples_per_second", "gauge", "Samples per second of the latest run.",
    SERIES_LABELS,
)  # fmt: skip
RUN_LATENCY_BOUND = MetricSpec(
    "benchd_run_latency_bound_seconds", "gauge",
    "The latency bound the latest run was held to (server scenario with latency_bound set).", SERIES_LABELS,
)  # fmt: skip
RUN_ENERGY = MetricSpec(
    "benchd_run_energy_joules", "gauge", "Energy of the latest run's measured window.", SERIES_LABELS,
)  # fmt: skip
RUN_ENERGY_PER_SAMPLE = MetricSpec(
    "benchd_run_energy_per_sample_joules", "gauge", "Energy per sample of the latest run.", SERIES_LABELS,
)  # fmt: skip
RUN_POWER = MetricSpec(
    "benchd_run_power_watts", "gauge", "Device power over the latest run's measured window.",
    (*SERIES_LABELS, "stat"),
)  # fmt: skip
RUN_TIMESTAMP = MetricSpec(
    "benchd_run_timestamp_seconds", "gauge", "Unix time the latest run of the series ended.", SERIES_LABELS,
)  # fmt: skip
RUN_DURATION = MetricSpec(
    "benchd_run_duration_seconds", "gauge", "Wall-clock duration of the latest run of the series.",
    SERIES_LABELS,
)  # fmt: skip
RUN_THROTTLED = MetricSpec(
    "benchd_run_throttled", "gauge", "1 when the device reported clock throttling during the latest run.",
    SERIES_LABELS,
)  # fmt: skip
ENERGY_TOTAL = MetricSpec(
    "benchd_energy_joules_total", "counter", "Energy of all measured windows on the device.", (DEVICE,),
)  # fmt: skip
RUNS_TOTAL = MetricSpec(
    "benchd_runs_total", "counter", "Benchmark runs by outcome (ok, failed, timeout, invalid).",
    (MODEL, SCENARIO, "outcome"),
)  # fmt: skip
REGRESSION_RATIO = MetricSpec(
    "benchd_regression_ratio", "gauge",
    "Candidate / baseline ratio of a verdict metric: point estimate and 95% interval bounds.",
    (*VERDICT_LABELS, "bound"),
)  # fmt: skip
REGRESSION_DETECTED = MetricSpec(
    "benchd_regression_detected", "gauge", "1 when the verdict says the candidate regressed on the metric.",
    VERDICT_LABELS,
)  # fmt: skip
REGRESSION_STATE = MetricSpec(
    "benchd_regression_state", "gauge",
    "1 for the verdict's state (regressed, unchanged, improved, inconclusive).", (*VERDICT_LABELS, "state"),
)  # fmt: skip
CHANGE_POINT_RATIO = MetricSpec(
    "benchd_change_point_ratio", "gauge",
    "A change point in the series' per-run P99 history, on the version whose run starts the new segment: "
    "mean P99 after / before (above 1: a creep no single verdict flagged).", SERIES_LABELS,
)  # fmt: skip
NOISE_FLOOR_RATIO = MetricSpec(
    "benchd_verdict_noise_floor_ratio", "gauge",
    "The smallest change a comparison batch can decide on this host within its budget, from A/A batches "
    "(half-width of the final 95% interval as a ratio; metric: p99, p50); a P99 threshold below is refused.",
    ("model", "scenario", "device", "hardware_class", "metric"),
)  # fmt: skip
MODEL_VERSION_INFO = MetricSpec(
    "benchd_model_version_info", "info", "Which version holds which role (candidate, baseline, champion).",
    (MODEL, VERSION, "role"),
)  # fmt: skip
DEVICE_INFO = MetricSpec(
    "benchd_device_info", "info", "What each benchmark device is.",
    (DEVICE, "name", "uuid", "driver", "hardware_class"),
)  # fmt: skip

# Daemon health: live, rendered on every scrape.
REGISTRY_POLLS = MetricSpec(
    "benchd_registry_polls_total", "counter", "Registry polls by outcome (ok, error).",
    ("registry", "outcome"),
)  # fmt: skip
REGISTRY_LAST_SUCCESS = MetricSpec(
    "benchd_registry_last_success_timestamp_seconds", "gauge",
    "Unix time of the last successful registry poll.",
    ("registry",),
)  # fmt: skip
QUEUE_RUNS = MetricSpec("benchd_queue_runs", "gauge", "Runs waiting in the persisted run queue.")
RUNS_IN_STATE = MetricSpec(
    "benchd_runs_in_state", "gauge",
    "Runs in the store in each state (queued, running, ok, failed, timeout, invalid, interrupted).",
    ("state",),
)  # fmt: skip
BUILD_INFO = MetricSpec("benchd_build_info", "info", "benchd build information.", ("version", "python"))
SCRAPE_COLLECTOR_SUCCESS = MetricSpec(
    "benchd_scrape_collector_success", "gauge", "1 when the collector's last collection succeeded.",
    ("collector",),
)  # fmt: skip
SCRAPE_COLLECTOR_DURATION = MetricSpec(
    "benchd_scrape_collector_duration_seconds", "gauge",
    "Seconds the collector's last collection took (the results collector: its last render).", ("collector",),
)  # fmt: skip

RESULT_METRICS: tuple[MetricSpec, ...] = (
    QUERY_LATENCY, RUN_LATENCY, RUN_THROUGHPUT_QPS, RUN_THROUGHPUT_SPS, RUN_LATENCY_BOUND, RUN_ENERGY,
    RUN_ENERGY_PER_SAMPLE,
    RUN_POWER, RUN_TIMESTAMP, RUN_DURATION, RUN_THROTTLED, ENERGY_TOTAL, RUNS_TOTAL, REGRESSION_RATIO,
    REGRESSION_DETECTED, REGRESSION_STATE, CHANGE_POINT_RATIO, NOISE_FLOOR_RATIO, MODEL_VERSION_INFO,
    DEVICE_INFO,
)  # fmt: skip
"""Metrics derived from the store (the cached part of /metrics), in exposition order."""

HEALTH_METRICS: tuple[MetricSpec, ...] = (
    REGISTRY_POLLS, REGISTRY_LAST_SUCCESS, QUEUE_RUNS, RUNS_IN_STATE, BUILD_INFO, SCRAPE_COLLECTOR_SUCCESS,
    SCRAPE_COLLECTOR_DURATION,
)  # fmt: skip
"""Daemon health metrics (the live part of /metrics)."""

ALL_METRICS: tuple[MetricSpec, ...] = RESULT_METRICS + HEALTH_METRICS
