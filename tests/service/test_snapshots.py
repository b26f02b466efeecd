"""SnapshotBuilder, built directly: a real store's runs, latencies and verdicts -> the exporter's snapshot."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from benchd.history import SQLiteHistoryStore
from benchd.metrics.collectors import ResultsCollector
from benchd.metrics.snapshot import DeviceInfoSeries, ResultsSnapshot, VersionRole
from benchd.records import EnergyReport, MetricVerdict, ModelVersion, ScenarioResult, Verdict
from benchd.service.snapshots import SnapshotBuilder
from tests.history.conftest import _run_result, _scenario_result, _spec

BOUNDS_S = (0.001, 0.002, 0.005, 0.01)


def _finish(
    store: SQLiteHistoryStore,
    version: str,
    latencies_s: list[float],
    *,
    model: str = "m",
    device: str = "cpu",
    p99_s: float = 0.004,
    energy: EnergyReport | None = None,
) -> int:
    """Store one finished single_stream run of ``model/version`` with these raw latencies; return its id."""
    spec = _spec(model=model, version=version, device=device)
    run_id = store.enqueue_run(spec, force=True)
    assert run_id is not None and store.claim_next_run(device).id == run_id
    result: ScenarioResult = _scenario_result(device=device, p99_s=p99_s)
    if energy is not None:
        result = dataclasses.replace(result, energy=energy)
    store.finish_run(
        run_id, _run_result(spec, (result,)), {0: np.round(np.asarray(latencies_s) * 1e9).astype(np.int64)}
    )
    return run_id


def _series(snapshot: ResultsSnapshot, version: str, model: str = "m", device: str = "cpu"):
    (found,) = [r for r in snapshot.results if (r.model, r.version, r.device) == (model, version, device)]
    return found


@pytest.fixture
def builder(store: SQLiteHistoryStore) -> SnapshotBuilder:
    devices = (DeviceInfoSeries("cuda:0", "NVIDIA H200", "GPU-1", "570.86", "nvidia-h200-drv570"),)
    return SnapshotBuilder(store, BOUNDS_S, devices)


def test_the_latest_run_gives_the_gauges_and_every_run_feeds_the_histogram(
    store: SQLiteHistoryStore, builder: SnapshotBuilder
) -> None:
    store.record_version(ModelVersion("m", "1", "local"))
    _finish(store, "1", [0.0005, 0.0015, 0.003], p99_s=0.003)
    _finish(store, "1", [0.0008, 0.004, 0.02, 0.0012], p99_s=0.019)  # a re-run of the same series
    series = _series(builder.build(), "1")
    assert series.latency_percentiles_s["0.99"] == 0.019  # the newest run's
    h = series.histogram
    assert h.bucket_upper_bounds_s == BOUNDS_S
    assert h.count == 7  # every query of both runs
    assert h.sum_s == pytest.approx(0.0005 + 0.0015 + 0.003 + 0.0008 + 0.004 + 0.02 + 0.0012)
    assert h.cumulative_counts[: len(BOUNDS_S)] == (2, 4, 6, 6)  # <= 1 ms, 2 ms, 5 ms, 10 ms
    assert (series.scenario, series.batch_size, series.run_duration_s) == ("single_stream", 1, 1.0)


def test_only_the_latest_k_versions_are_exported_in_registry_order(store: SQLiteHistoryStore) -> None:
    for version in ("1", "2", "3", "4"):
        store.record_version(ModelVersion("m", version, "local"))
    for version in ("4", "3", "2", "1"):  # v1 ran last: the champion cron re-measured it
        _finish(store, version, [0.001, 0.002])
    snapshot = SnapshotBuilder(store, BOUNDS_S, latest_versions=2).build()
    assert snapshot.version_order == {"m": ("3", "4")}  # registry order, of the versions it exports
    assert {r.version for r in snapshot.results} == {"3", "4"}  # a build reads only what it exports
    assert {r.version for r in SnapshotBuilder(store, BOUNDS_S, latest_versions=4).build().results} == {
        "1",
        "2",
        "3",
        "4",
    }  # the store keeps everything
    registry = CollectorRegistry()
    registry.register(ResultsCollector(lambda: snapshot, latest_versions=2))
    labels = {"model": "m", "scenario": "single_stream", "device": "cpu", "batch_size": "1"}
    exported = {
        v
        for v in ("1", "2", "3", "4")
        if registry.get_sample_value(
            "benchd_run_latency_seconds", {**labels, "version": v, "percentile": "0.99"}
        )
        is not None
    }
    assert exported == {"3", "4"}


def test_energy_totals_add_up_measured_windows_per_device(
    store: SQLiteHistoryStore, builder: SnapshotBuilder
) -> None:
    store.record_version(ModelVersion("m", "1", "local"))
    measured = EnergyReport(measured=True, source="nvml_counter", energy_j=12.5, energy_per_sample_j=0.1)
    _finish(store, "1", [0.001], device="cuda:0", energy=measured)
    _finish(store, "1", [0.001], device="cuda:0", energy=dataclasses.replace(measured, energy_j=7.5))
    _finish(store, "1", [0.001], device="cpu", energy=dataclasses.replace(measured, energy_j=3.0))
    _finish(store, "1", [0.001], device="cpu", energy=EnergyReport(measured=False, reason="window too short"))
    snapshot = builder.build()
    assert {(t.device, t.joules) for t in snapshot.energy_totals} == {("cuda:0", 20.0), ("cpu", 3.0)}
    assert _series(snapshot, "1", device="cpu").energy_j is None  # the latest cpu run measured nothing
    assert _series(snapshot, "1", device="cuda:0").energy_j == 7.5
    assert snapshot.devices == builder.devices


def test_roles_run_counts_and_verdicts(store: SQLiteHistoryStore, builder: SnapshotBuilder) -> None:
    for version in ("1", "2", "3"):
        store.record_version(ModelVersion("m", version, "local"))
    _finish(store, "3", [0.001])
    failed = store.enqueue_run(_spec(model="m", version="2"))
    store.claim_next_run("cpu")
    store.fail_run(failed, "corrupt_artifact", "not a zip")

    def metric(name: str, state: str) -> MetricVerdict:
        return MetricVerdict(name, state, 1.3, 1.2, 1.4, 0.004, 0.0052, 0.1, 0.05, 8)

    metrics = (
        metric("p99_latency", "regressed"),
        metric("p50_latency", "more"),
        metric("throughput", "unchanged"),
    )
    store.save_verdict(Verdict("m", "3", "2", "single_stream", 1, "cpu", "paired", metrics, 1.0), {})
    builder.set_champion("m", "1")
    snapshot = builder.build()
    assert set(snapshot.roles) == {
        VersionRole("m", "1", "champion"),
        VersionRole("m", "3", "candidate"),
        VersionRole("m", "2", "baseline"),
    }
    assert {(c.model, c.scenario, c.outcome, c.count) for c in snapshot.run_counts} == {
        ("m", "single_stream", "ok", 1),
        ("m", "single_stream", "failed", 1),
    }
    assert {(v.metric, v.state, v.version, v.baseline_version) for v in snapshot.verdicts} == {
        ("p99", "regressed", "3", "2"),
        ("throughput", "unchanged", "3", "2"),
    }  # metric labels the rules know; an undecided metric ("more") is not exported
    builder.set_champion("m", None)  # the alias was removed from the registry
    assert VersionRole("m", "1", "champion") not in builder.build().roles


def test_a_damaged_latency_blob_costs_its_histogram_not_the_snapshot(
    store: SQLiteHistoryStore, builder: SnapshotBuilder, caplog: pytest.LogCaptureFixture
) -> None:
    store.record_version(ModelVersion("m", "1", "local"))
    store.record_version(ModelVersion("m", "2", "local"))
    _finish(store, "1", [0.001, 0.002])
    _finish(store, "2", [0.001, 0.002, 0.003])
    with store._db.write() as conn:  # a bit flip on disk
        conn.execute("UPDATE latencies SET data = ? WHERE result_id = 1", (b"not zlib",))
    with caplog.at_level(logging.ERROR, logger="benchd.service.snapshots"):
        snapshot = builder.build()
    assert _series(snapshot, "1").histogram.count == 0
    assert _series(snapshot, "2").histogram.count == 3
    assert "cannot read latencies of result 1" in caplog.text


def test_a_result_read_once_is_not_decoded_again(store: SQLiteHistoryStore) -> None:
    store.record_version(ModelVersion("m", "1", "local"))
    _finish(store, "1", [0.001])
    reads: list[int] = []

    class CountingStore(SQLiteHistoryStore):
        def latencies(self, result_id: int) -> np.ndarray:
            reads.append(result_id)
            return super().latencies(result_id)

    counting = CountingStore(store.path)
    try:
        builder = SnapshotBuilder(counting, BOUNDS_S)
        builder.build()
        _finish(store, "1", [0.002])
        assert _series(builder.build(), "1").histogram.count == 2
        assert sorted(reads) == [1, 2]  # stored results never change: each is decoded once
    finally:
        counting.close()


class _CountingStore(SQLiteHistoryStore):
    """The real store, counting which results a build decodes (rows) and reads the latencies of."""

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self.latency_reads: list[int] = []
        self.rows_read: list[int] = []

    def latencies(self, result_id: int) -> np.ndarray:
        self.latency_reads.append(result_id)
        return super().latencies(result_id)

    def result_rows(self, *args, **kwargs):
        rows = super().result_rows(*args, **kwargs)
        self.rows_read.extend(r.id for r in rows)
        return rows


def _publish(store: SQLiteHistoryStore, model: str, version: str, p99_s: float) -> list[int]:
    """Record a version and store one run of it (joules measured): return its result ids."""
    store.record_version(ModelVersion(model, version, "local"))
    measured = EnergyReport(measured=True, source="nvml_counter", energy_j=2.0, energy_per_sample_j=0.1)
    run_id = _finish(store, version, [0.001, p99_s], model=model, p99_s=p99_s, energy=measured)
    return [r.id for r in store.result_rows(model, version) if r.run_id == run_id]


def test_a_build_reads_and_keeps_only_the_exported_versions(store: SQLiteHistoryStore) -> None:
    results: dict[tuple[str, str], list[int]] = {}
    for i in range(1, 31):  # b's P99 steps up at version 28: a change point among the exported versions
        results[("a", str(i))] = _publish(store, "a", str(i), 0.004)
        results[("b", str(i))] = _publish(store, "b", str(i), 0.010 if i < 28 else 0.013)
    results[("a", "1")] += _publish(store, "a", "1", 0.004)  # the champion's cron re-run
    counting = _CountingStore(store.path)
    try:
        builder = SnapshotBuilder(counting, BOUNDS_S, latest_versions=3)
        builder.set_champion("a", "1")
        snapshot = builder.build()
        kept = [("a", "1"), ("a", "28"), ("a", "29"), ("a", "30"), ("b", "28"), ("b", "29"), ("b", "30")]
        kept_ids = sorted(i for key in kept for i in results[key])
        assert sorted(counting.latency_reads) == kept_ids  # 9 of the 61 stored results
        assert sorted(counting.rows_read) == kept_ids
        assert builder.cached_result_ids == frozenset(kept_ids)
        assert {(r.model, r.version) for r in snapshot.results} == set(kept)
        assert _series(snapshot, "1", model="a").histogram.count == 4  # the champion's two runs
        assert {(t.device, t.joules) for t in snapshot.energy_totals} == {("cpu", 122.0)}  # every run's
        assert [(c.model, c.version) for c in snapshot.change_points] == [("b", "28")]

        # what is exported is what a builder that reads everything exports
        reference = SnapshotBuilder(store, BOUNDS_S, latest_versions=1000)
        reference.set_champion("a", "1")
        assert _exposition(snapshot, 3) == _exposition(reference.build(), 3)

        # a new version: only its result is read; the version that fell out is evicted from the cache
        counting.latency_reads.clear()
        new_ids = _publish(store, "a", "31", 0.004)
        builder.build()
        assert counting.latency_reads == new_ids
        assert builder.cached_result_ids == frozenset(kept_ids) - set(results[("a", "28")]) | set(new_ids)
    finally:
        counting.close()


def _exposition(snapshot: ResultsSnapshot, latest_versions: int) -> bytes:
    from benchd.metrics.cache import ResultsCache

    cache = ResultsCache(latest_versions)
    assert cache.update(snapshot)
    return cache.body()
