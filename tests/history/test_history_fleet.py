"""Fleet queues on both backends: per-class dedupe, claims with leases, heartbeats, take-over, fencing.

On PostgreSQL the concurrent tests exercise ``FOR UPDATE SKIP LOCKED``, the advisory enqueue lock and the
unique indexes with several pools at once; on SQLite, ``BEGIN IMMEDIATE``.
"""

from __future__ import annotations

import threading
import time
from functools import partial

import pytest
from tests.threads import run_threads

from benchd.history import (
    HistoryStoreError,
    HostView,
    LeaseKeeper,
    LeaseLostError,
    ScopedCursorStore,
    SQLHistoryStore,
    lease_owner,
)
from benchd.records import MetricVerdict, Verdict


def test_fleet_runs_dedupe_per_hardware_class_not_device(store: SQLHistoryStore, make_spec) -> None:
    a0 = store.enqueue_run(make_spec(device="cuda:0"), hardware_class="nvidia-h100-drv550")
    assert isinstance(a0, int)
    # another host of the class (any device) polls the same version: absorbed
    assert store.enqueue_run(make_spec(device="cuda:3"), hardware_class="nvidia-h100-drv550") is None
    b0 = store.enqueue_run(make_spec(device="cuda:0"), hardware_class="nvidia-a100-drv535")
    assert isinstance(b0, int) and b0 != a0
    local = store.enqueue_run(make_spec(device="cuda:0"))  # a device queue is separate from class queues
    assert isinstance(local, int)
    assert store.queue_depth(hardware_class="nvidia-h100-drv550") == 1
    assert store.queue_depth() == 3
    # a device claim never takes a class run, and vice versa
    assert store.claim_next_run("cuda:0").id == local
    assert store.claim_next_run("cuda:0") is None
    run = store.claim_next_run("cuda:7", hardware_class="nvidia-h100-drv550", owner="h2/1/cuda:7")
    assert (run.id, run.device, run.hardware_class, run.lease_owner) == (
        a0,
        "cuda:7",
        "nvidia-h100-drv550",
        "h2/1/cuda:7",
    )
    assert store.claim_next_run("cuda:7", hardware_class="nvidia-h100-drv550", owner="h2/1/cuda:7") is None
    assert store.get_run(run.id).to_json()["hardware_class"] == "nvidia-h100-drv550"


def test_a_lease_is_extended_by_heartbeats_and_taken_over_once_expired(
    open_test_store, clock, make_spec, make_run_result
) -> None:
    host_a = open_test_store(lease_s=3.0, host="host-a")
    host_b = open_test_store(lease_s=3.0, host="host-b")
    spec = make_spec(device="cuda:0")
    run_id = host_a.enqueue_run(spec, hardware_class="c1")
    run = host_a.claim_next_run("cuda:0", hardware_class="c1", owner="a")
    assert run.id == run_id and run.host == "host-a" and run.lease_expires_unix_s == clock() + 3.0
    clock.advance(2.0)
    assert host_a.heartbeat(run_id, "a") is True
    assert host_a.get_run(run_id).lease_expires_unix_s == clock() + 3.0
    assert host_b.heartbeat(run_id, "b") is False  # not b's lease
    clock.advance(2.5)  # renewed: not expired yet
    assert host_b.claim_next_run("cuda:1", hardware_class="c1", owner="b") is None
    clock.advance(1.0)  # host a died 3.5 s ago: its lease expired
    taken = host_b.claim_next_run("cuda:1", hardware_class="c1", owner="b")
    assert (taken.id, taken.attempts, taken.host, taken.lease_owner, taken.device) == (
        run_id,
        2,
        "host-b",
        "b",
        "cuda:1",
    )
    # the old owner is fenced off: it can neither renew nor record anything
    assert host_a.heartbeat(run_id, "a") is False
    with pytest.raises(LeaseLostError, match="lease lost to b"):
        host_a.finish_run(run_id, make_run_result(spec), owner="a")
    with pytest.raises(LeaseLostError):
        host_a.fail_run(run_id, "internal", "x", owner="a")
    assert host_a.result_rows() == []
    host_b.finish_run(run_id, make_run_result(spec), owner="b")
    done = host_b.get_run(run_id)
    assert done.state == "ok" and done.lease_expires_unix_s is None and done.host == "host-b"
    assert len(host_b.result_rows()) == 1


