"""Build the exporter's :class:`ResultsSnapshot` from the history store.

Everything /metrics shows comes from the store, so a restart restores every series and no counter goes
backwards. Only the latest ``export.latest_versions`` versions of each model (and its champion, however
old) are exported, so a build reads and keeps only theirs: which versions are the latest, the energy
counter and the P99 history of the change-point search come from indexed columns
(:mod:`benchd.history.export_reads`), and only the exported versions' results are decoded. A series'
latency histogram is cumulative over every run of that series; each result's histogram is computed once
from its raw latencies and cached while its series is exported (stored results never change), and
dropped once it is not, so the daemon's memory follows what it exports, not what it has run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from benchd.analysis import detect_change_points
from benchd.history.base import ResultRow
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
    choose_latest_versions,
    histogram_from_latencies,
    merge_histograms,
)
from benchd.records import ModelVersion, NoiseFloor, Verdict

logger = logging.getLogger(__name__)

#: analysis metric name -> the ``metric`` label the rules and dashboards know.
VERDICT_METRIC_LABELS = {
    "p99_latency": "p99",
    "p50_latency": "p50",
    "throughput": "throughput",
    "energy_per_sample": "energy",
}

#: (model, version, scenario, device, batch_size): one exported result series.
SeriesKey = tuple[str, str, str, str, int]


class ExportSource(Protocol):
    """What a build reads of the store: a :class:`HistoryStore`, or a ``HostView`` of a shared one."""

    def list_versions(self, model: str | None = None) -> list[ModelVersion]:
        """Known versions, oldest first."""

    def result_versions(self, *, host: str | None = None) -> dict[tuple[str, str], float]:
        """Every (model, version) with results, and when its newest result ended (unix s)."""

    def result_rows(
        self,
        model: str | None = None,
        version: str | None = None,
        scenario: str | None = None,
        limit: int | None = None,
        *,
        hardware_class: str | None = None,
        host: str | None = None,
    ) -> list[ResultRow]:
        """Stored results, newest first."""

    def latencies(self, result_id: int) -> np.ndarray:
        """A result's raw latencies (int64 ns)."""

    def energy_totals(self, *, host: str | None = None) -> dict[str, float]:
        """Joules of every measured window, per device."""

    def p99_history(
        self, runs: int, *, host: str | None = None
    ) -> dict[tuple[str, str, str, int], list[tuple[int, str, float]]]:
        """The newest ``runs`` valid, unthrottled (id, version, p99 s) per series."""

    def run_counts(self, host: str | None = None) -> dict[tuple[str, str, str], int]:
        """Finished-run counts by (model, scenario, outcome)."""

    def latest_verdicts(
        self, model: str | None = None, *, host: str | None = None, per_version: bool = False
    ) -> list[Verdict]:
        """The latest verdict per series (per candidate version with ``per_version``)."""

    def noise_floors(self, *, host: str | None = None) -> list[NoiseFloor]:
        """The newest noise floor of every (model, hardware class)."""


