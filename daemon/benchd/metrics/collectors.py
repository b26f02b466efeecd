"""The results collector: metric families built from a :class:`ResultsSnapshot` on every collect.

``ResultsCollector`` holds no state of its own: ``collect()`` asks its snapshot provider for the current
snapshot and yields fresh families, so a model or version that leaves the snapshot simply stops
appearing. Only the latest K versions of each model are exported. In the daemon it is collected once
per run end by :class:`benchd.metrics.cache.ResultsCache`, which serves the rendered bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from benchd.metrics import names
from benchd.metrics.names import MetricSpec
from benchd.metrics.snapshot import (
    NoiseFloorSeries,
    ResultSeries,
    ResultsSnapshot,
    VerdictSeries,
    limit_versions,
)

logger = logging.getLogger(__name__)

RUN_OUTCOMES: tuple[str, ...] = ("ok", "failed", "timeout", "invalid")
"""Outcomes of ``benchd_runs_total``; each is exported (0 when none) for every model and scenario seen,
so the first failure of a series is an increase from 0 that ``increase()`` sees."""

SnapshotProvider = Callable[[], "ResultsSnapshot | None"]
T = TypeVar("T")


def family(spec: MetricSpec, *, extra_labels: tuple[str, ...] = ()) -> Metric:
    """Return an empty ``prometheus_client`` family for ``spec`` (its labels plus ``extra_labels``)."""
    labels = list(spec.labels) + list(extra_labels)
    if spec.kind == "gauge":
        return GaugeMetricFamily(spec.family, spec.help, labels=labels)
    if spec.kind == "counter":
        return CounterMetricFamily(spec.family, spec.help, labels=labels)
    if spec.kind == "histogram":
        return HistogramMetricFamily(spec.family, spec.help, labels=labels)
    return InfoMetricFamily(spec.family, spec.help, labels=labels)


F = TypeVar("F", GaugeMetricFamily, CounterMetricFamily, HistogramMetricFamily, InfoMetricFamily)


def typed_family(kind: type[F], spec: MetricSpec) -> F:
    """:func:`family` of ``spec``, typed as the ``kind`` the caller adds samples to (its ``add_metric``).

    Raises:
        TypeError: ``spec`` is of another kind (a contract change the caller does not know about).
    """
    made = family(spec)
    if not isinstance(made, kind):
        raise TypeError(f"{spec.name} is a {spec.kind}, not a {kind.__name__}")
    return made


def _series_labels(r: ResultSeries) -> list[str]:
    return [r.model, r.version, r.scenario, r.device, str(r.batch_size)]


def _verdict_labels(v: VerdictSeries) -> list[str]:
    return [v.model, v.version, v.baseline_version, v.scenario, v.device, str(v.batch_size), v.metric]


def _unique(items: Iterable[T], key: Callable[[T], tuple], newest: Callable[[T], float]) -> list[T]:
    """Sort by ``key`` and keep one item per key (the newest; the last given on ties).

    Two samples with one label set would make Prometheus reject the whole scrape.
    """
    chosen: dict[tuple, T] = {}
    for item in items:
        k = key(item)
        if k in chosen:
            logger.warning("duplicate series %s in the snapshot: keeping the newest", k)
            if newest(item) < newest(chosen[k]):
                continue
        chosen[k] = item
    return [chosen[k] for k in sorted(chosen)]


class ResultsCollector:
    """Collector of everything derived from the store: results, histograms, verdicts, run counts.

    Args:
        snapshot_provider: returns the current snapshot (None before the first one: nothing exported).
        latest_versions: export results and verdicts of only this many latest versions per model.
    """

    def __init__(self, snapshot_provider: SnapshotProvider, latest_versions: int = 3) -> None:
        if latest_versions < 1:
            raise ValueError("latest_versions must be >= 1")
        self._provider = snapshot_provider
        self._latest_versions = latest_versions

    def describe(self) -> Iterator[Metric]:
        """Yield every family this collector exports, without samples (no snapshot is read)."""
        for spec in names.RESULT_METRICS:
            yield family(spec)

    def collect(self) -> Iterator[Metric]:
        """Yield fresh families built from the current snapshot."""
        snapshot = self._provider()
        if snapshot is None:
            return
        snapshot = limit_versions(snapshot, self._latest_versions)
        yield from self._result_families(snapshot)
        yield from self._counter_families(snapshot)
        yield from self._verdict_families(snapshot)
        yield from self._info_families(snapshot)

    def _result_families(self, snapshot: ResultsSnapshot) -> Iterator[Metric]:
        results = _unique(
            snapshot.results,
            key=lambda r: (r.model, r.version, r.scenario, r.device, r.batch_size),
            newest=lambda r: r.run_timestamp_unix_s,
        )
        hist = typed_family(HistogramMetricFamily, names.QUERY_LATENCY)
        for r in results:
            h = r.histogram
            les = [floatToGoString(b) for b in h.bucket_upper_bounds_s] + ["+Inf"]
            hist.add_metric(_series_labels(r), list(zip(les, h.cumulative_counts, strict=True)), h.sum_s)
        yield hist

        latency = typed_family(GaugeMetricFamily, names.RUN_LATENCY)
        for r in results:
            labels = _series_labels(r)
            for percentile in sorted(r.latency_percentiles_s, key=float):
                latency.add_metric([*labels, percentile], r.latency_percentiles_s[percentile])
        yield latency

        simple: list[tuple[MetricSpec, Callable[[ResultSeries], float | None]]] = [
            (names.RUN_THROUGHPUT_QPS, lambda r: r.throughput_qps),
            (names.RUN_THROUGHPUT_SPS, lambda r: r.throughput_sps),
            (names.RUN_LATENCY_BOUND, lambda r: r.latency_bound_s),
            (names.RUN_ENERGY, lambda r: r.energy_j),
            (names.RUN_ENERGY_PER_SAMPLE, lambda r: r.energy_per_sample_j),
        ]
        for spec, value_of in simple:
            metric = typed_family(GaugeMetricFamily, spec)
            for r in results:
                value = value_of(r)
                if value is not None:
                    metric.add_metric(_series_labels(r), value)
            yield metric

        power = typed_family(GaugeMetricFamily, names.RUN_POWER)
        for r in results:
            for stat in sorted(r.power_w):
                power.add_metric([*_series_labels(r), stat], r.power_w[stat])
        yield power

        for spec, value_of in [
            (names.RUN_TIMESTAMP, lambda r: r.run_timestamp_unix_s),
            (names.RUN_DURATION, lambda r: r.run_duration_s),
            (names.RUN_THROTTLED, lambda r: 1.0 if r.throttled else 0.0),
        ]:
            metric = typed_family(GaugeMetricFamily, spec)
            for r in results:
                metric.add_metric(_series_labels(r), value_of(r))
            yield metric

    def _counter_families(self, snapshot: ResultsSnapshot) -> Iterator[Metric]:
        energy = typed_family(CounterMetricFamily, names.ENERGY_TOTAL)
        for e in sorted(snapshot.energy_totals, key=lambda e: e.device):
            energy.add_metric([e.device], e.joules)
        yield energy

        counts: dict[tuple[str, str, str], int] = {}
        for c in snapshot.run_counts:
            if c.count < 0:
                logger.warning("negative run count for %s/%s/%s ignored", c.model, c.scenario, c.outcome)
                continue
            key = (c.model, c.scenario, c.outcome)
            counts[key] = counts.get(key, 0) + c.count
        for model, scenario in {(m, s) for m, s, _ in counts}:
            for outcome in RUN_OUTCOMES:
                counts.setdefault((model, scenario, outcome), 0)
        runs = typed_family(CounterMetricFamily, names.RUNS_TOTAL)
        for key in sorted(counts):
            runs.add_metric(list(key), counts[key])
        yield runs

    def _verdict_families(self, snapshot: ResultsSnapshot) -> Iterator[Metric]:
        verdicts = _unique(
            snapshot.verdicts,
            key=lambda v: (*_verdict_labels(v)[:5], v.batch_size, v.metric),
            newest=lambda v: 0.0,
        )
        ratio = typed_family(GaugeMetricFamily, names.REGRESSION_RATIO)
        detected = typed_family(GaugeMetricFamily, names.REGRESSION_DETECTED)
        state = typed_family(GaugeMetricFamily, names.REGRESSION_STATE)
        for v in verdicts:
            labels = _verdict_labels(v)
            ratio.add_metric([*labels, "point"], v.ratio)
            ratio.add_metric([*labels, "low"], v.low)
            ratio.add_metric([*labels, "high"], v.high)
            detected.add_metric(labels, 1.0 if v.state == "regressed" else 0.0)
            state.add_metric([*labels, v.state], 1.0)
        yield ratio
        yield detected
        yield state
        change = typed_family(GaugeMetricFamily, names.CHANGE_POINT_RATIO)
        for c in sorted(snapshot.change_points, key=lambda c: (c.model, c.version, c.scenario, c.device,
                                                               c.batch_size)):  # fmt: skip
            change.add_metric([c.model, c.version, c.scenario, c.device, str(c.batch_size)], c.ratio)
        yield change
        floors = typed_family(GaugeMetricFamily, names.NOISE_FLOOR_RATIO)
        for f in sorted(snapshot.noise_floors, key=_floor_key):
            labels = [f.model, f.scenario, f.device, f.hardware_class]
            floors.add_metric([*labels, "p99"], f.p99_ratio)
            floors.add_metric([*labels, "p50"], f.p50_ratio)
        yield floors

    def _info_families(self, snapshot: ResultsSnapshot) -> Iterator[Metric]:
        roles = typed_family(InfoMetricFamily, names.MODEL_VERSION_INFO)
        for role in sorted(set(snapshot.roles), key=lambda x: (x.model, x.role, x.version)):
            roles.add_metric([role.model, role.version, role.role], {})
        yield roles
        devices = typed_family(InfoMetricFamily, names.DEVICE_INFO)
        for d in sorted(set(snapshot.devices), key=lambda d: d.device):
            devices.add_metric([d.device, d.name, d.uuid, d.driver, d.hardware_class], {})
        yield devices


def _floor_key(f: NoiseFloorSeries) -> tuple[str, str, str, str]:
    return (f.model, f.scenario, f.device, f.hardware_class)
