"""Scenario results, raw latencies and verdicts in the history store (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests.history.conftest import raw_rows

from benchd.history import SQLHistoryStore
from benchd.records import MetricVerdict, ModelVersion, Verdict


def _finish(store: SQLHistoryStore, spec, result, latencies=None) -> int:
    run_id = store.enqueue_run(spec, force=True)
    assert store.claim_next_run(spec.device).id == run_id
    store.finish_run(run_id, result, latencies)
    return run_id


def test_results_rows_carry_labels_and_summaries(
    store: SQLHistoryStore, make_spec, make_scenario_result, make_run_result
) -> None:
    spec = make_spec(scenarios=("single_stream", "offline"))
    results = (
        make_scenario_result("single_stream", p99_s=0.004),
        make_scenario_result("offline", p99_s=0.02, batch_size=8, throttled=True),
    )
    run_id = _finish(store, spec, make_run_result(spec, results, hardware_class="nvidia-h100-sxm"))
    assert store.results_for_run(run_id) == list(results)
    rows = store.result_rows(model="resnet")
    assert [r.result.scenario for r in rows] == ["offline", "single_stream"]  # newest first
    assert all(r.run_id == run_id and r.hardware_class == "nvidia-h100-sxm" for r in rows)
    assert rows[0].result == results[1]
    assert [r.result.scenario for r in store.result_rows(scenario="offline")] == ["offline"]
    assert len(store.result_rows(limit=1)) == 1
    assert store.result_rows(version="nope") == []

    sql = "SELECT p99_s, batch_size, throttled, valid, energy_per_sample_j FROM results WHERE scenario = ?"
    row = raw_rows(store, sql, ("offline",))[0]
    assert row == (0.02, 8, 1, 1, 0.05)


def test_latencies_roundtrip_from_npy_files_and_from_arrays(
    store: SQLHistoryStore, tmp_path: Path, make_spec, make_scenario_result, make_run_result
) -> None:
    rng = np.random.default_rng(7)
    from_file = rng.integers(1_000_000, 9_000_000, size=5000, dtype=np.int64)
    npy = tmp_path / "lat0.npy"
    np.save(npy, from_file)
    given = np.array([1, 2, 3, 2**40], dtype=np.int64)
    spec = make_spec(scenarios=("single_stream", "offline", "server"))
    results = (
        make_scenario_result("single_stream", latencies_file=str(npy)),
        make_scenario_result("offline"),
        make_scenario_result("server", latencies_file=str(tmp_path / "missing.npy")),
    )
    run_id = _finish(store, spec, make_run_result(spec, results), latencies={1: given})
    npy.unlink()  # the store is self-contained
    rows = {r.result.scenario: r.id for r in store.result_rows()}
    got = store.latencies(rows["single_stream"])
    assert got.dtype == np.int64 and np.array_equal(got, from_file)
    assert np.array_equal(store.latencies(rows["offline"]), given)
    assert store.latencies(rows["server"]).size == 0  # missing file: summary kept, no samples
    assert store.get_run(run_id).state == "ok"

    size = raw_rows(
        store, "SELECT LENGTH(data) FROM latencies WHERE result_id = ?", (rows["single_stream"],)
    )[0]
    assert size[0] < from_file.nbytes  # compressed


def test_float_latencies_are_refused(store: SQLHistoryStore, make_spec, make_run_result) -> None:
    spec = make_spec()
    run_id = store.enqueue_run(spec)
    store.claim_next_run("cpu")
    with pytest.raises(ValueError, match="integer ns"):
        store.finish_run(run_id, make_run_result(spec), {0: np.array([0.1, 0.2])})
    assert store.get_run(run_id).state == "running"  # nothing half-written


def test_latest_versions_orders_by_creation_time_and_needs_results(
    store: SQLHistoryStore, clock, make_spec, make_run_result
) -> None:
    created = {"1": 100.0, "2": 200.0, "10": 300.0, "11": 400.0}
    for version, t in created.items():
        store.record_version(ModelVersion("resnet", version, "prod", created_unix_s=t))
    for version in ["10", "1", "2"]:  # measured out of order
        spec = make_spec(version=version)
        _finish(store, spec, make_run_result(spec))
        clock.advance(10)
    spec = make_spec(model="other", version="x")
    _finish(store, spec, make_run_result(spec))
    assert store.latest_versions("resnet", 2) == ["10", "2"]
    assert store.latest_versions("resnet", 10) == ["10", "2", "1"]  # "11" has no results
    assert store.latest_versions("other", 3) == ["x"]  # known only from its run
    assert store.latest_versions("none", 3) == []


def _verdict(
    candidate: str,
    scenario: str = "single_stream",
    state: str = "unchanged",
    batch_size: int = 1,
    decided: float = 0.0,
) -> Verdict:
    mv = MetricVerdict(
        metric="p99_latency_s",
        state=state,
        ratio=1.02,
        ratio_low=0.98,
        ratio_high=1.06,
        baseline_value=0.004,
        candidate_value=0.00408,
        threshold=0.1,
        min_effect=0.05,
        pairs=10,
    )
    return Verdict(
        model="resnet",
        candidate_version=candidate,
        baseline_version="1",
        scenario=scenario,
        batch_size=batch_size,
        device="cpu",
        method="interleaved_pairs",
        metrics=(mv,),
        decided_unix_s=decided,
    )


def test_verdicts_roundtrip_latest_per_series(store: SQLHistoryStore) -> None:
    v2 = _verdict("2")
    first_id = store.save_verdict(v2, {"pairs": 10, "n": np.int64(5000), "interval": (0.98, 1.06), "t": 0.1})
    v3 = _verdict("3", state="regressed", decided=123.0)
    store.save_verdict(v3, {"pairs": 20})
    v3_offline = _verdict("3", scenario="offline", batch_size=8)
    store.save_verdict(v3_offline, {})
    latest = store.latest_verdicts("resnet")
    assert latest == [v3_offline, v3]  # sorted by series: offline before single_stream
    assert latest[1].state == "regressed" and isinstance(latest[1].metrics, tuple)
    assert store.latest_verdicts("other") == []
    assert store.verdict_for("resnet", "2") == v2
    assert store.verdict_for("resnet", "3", scenario="offline") == v3_offline
    assert store.verdict_for("resnet", "3", scenario="server") is None
    rows = store.verdict_rows("resnet", "2")
    assert rows[0].id == first_id
    assert rows[0].inputs == {"pairs": 10, "n": 5000, "interval": [0.98, 1.06], "t": 0.1}


def test_the_exporters_aggregate_reads_span_every_result(
    store: SQLHistoryStore, make_spec, make_scenario_result, make_run_result
) -> None:
    """Which versions have results, the energy counter and the P99 history: one query each, no JSON."""
    import dataclasses

    from benchd.records import EnergyReport

    p99s = {"1": 0.004, "2": 0.005, "3": 0.006, "4": 0.007, "5": 0.008}
    for i, (version, p99_s) in enumerate(p99s.items()):
        spec = make_spec(version=version, scenarios=("single_stream", "offline"))
        single = make_scenario_result("single_stream", p99_s=p99_s, throttled=version == "4")
        if version == "3":
            single = dataclasses.replace(single, energy=EnergyReport(measured=False, reason="too short"))
        offline = dataclasses.replace(make_scenario_result("offline", batch_size=8), valid=version != "5")
        _finish(store, spec, make_run_result(spec, (single, offline), ended_unix_s=1_700_000_000.0 + i))
    assert store.result_versions() == {("resnet", v): 1_700_000_000.0 + i for i, v in enumerate(p99s)}
    assert store.energy_totals() == {"cpu": 5.0 * 9}  # 10 windows, one not measured
    history = store.p99_history(3)
    assert [(v, p99) for _, v, p99 in history[("resnet", "single_stream", "cpu", 1)]] == [
        ("5", 0.008),
        ("3", 0.006),
        ("2", 0.005),
    ]  # newest first; the throttled run of version 4 is left out
    assert [v for _, v, _ in history[("resnet", "offline", "cpu", 8)]] == ["4", "3", "2"]  # 5: invalid
    ids = [i for i, _, _ in history[("resnet", "single_stream", "cpu", 1)]]
    assert ids == sorted(ids, reverse=True)
    assert store.p99_history(3, host="elsewhere") == {} and store.energy_totals(host="elsewhere") == {}
