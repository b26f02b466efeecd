"""The persisted run queue: dedupe, priorities, atomic claims, finish/fail, crash recovery, counts.

Every test runs on SQLite and on PostgreSQL (see conftest.py); the fleet side (hardware classes, leases,
take-over) is in test_history_fleet.py.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from functools import partial

import pytest
from tests.threads import run_threads

from benchd.history import HistoryStoreError, SQLHistoryStore, spec_key
from benchd.records import ScenarioSettings


def test_enqueue_dedupes_queued_running_and_finished_runs(
    store: SQLHistoryStore, make_spec, make_run_result
) -> None:
    spec = make_spec(version="1")
    first = store.enqueue_run(spec, reason="poll")
    assert isinstance(first, int)
    assert store.enqueue_run(spec) is None  # queued
    assert store.enqueue_run(spec, force=True) is None  # force never duplicates a queued run
    run = store.claim_next_run("cpu")
    assert run is not None and run.id == first
    assert store.enqueue_run(spec) is None  # running
    store.finish_run(first, make_run_result(spec))
    assert store.enqueue_run(spec) is None  # finished
    again = store.enqueue_run(spec, reason="cron", force=True)  # cron re-run
    assert again is not None and again != first
    # a different scenario set, device or version is a different run
    assert store.enqueue_run(make_spec(version="1", scenarios=("offline",))) is not None
    assert store.enqueue_run(make_spec(version="1", device="cuda:0")) is not None
    assert store.enqueue_run(make_spec(version="2")) is not None
    assert store.queue_depth() == 4
    assert store.queue_depth("cuda:0") == 1


def test_spec_key_ignores_path_and_timeout_but_not_settings(make_spec) -> None:
    a = make_spec()
    assert spec_key(a) == spec_key(dataclasses.replace(a, model_path="/elsewhere", timeout_s=5.0))
    assert spec_key(a) != spec_key(dataclasses.replace(a, batch_sizes=(1, 8)))
    assert spec_key(a) != spec_key(dataclasses.replace(a, scenarios=(ScenarioSettings(min_duration_s=30.0),)))


def test_claims_follow_priority_then_fifo_per_device(store: SQLHistoryStore, clock, make_spec) -> None:
    ids = {}
    for version, prio in [("cron-1", 0), ("poll-1", 10), ("hook-1", 20), ("poll-2", 10), ("cron-2", 0)]:
        ids[version] = store.enqueue_run(make_spec(version=version), priority=prio)
        clock.advance(1)
    store.enqueue_run(make_spec(version="gpu-1", device="cuda:0"), priority=100)
    order = []
    while (run := store.claim_next_run("cpu")) is not None:
        order.append(run.version)
        assert run.state == "running" and run.attempts == 1 and run.started_unix_s == clock()
    assert order == ["hook-1", "poll-1", "poll-2", "cron-1", "cron-2"]
    assert store.queue_depth("cpu") == 0
    assert store.queue_depth() == 1
    assert store.claim_next_run("cuda:0").version == "gpu-1"


def test_two_threads_on_two_store_objects_never_claim_the_same_run(open_test_store, make_spec) -> None:
    writer = open_test_store(clock=time.time)
    n = 60
    for i in range(n):
        writer.enqueue_run(make_spec(version=str(i)))
    stores = [writer, open_test_store(clock=time.time)]
    claimed: list[list[int]] = [[], [], [], []]
    barrier = threading.Barrier(4, timeout=30)

    def worker(k: int) -> None:
        barrier.wait()
        while (run := stores[k % 2].claim_next_run("cpu")) is not None:
            claimed[k].append(run.id)

    run_threads([partial(worker, k) for k in range(4)], timeout_s=60)
    every = [i for c in claimed for i in c]
    assert len(every) == n and len(set(every)) == n
    assert all(r.attempts == 1 for r in writer.list_runs(limit=n))


def test_finish_run_stores_state_result_and_refuses_a_second_end(
    store: SQLHistoryStore, make_spec, make_run_result
) -> None:
    spec = make_spec()
    run_id = store.enqueue_run(spec)
    store.claim_next_run("cpu")
    result = make_run_result(spec, outcome="invalid")
    store.finish_run(run_id, result)
    run = store.get_run(run_id)
    assert run.state == "invalid" and run.result == result and run.ended_unix_s is not None
    assert run.to_json()["result"]["outcome"] == "invalid"
    assert run.to_json()["spec"]["model"] == spec.model
    with pytest.raises(HistoryStoreError, match="already ended"):
        store.finish_run(run_id, result)
    with pytest.raises(HistoryStoreError, match="already ended"):
        store.fail_run(run_id, "timeout", "late")
    with pytest.raises(HistoryStoreError, match="no run 999"):
        store.fail_run(999, "internal", "x")
    with pytest.raises(HistoryStoreError, match="outcome"):
        store.finish_run(store.enqueue_run(make_spec(version="2")), make_run_result(spec, outcome="great"))


def test_fail_run_records_kind_and_message(store: SQLHistoryStore, make_spec) -> None:
    run_id = store.enqueue_run(make_spec())
    store.claim_next_run("cpu")
    store.fail_run(run_id, "timeout", "worker ran past 600 s", state="timeout")
    run = store.get_run(run_id)
    assert (run.state, run.error_kind, run.error, run.result) == (
        "timeout",
        "timeout",
        "worker ran past 600 s",
        None,
    )
    with pytest.raises(HistoryStoreError, match="terminal"):
        store.fail_run(store.enqueue_run(make_spec(version="2")), "x", "y", state="running")


def test_recover_interrupted_requeues_once_then_fails(open_test_store, make_spec) -> None:
    store = open_test_store()
    run_id = store.enqueue_run(make_spec())
    other = store.enqueue_run(make_spec(version="2"))
    assert store.claim_next_run("cpu").id == run_id
    store.close()  # the daemon dies mid-run (nothing more is written)

    store = open_test_store()
    recovered = store.recover_interrupted(max_attempts=2)
    assert [(r.id, r.state, r.attempts) for r in recovered] == [(run_id, "queued", 1)]
    assert store.get_run(other).state == "queued"  # queued runs are untouched
    assert store.claim_next_run("cpu").id == run_id  # FIFO keeps its place
    store.close()

    store = open_test_store()
    recovered = store.recover_interrupted(max_attempts=2)
    assert [(r.id, r.state, r.error_kind, r.attempts) for r in recovered] == [
        (run_id, "failed", "interrupted", 2)
    ]
    assert store.recover_interrupted() == []


def test_list_runs_newest_first_with_filters(store: SQLHistoryStore, make_spec, make_run_result) -> None:
    a1 = store.enqueue_run(make_spec(model="a", version="1"))
    b1 = store.enqueue_run(make_spec(model="b", version="1"))
    a2 = store.enqueue_run(make_spec(model="a", version="2"))
    store.claim_next_run("cpu")
    store.finish_run(a1, make_run_result(make_spec(model="a", version="1")))
    assert [r.id for r in store.list_runs()] == [a2, b1, a1]
    assert [r.id for r in store.list_runs(model="a")] == [a2, a1]
    assert [r.id for r in store.list_runs(state="queued")] == [a2, b1]
    assert [r.id for r in store.list_runs(limit=1)] == [a2]
    assert store.get_run(12345) is None


def test_run_counts_count_each_spec_scenario_by_outcome(
    store: SQLHistoryStore, make_spec, make_run_result
) -> None:
    two = make_spec(version="1", scenarios=("single_stream", "offline"))
    r1 = store.enqueue_run(two)
    store.claim_next_run("cpu")
    store.finish_run(r1, make_run_result(two))
    one = make_spec(version="2")
    r2 = store.enqueue_run(one)
    store.claim_next_run("cpu")
    store.fail_run(r2, "worker_crashed", "segfault")
    r3 = store.enqueue_run(make_spec(version="3"))
    store.claim_next_run("cpu")
    store.fail_run(r3, "timeout", "too slow", state="timeout")
    store.enqueue_run(make_spec(version="4"))  # queued: not counted
    assert store.run_counts() == {
        ("resnet", "single_stream", "ok"): 1,
        ("resnet", "offline", "ok"): 1,
        ("resnet", "single_stream", "failed"): 1,
        ("resnet", "single_stream", "timeout"): 1,
    }
