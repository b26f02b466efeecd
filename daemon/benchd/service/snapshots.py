"""Build the exporter's :class:`ResultsSnapshot` from the history store.

Everything /metrics shows comes from the store, so a restart restores every series and no counter goes
backwards. The per-series latency histogram is cumulative over every run of the series; each stored
result's histogram is computed once from its raw latencies and cached (stored results never change).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from benchd.analysis import detect_change_points
from benchd.history import SQLiteHistoryStore
from benchd.metrics.names import DEFAULT_LATENCY_BUCKETS_S
from benchd.metrics.snapshot import (
    ChangePointSeries,
    DeviceInfoSeries,
    EnergyTotal,
    HistogramState,
    NoiseFloorSeries,
    ResultSeries,
    ResultsSnapshot,
    RunCount,
    VerdictSeries,
    VersionRole,
    histogram_from_latencies,
    merge_histograms,
)

logger = logging.getLogger(__name__)

#: Runs per series the change-point search looks at (the newest); it costs O(runs^2) per permutation.
CHANGE_POINT_RUNS = 200

#: analysis metric name -> the ``metric`` label the rules and dashboards know.
VERDICT_METRIC_LABELS = {
    "p99_latency": "p99",
    "p50_latency": "p50",
    "throughput": "throughput",
    "energy_per_sample": "energy",
}


class SnapshotBuilder:
    """Turns the store into a ResultsSnapshot; keeps per-result histograms between builds."""

    def __init__(
        self,
        store: SQLiteHistoryStore,
        buckets_s: tuple[float, ...] | None = None,
        devices: tuple[DeviceInfoSeries, ...] = (),
    ) -> None:
        self.store = store
        self.buckets_s = tuple(buckets_s or DEFAULT_LATENCY_BUCKETS_S)
        self.devices = devices
        self._histograms: dict[int, HistogramState] = {}
        self._champions: dict[str, str] = {}
        self._change_point_cache: dict[
            tuple[str, str, str, int], tuple[tuple[int, ...], tuple[Any, ...]]
        ] = {}
        self._lock = threading.Lock()

    def set_champion(self, model: str, version: str | None) -> None:
        """Remember the registry's champion of ``model`` (exported as a version role)."""
        with self._lock:
            if version:
                self._champions[model] = version
            else:
                self._champions.pop(model, None)

    def _histogram(self, result_id: int) -> HistogramState:
        cached = self._histograms.get(result_id)
        if cached is None:
            cached = histogram_from_latencies(self.store.latencies(result_id), self.buckets_s)
            self._histograms[result_id] = cached
        return cached

    def build(self) -> ResultsSnapshot:
        """Read the store and return the snapshot (thread-safe; called when a run ends and at start)."""
        with self._lock:
            return self._build()

    def _build(self) -> ResultsSnapshot:
        started = time.monotonic()
        latest: dict[tuple[str, str, str, str, int], ResultSeries] = {}
        histograms: dict[tuple[str, str, str, str, int], HistogramState] = {}
        energy: Mapping[str, float] = defaultdict(float)
        p99_history: dict[tuple[str, str, str, int], list[tuple[int, str, float]]] = defaultdict(list)
        for row in self.store.result_rows():  # newest first
            r = row.result
            key = (row.model, row.version, r.scenario, r.device, r.batch_size)
            if r.valid and not (r.telemetry and r.telemetry.throttled):
                p99_history[(row.model, r.scenario, r.device, r.batch_size)].append(
                    (row.id, row.version, r.latency.p99_s)
                )
            try:
                hist = self._histogram(row.id)
            except Exception:  # a damaged sample blob must not take /metrics down
                logger.exception("cannot read latencies of result %d", row.id)
                hist = HistogramState.empty(self.buckets_s)
            histograms[key] = merge_histograms(histograms[key], hist) if key in histograms else hist
            if r.energy is not None and r.energy.measured and r.energy.energy_j is not None:
                energy[r.device] += r.energy.energy_j  # type: ignore[index]
            if key in latest:
                continue
            lat = r.latency
            power = {}
            if r.energy is not None and r.energy.mean_power_w is not None:
                power["mean"] = r.energy.mean_power_w
            if r.energy is not None and r.energy.peak_power_w is not None:
                power["peak"] = r.energy.peak_power_w
            measured = r.energy is not None and r.energy.measured
            latest[key] = ResultSeries(
                model=row.model,
                version=row.version,
                scenario=r.scenario,
                device=r.device,
                batch_size=r.batch_size,
                latency_percentiles_s={
                    "0.5": lat.p50_s,
                    "0.9": lat.p90_s,
                    "0.95": lat.p95_s,
                    "0.99": lat.p99_s,
                    "0.999": lat.p999_s,
                },
                throughput_qps=r.throughput_qps,
                throughput_sps=r.throughput_sps,
                run_timestamp_unix_s=row.ended_unix_s,
                run_duration_s=r.duration_s,
                histogram=HistogramState.empty(self.buckets_s),
                energy_j=r.energy.energy_j if measured else None,
                energy_per_sample_j=r.energy.energy_per_sample_j if measured else None,
                power_w=power,
                throttled=bool(r.telemetry and r.telemetry.throttled),
                latency_bound_s=r.latency_bound_s,
            )
        results = tuple(_with_histogram(s, histograms[k]) for k, s in latest.items())
        verdicts, roles = self._verdicts()
        snapshot = ResultsSnapshot(
            results=results,
            verdicts=verdicts,
            run_counts=tuple(
                RunCount(m, s, o, c) for (m, s, o), c in sorted(self.store.run_counts().items())
            ),
            energy_totals=tuple(EnergyTotal(d, j) for d, j in sorted(energy.items())),
            devices=self.devices,
            roles=roles,
            version_order=self._version_order(),
            taken_unix_s=time.time(),
            change_points=self._change_points(p99_history),
            noise_floors=tuple(
                NoiseFloorSeries(f.model, f.scenario, f.device, f.hardware_class, f.p99_ratio, f.p50_ratio)
                for f in self.store.noise_floors()
            ),
        )
        logger.debug(
            "snapshot: %d series, %d verdicts in %.3f s",
            len(results),
            len(verdicts),
            time.monotonic() - started,
        )
        return snapshot

    def _change_points(
        self, history: Mapping[tuple[str, str, str, int], list[tuple[int, str, float]]]
    ) -> tuple[ChangePointSeries, ...]:
        """Change points of each series' per-run P99 (its latest :data:`CHANGE_POINT_RUNS` runs).

        Recomputed only for series that got a run since the last build (stored results never change).
        """
        found: list[ChangePointSeries] = []
        cache: dict[tuple[str, str, str, int], tuple[tuple[int, ...], tuple[ChangePointSeries, ...]]] = {}
        for series, rows in history.items():
            runs = rows[:CHANGE_POINT_RUNS][::-1]  # oldest first
            ids = tuple(i for i, _, _ in runs)
            cached = self._change_point_cache.get(series)
            if cached is not None and cached[0] == ids:
                points = cached[1]
            else:
                model, scenario, device, batch_size = series
                try:
                    points = tuple(
                        ChangePointSeries(model, runs[c.index][1], scenario, device, batch_size, c.ratio)
                        for c in detect_change_points([p99 for _, _, p99 in runs], min_magnitude=0.02)
                    )
                except ValueError as e:  # a damaged figure must not take /metrics down
                    logger.warning("change points of %s: %s", series, e)
                    points = ()
            cache[series] = (ids, points)
            found.extend(points)
        self._change_point_cache = cache
        return tuple(found)

    def _version_order(self) -> dict[str, tuple[str, ...]]:
        """Each model's versions, oldest first, from one read of the store."""
        order: dict[str, list[str]] = defaultdict(list)
        for v in self.store.list_versions():  # first seen first
            order[v.model].append(v.version)
        return {model: tuple(versions) for model, versions in order.items()}

    def _verdicts(self) -> tuple[tuple[VerdictSeries, ...], tuple[VersionRole, ...]]:
        """Every version's latest verdict per series, and the roles.

        A regressed version stays visible (and the deployed champion's regression keeps alerting) until a
        newer verdict on that same version clears it: a verdict on the next version does not replace it.
        ``candidate`` and ``baseline`` roles come from each series' newest verdict; ``champion`` from the
        registry.
        """
        series: list[VerdictSeries] = []
        roles: set[tuple[str, str, str]] = {(m, v, "champion") for m, v in self._champions.items()}
        for verdict in self.store.latest_verdicts():
            roles.add((verdict.model, verdict.candidate_version, "candidate"))
            roles.add((verdict.model, verdict.baseline_version, "baseline"))
        for verdict in self.store.latest_verdicts(per_version=True):
            for m in verdict.metrics:
                if m.state == "more":
                    continue
                series.append(
                    VerdictSeries(
                        model=verdict.model,
                        version=verdict.candidate_version,
                        baseline_version=verdict.baseline_version,
                        scenario=verdict.scenario,
                        device=verdict.device,
                        batch_size=verdict.batch_size,
                        metric=VERDICT_METRIC_LABELS.get(m.metric, m.metric),
                        state=m.state,
                        ratio=m.ratio,
                        low=m.ratio_low,
                        high=m.ratio_high,
                    )
                )
        return tuple(series), tuple(VersionRole(*r) for r in sorted(roles))


def _with_histogram(series: ResultSeries, histogram: HistogramState) -> ResultSeries:
    from dataclasses import replace

    return replace(series, histogram=histogram)