def test_a_run_that_keeps_losing_its_host_fails_after_max_attempts(store, clock, make_spec) -> None:
    run_id = store.enqueue_run(make_spec(), hardware_class="c1")
    queued_later = store.enqueue_run(make_spec(version="2"), hardware_class="c1")
    assert store.claim_next_run("cuda:0", hardware_class="c1", owner="a").id == run_id
    clock.advance(store.lease_s + 1)
    assert store.claim_next_run("cuda:0", hardware_class="c1", owner="b").id == run_id  # attempt 2
    clock.advance(store.lease_s + 1)
    nxt = store.claim_next_run("cuda:0", hardware_class="c1", owner="c", max_attempts=2)
    assert nxt.id == queued_later
    failed = store.get_run(run_id)
    assert (failed.state, failed.error_kind) == ("failed", "interrupted")
    assert "lease" in failed.error


def test_recover_interrupted_leaves_live_leases_alone(store, clock, make_spec) -> None:
    live = store.enqueue_run(make_spec(version="1"), hardware_class="c1")
    dead = store.enqueue_run(make_spec(version="2"), hardware_class="c1")
    store.claim_next_run("cuda:0", hardware_class="c1", owner="a")
    clock.advance(store.lease_s - 1)
    store.claim_next_run("cuda:0", hardware_class="c1", owner="b")
    clock.advance(2)  # a's lease expired, b's has not
    assert [r.id for r in store.recover_interrupted()] == [live]
    assert store.get_run(live).state == "queued" and store.get_run(live).lease_owner is None
    assert store.get_run(dead).state == "running"


def test_many_hosts_enqueue_the_same_versions_once_per_class(open_test_store, make_spec) -> None:
    hosts = [open_test_store(clock=time.time, host=f"h{i}") for i in range(6)]
    ids: list[list[int | None]] = [[] for _ in hosts]
    barrier = threading.Barrier(len(hosts), timeout=60)

    def poll(k: int) -> None:
        barrier.wait()
        for v in range(15):
            for cls in ("c1", "c2"):
                ids[k].append(hosts[k].enqueue_run(make_spec(version=str(v)), hardware_class=cls))

    run_threads([partial(poll, k) for k in range(len(hosts))], timeout_s=120)
    queued = [i for per in ids for i in per if i is not None]
    assert len(queued) == 30 and len(set(queued)) == 30
    assert hosts[0].queue_depth(hardware_class="c1") == 15 and hosts[0].queue_depth(hardware_class="c2") == 15


def test_concurrent_hosts_never_claim_a_run_twice(open_test_store, make_spec) -> None:
    seed = open_test_store(clock=time.time)
    n = 40
    for i in range(n):
        seed.enqueue_run(make_spec(version=str(i)), hardware_class="c1")
    hosts = [open_test_store(clock=time.time, host=f"h{i}") for i in range(4)]
    claimed: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8, timeout=60)

    def work(k: int) -> None:
        barrier.wait()
        owner = lease_owner(f"h{k % 4}", f"cuda:{k}")
        while (run := hosts[k % 4].claim_next_run(f"cuda:{k}", hardware_class="c1", owner=owner)) is not None:
            claimed[k].append(run.id)

    run_threads([partial(work, k) for k in range(8)], timeout_s=120)
    every = [i for c in claimed for i in c]
    assert len(every) == n and len(set(every)) == n
    assert {r.attempts for r in seed.list_runs(limit=n)} == {1}


def test_lease_keeper_renews_until_stopped_and_reports_a_lost_lease(open_test_store, make_spec) -> None:
    store = open_test_store(clock=time.time, lease_s=1.0)
    run_id = store.enqueue_run(make_spec(), hardware_class="c1")
    store.claim_next_run("cuda:0", hardware_class="c1", owner="me")
    with LeaseKeeper(store, run_id, "me", interval_s=0.1) as keeper:
        time.sleep(1.5)  # longer than the lease: only the heartbeats keep it
        assert store.claim_next_run("cuda:1", hardware_class="c1", owner="thief") is None
        assert keeper.beats >= 5 and not keeper.lost.is_set()
    store.fail_run(run_id, "internal", "done", owner="me")
    run2 = store.enqueue_run(make_spec(version="2"), hardware_class="c1")
    store.claim_next_run("cuda:0", hardware_class="c1", owner="me")
    with LeaseKeeper(store, run2, "someone-else", interval_s=0.05) as keeper:
        assert keeper.lost.wait(5.0)


