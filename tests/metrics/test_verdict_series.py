"""Verdict series per exported version: a regression stays on /metrics until a verdict on it clears it.

The store is a real SQLite history store; the snapshot is built by the daemon's SnapshotBuilder and
rendered by the results cache, as in the daemon.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from benchd.history import open_store
from benchd.metrics.cache import ResultsCache
from benchd.records import MetricVerdict, ModelVersion, Verdict
from benchd.service.snapshots import SnapshotBuilder


def _verdict(candidate: str, baseline: str, state: str, ratio: float, decided: float) -> Verdict:
    p99 = MetricVerdict("p99_latency", state, ratio, ratio - 0.05, ratio + 0.05, 0.004, 0.004 * ratio,
                        0.1, 0.05, 10)  # fmt: skip
    return Verdict("m", candidate, baseline, "single_stream", 1, "cpu", "interleaved_pairs", (p99,),
                   decided_unix_s=decided)  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    store = open_store(f"sqlite:///{tmp_path / 'benchd.sqlite'}")
    for v in ("1", "2", "3", "4"):
        store.record_version(ModelVersion("m", v, "local"))  # more versions are recorded by tests as needed
    yield store
    store.close()


def _detected(cache: ResultsCache) -> dict[str, float]:
    """version -> benchd_regression_detected{metric="p99"} on the rendered /metrics."""
    text = cache.body().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name == "benchd_regression_detected":
            for sample in family.samples:
                out[sample.labels["version"]] = sample.value
    return out


def _render(builder: SnapshotBuilder, latest_versions: int) -> ResultsCache:
    cache = ResultsCache(latest_versions)
    cache.update(builder.build())
    return cache


def test_an_older_versions_regression_stays_exported_when_the_next_version_is_judged(store) -> None:
    store.save_verdict(_verdict("2", "1", "regressed", 1.4, 100.0), {})
    store.save_verdict(_verdict("3", "2", "unchanged", 1.0, 200.0), {})
    builder = SnapshotBuilder(store)
    assert _detected(_render(builder, 3)) == {"2": 1.0, "3": 0.0}
    roles = {(r.version, r.role) for r in builder.build().roles}
    assert ("3", "candidate") in roles and ("2", "candidate") not in roles  # roles: the newest verdict


def test_a_newer_verdict_on_the_same_version_clears_its_regression(store) -> None:
    store.save_verdict(_verdict("2", "1", "regressed", 1.4, 100.0), {})
    store.save_verdict(_verdict("2", "1", "unchanged", 1.02, 300.0), {})  # re-checked: fine after all
    assert _detected(_render(SnapshotBuilder(store), 3)) == {"2": 0.0}


def test_the_champions_regression_stays_exported_beyond_the_latest_k(store) -> None:
    store.save_verdict(_verdict("2", "1", "regressed", 1.4, 100.0), {})
    store.save_verdict(_verdict("3", "2", "unchanged", 1.0, 200.0), {})
    store.save_verdict(_verdict("4", "3", "unchanged", 1.0, 300.0), {})
    builder = SnapshotBuilder(store)
    assert _detected(_render(builder, 1)) == {"4": 0.0}  # only the latest version
    builder.set_champion("m", "2")  # v2 is deployed: its regression must keep alerting
    assert _detected(_render(builder, 1)) == {"2": 1.0, "4": 0.0}


def test_a_creep_across_versions_is_exported_as_a_change_point_on_the_version_that_starts_it(store) -> None:
    from tests.history.conftest import _run_result, _scenario_result, _spec

    before, after = (
        [0.010, 0.0101, 0.0099, 0.010, 0.0102, 0.0098],
        [0.013, 0.0131, 0.0129, 0.013, 0.0132, 0.0128],
    )
    for i, p99_s in enumerate(before + after, start=1):
        spec = _spec(model="m", version=str(i))
        store.record_version(ModelVersion("m", str(i), "local"))
        run_id = store.enqueue_run(spec, reason="test")
        assert store.claim_next_run("cpu").id == run_id
        store.finish_run(run_id, _run_result(spec, (_scenario_result(p99_s=p99_s),), ended_unix_s=1e9 + i))
    builder = SnapshotBuilder(store, latest_versions=12)
    (point,) = builder.build().change_points
    assert (point.model, point.version, point.scenario, point.batch_size) == ("m", "7", "single_stream", 1)
    assert point.ratio == pytest.approx(1.3, rel=0.02)
    cache = _render(builder, 12)
    assert (
        'benchd_change_point_ratio{batch_size="1",device="cpu",model="m",scenario="single_stream",version="7"}'
        in (cache.body().decode())
    )
    assert builder.build().change_points == (point,)  # cached: no new run, same answer
    assert (
        "benchd_change_point_ratio{" not in _render(SnapshotBuilder(store), 3).body().decode()
    )  # v7 is not among the latest 3
