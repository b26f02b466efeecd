"""Runs that stay ``running`` past their timeout are failed and counted; counts of runs per state.

Every test runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

from benchd.history import SQLHistoryStore
from benchd.records import RUN_STATES


def test_a_run_stuck_past_its_timeout_plus_grace_is_failed_and_counted(
    store: SQLHistoryStore, clock, make_spec
) -> None:
    stuck = store.enqueue_run(make_spec(version="1", timeout_s=100.0))
    store.enqueue_run(make_spec(version="2", timeout_s=1000.0))
    store.claim_next_run("cpu")
    store.claim_next_run("cpu")
    clock.advance(100 + 60 - 1)
    assert store.fail_stuck_runs(grace_s=60) == []
    clock.advance(2)
    (failed,) = store.fail_stuck_runs(grace_s=60)
    assert failed.id == stuck and failed.state == "failed" and failed.error_kind == "internal"
    assert "past its timeout of 100 s plus 60 s" in failed.error
    assert store.get_run(stuck).ended_unix_s == clock()
    assert store.run_counts() == {("resnet", "single_stream", "failed"): 1}
    counts = store.run_state_counts()
    assert set(counts) == set(RUN_STATES)
    assert (counts["failed"], counts["running"], counts["queued"]) == (1, 1, 0)
    assert store.fail_stuck_runs(grace_s=60) == []  # failed once, not again


def test_a_fleet_host_fails_only_the_runs_it_claimed(open_test_store, clock, make_spec) -> None:
    mine, theirs = open_test_store(host="a"), open_test_store(host="b")
    mine.enqueue_run(make_spec(version="1", timeout_s=10.0))
    theirs.enqueue_run(make_spec(version="2", timeout_s=10.0))
    a_run = mine.claim_next_run("cpu")
    b_run = theirs.claim_next_run("cpu")
    clock.advance(1000)
    assert [r.id for r in mine.fail_stuck_runs(grace_s=60, host="a")] == [a_run.id]
    assert mine.get_run(b_run.id).state == "running"


def test_run_state_counts_cover_every_state(store: SQLHistoryStore, make_spec, make_run_result) -> None:
    assert store.run_state_counts() == dict.fromkeys(RUN_STATES, 0)
    spec = make_spec(version="1")
    run_id = store.enqueue_run(spec)
    store.enqueue_run(make_spec(version="2"))
    store.claim_next_run("cpu")
    store.finish_run(run_id, make_run_result(spec))
    counts = store.run_state_counts()
    assert (counts["ok"], counts["queued"], counts["running"]) == (1, 1, 0)