class SnapshotBuilder:
    """Turns the store into a ResultsSnapshot of the exported versions; caches their result histograms.

    Args:
        store: the history store (a :class:`~benchd.history.HostView` on a shared one).
        buckets_s: the latency histogram's bucket bounds (default: benchd's 100us ... 10s).
        devices: the ``benchd_device_info`` series.
        latest_versions: versions per model exported (``export.latest_versions``); the champion too.
        change_point_runs: newest runs per series searched for change points (``export.change_point_runs``).
        change_point_min_magnitude: smaller change points are merged away (a ratio,
            ``export.change_point_min_magnitude``).
    """

    def __init__(
        self,
        store: ExportSource,
        buckets_s: Sequence[float] | None = None,
        devices: tuple[DeviceInfoSeries, ...] = (),
        *,
        latest_versions: int = 3,
        change_point_runs: int = 200,
        change_point_min_magnitude: float = 0.02,
    ) -> None:
        if latest_versions < 1:
            raise ValueError(f"latest_versions must be >= 1, got {latest_versions}")
        self.store = store
        self.buckets_s = tuple(buckets_s or DEFAULT_LATENCY_BUCKETS_S)
        self.devices = devices
        self.latest_versions = latest_versions
        self.change_point_runs = change_point_runs
        self.change_point_min_magnitude = change_point_min_magnitude
        self._histograms: dict[int, HistogramState] = {}
        self._champions: dict[str, str] = {}
        self._change_point_cache: dict[
            tuple[str, str, str, int], tuple[tuple[int, ...], tuple[ChangePointSeries, ...]]
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

    @property
    def cached_result_ids(self) -> frozenset[int]:
        """The results whose histograms are cached now (those of exported series)."""
        with self._lock:
            return frozenset(self._histograms)

    def build(self) -> ResultsSnapshot:
        """Read the store and return the snapshot (thread-safe; called when a run ends and at start)."""
        with self._lock:
            return self._build()

    def exported_versions(
        self, version_order: Mapping[str, tuple[str, ...]], verdicts: Sequence[Verdict]
    ) -> dict[str, frozenset[str]]:
        """Per model, the versions a build exports: the latest ``latest_versions`` and the champion.

        The latest are picked among the versions with results or verdicts, as
        :func:`benchd.metrics.snapshot.latest_versions` picks them from a snapshot.
        """
        last_run = dict(self.store.result_versions())
        for verdict in verdicts:
            last_run.setdefault((verdict.model, verdict.candidate_version), float("-inf"))
        latest = choose_latest_versions(last_run, version_order, self.latest_versions)
        chosen = {model: set(versions) for model, versions in latest.items()}
        for model, champion in self._champions.items():
            chosen.setdefault(model, set()).add(champion)
        return {model: frozenset(versions) for model, versions in chosen.items()}

    def _build(self) -> ResultsSnapshot:
        started = time.monotonic()
        version_order = self._version_order()
        all_verdicts = self.store.latest_verdicts(per_version=True)
        keep = self.exported_versions(version_order, all_verdicts)
        rows = [
            row
            for model, versions in sorted(keep.items())
            for version in sorted(versions)
            for row in self.store.result_rows(model, version)
        ]
        rows.sort(key=lambda row: row.id, reverse=True)  # newest first, as the store returns them
        results = self._result_series(rows)
        self._histograms = {row.id: self._histograms[row.id] for row in rows if row.id in self._histograms}
        verdicts, roles = self._verdicts(all_verdicts, keep)
        change_points = tuple(
            c
            for c in self._change_points(self.store.p99_history(self.change_point_runs))
            if c.version in keep.get(c.model, ())
        )
        snapshot = ResultsSnapshot(
            results=results,
            verdicts=verdicts,
            run_counts=tuple(
                RunCount(m, s, o, c) for (m, s, o), c in sorted(self.store.run_counts().items())
            ),
            energy_totals=tuple(EnergyTotal(d, j) for d, j in sorted(self.store.energy_totals().items())),
            devices=self.devices,
            roles=roles,
            version_order={  # the exported versions' order is all the collector ranks
                model: tuple(v for v in versions if v in keep[model])
                for model, versions in version_order.items()
                if model in keep
            },
            taken_unix_s=time.time(),
            change_points=change_points,
            noise_floors=tuple(
                NoiseFloorSeries(f.model, f.scenario, f.device, f.hardware_class, f.p99_ratio, f.p50_ratio)
                for f in self.store.noise_floors()
            ),
        )
        logger.debug(
            "snapshot: %d series of %d results, %d verdicts in %.3f s",
            len(results),
            len(rows),
            len(verdicts),
            time.monotonic() - started,
        )
        return snapshot

    def _result_series(self, rows: Sequence[ResultRow]) -> tuple[ResultSeries, ...]:
        """Each series' latest run, with the histogram of all its runs (``rows`` newest first)."""
        latest: dict[SeriesKey, ResultSeries] = {}
        histograms: dict[SeriesKey, HistogramState] = {}
        for row in rows:
            r = row.result
            key = (row.model, row.version, r.scenario, r.device, r.batch_size)
            try:
                hist = self._histogram(row.id)
            except Exception:  # a damaged sample blob must not take /metrics down
                logger.exception("cannot read latencies of result %d", row.id)
                hist = HistogramState.empty(self.buckets_s)
            histograms[key] = merge_histograms(histograms[key], hist) if key in histograms else hist
            if key not in latest:
                latest[key] = _series_of(row, self.buckets_s)
        return tuple(_with_histogram(s, histograms[k]) for k, s in latest.items())

    def _change_points(
        self, history: Mapping[tuple[str, str, str, int], list[tuple[int, str, float]]]
    ) -> tuple[ChangePointSeries, ...]:
        """Change points of each series' per-run P99 (its latest ``change_point_runs`` runs, newest first).

        Recomputed only for series that got a run since the last build (stored results never change).
        """
        found: list[ChangePointSeries] = []
        cache: dict[tuple[str, str, str, int], tuple[tuple[int, ...], tuple[ChangePointSeries, ...]]] = {}
        for series, rows in history.items():
            runs = rows[: self.change_point_runs][::-1]  # oldest first
            ids = tuple(i for i, _, _ in runs)
            cached = self._change_point_cache.get(series)
            if cached is not None and cached[0] == ids:
                points = cached[1]
            else:
                model, scenario, device, batch_size = series
                try:
                    points = tuple(
                        ChangePointSeries(model, runs[c.index][1], scenario, device, batch_size, c.ratio)
                        for c in detect_change_points(
                            [p99 for _, _, p99 in runs], min_magnitude=self.change_point_min_magnitude
                        )
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

    def _verdicts(
        self, per_version: Sequence[Verdict], keep: Mapping[str, frozenset[str]]
    ) -> tuple[tuple[VerdictSeries, ...], tuple[VersionRole, ...]]:
        """The exported versions' latest verdict per series (of ``per_version``), and the roles.

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
        for verdict in per_version:
            if verdict.candidate_version not in keep.get(verdict.model, ()):
                continue
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


def _series_of(row: ResultRow, buckets_s: tuple[float, ...]) -> ResultSeries:
    """The gauges of one result (its histogram left empty, for the series' cumulative one)."""
    r = row.result
    lat = r.latency
    energy = r.energy
    power = {}
    if energy is not None and energy.mean_power_w is not None:
        power["mean"] = energy.mean_power_w
    if energy is not None and energy.peak_power_w is not None:
        power["peak"] = energy.peak_power_w
    measured = energy if energy is not None and energy.measured else None
    return ResultSeries(
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
        histogram=HistogramState.empty(buckets_s),
        energy_j=measured.energy_j if measured is not None else None,
        energy_per_sample_j=measured.energy_per_sample_j if measured is not None else None,
        power_w=power,
        throttled=bool(r.telemetry and r.telemetry.throttled),
        latency_bound_s=r.latency_bound_s,
    )


def _with_histogram(series: ResultSeries, histogram: HistogramState) -> ResultSeries:
    from dataclasses import replace

    return replace(series, histogram=histogram)