def _verdict(candidate: str, state: str) -> Verdict:
    mv = MetricVerdict("p99_latency_s", state, 1.0, 0.9, 1.1, 0.004, 0.004, 0.1, 0.05, 10)
    return Verdict("resnet", candidate, "1", "single_stream", 1, "cuda:0", "interleaved_pairs", (mv,))


def test_each_host_sees_its_own_results_counts_and_verdicts_through_a_host_view(
    open_test_store, make_spec, make_run_result, make_scenario_result
) -> None:
    a = open_test_store(host="host-a")
    b = open_test_store(host="host-b")
    for store, cls in ((a, "fake-a100-drv550"), (b, "fake-h100-drv550")):
        spec = make_spec(version="2", device="cuda:0")
        run_id = store.enqueue_run(spec, hardware_class=cls)
        assert store.claim_next_run("cuda:0", hardware_class=cls, owner=store.host).id == run_id
        result = make_run_result(spec, (make_scenario_result(device="cuda:0"),), hardware_class=cls)
        store.finish_run(run_id, result, owner=store.host)
        verdict = _verdict("2", "unchanged" if cls.startswith("fake-a") else "regressed")
        # a shared store files the verdict under its candidate's class by itself
        store.save_verdict(verdict, {}, hardware_class=None if store.shared else cls)
    assert len(a.result_rows()) == 2  # baselines are chosen fleet-wide, within a class
    h100 = a.result_rows(hardware_class="fake-h100-drv550")
    assert [r.hardware_class for r in h100] == ["fake-h100-drv550"]
    view_a = HostView(a, "host-a")
    assert [r.hardware_class for r in view_a.result_rows()] == ["fake-a100-drv550"]
    assert view_a.run_counts() == {("resnet", "single_stream", "ok"): 1}
    assert view_a.energy_totals() == {"cuda:0": 5.0} and a.energy_totals() == {"cuda:0": 10.0}
    assert [v for _, v, _ in view_a.p99_history(10)[("resnet", "single_stream", "cuda:0", 1)]] == ["2"]
    assert list(view_a.result_versions()) == [("resnet", "2")]
    assert a.run_counts() == {("resnet", "single_stream", "ok"): 2}
    assert [v.state for v in view_a.latest_verdicts()] == ["unchanged"]
    assert [v.state for v in HostView(b, "host-b").latest_verdicts()] == ["regressed"]
    # one series per hardware class, not one per device name
    assert sorted(v.state for v in a.latest_verdicts("resnet")) == ["regressed", "unchanged"]
    assert view_a.list_models() == ["resnet"]  # everything else is the store's


def test_explicit_verdict_class_and_scoped_cursors(store: SQLHistoryStore) -> None:
    store.save_verdict(_verdict("2", "unchanged"), {}, hardware_class="c1", host="h1")
    store.save_verdict(_verdict("2", "regressed"), {"hardware_class": "c2"}, host="h2")
    assert sorted(v.state for v in store.latest_verdicts()) == ["regressed", "unchanged"]
    assert [v.state for v in store.latest_verdicts(host="h2")] == ["regressed"]
    c1, c2 = ScopedCursorStore(store, "c1"), ScopedCursorStore(store, "c2")
    c1.set_cursor("local", "resnet", '["1", "2"]')
    assert c1.get_cursor("local", "resnet") == '["1", "2"]'
    assert c2.get_cursor("local", "resnet") is None  # another class still sees every version
    assert store.get_cursor("local", "resnet") is None


def test_lease_s_must_be_positive(open_test_store) -> None:
    with pytest.raises((ValueError, HistoryStoreError)):
        open_test_store(lease_s=0)
