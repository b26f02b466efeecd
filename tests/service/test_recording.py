"""Recording a run's end survives a store whose writes fail for a while (a full disk, a restart)."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from benchd.history import HistoryStoreError, SQLiteHistoryStore
from benchd.records import RunResult, RunSpec, ScenarioSettings
from benchd.service.recording import RetryPolicy, is_transient, record_run_end

FAST = RetryPolicy(result_window_s=0.5, first_delay_s=0.05, max_delay_s=0.1)
DISK_FULL = "database or disk is full"


class FullDiskStore(SQLiteHistoryStore):
    """A real SQLite store whose next writes fail as on a full disk (a real subclass, not a mock).

    ``finish_failures``/``fail_failures``: how many calls of each fail before the disk has room again
    (``-1``: fail until told otherwise through :attr:`room`).
    """

    def __init__(self, path: str, finish_failures: int = 0, fail_failures: int = 0) -> None:
        super().__init__(path)
        self.left = {"finish_run": finish_failures, "fail_run": fail_failures}
        self.calls = {"finish_run": 0, "fail_run": 0}
        self.room = threading.Event()

    def _full(self, method: str) -> None:
        self.calls[method] += 1
        if self.room.is_set() or self.left[method] == 0:
            return
        self.left[method] -= 1 if self.left[method] > 0 else 0
        try:
            raise sqlite3.OperationalError(DISK_FULL)
        except sqlite3.OperationalError as e:
            raise HistoryStoreError(self.path, f"write failed: {e}") from e

    def finish_run(self, run_id, result, latencies=None, *, owner=None):
        self._full("finish_run")
        return super().finish_run(run_id, result, latencies, owner=owner)

    def fail_run(self, run_id, kind, message, state="failed", *, owner=None):
        self._full("fail_run")
        return super().fail_run(run_id, kind, message, state, owner=owner)


def running_run(store) -> tuple[int, RunResult]:
    spec = RunSpec(model="m", version="1", model_path="/m/1", scenarios=(ScenarioSettings(),))
    run_id = store.enqueue_run(spec)
    store.claim_next_run("cpu")
    result = RunResult(model="m", version="1", device="cpu", outcome="failed", error_kind="model_error")
    return run_id, result


def record(store, run_id, result, abort=None):
    return record_run_end(
        store,
        run_id,
        lambda: store.finish_run(run_id, result),
        owner=None,
        abort=abort or threading.Event(),
        policy=FAST,
    )


def test_a_store_that_fails_briefly_still_gets_the_result(tmp_path):
    store = FullDiskStore(str(tmp_path / "s.db"), finish_failures=3)
    run_id, result = running_run(store)
    assert record(store, run_id, result) == "recorded"
    assert store.calls["finish_run"] == 4
    assert store.get_run(run_id).state == "failed" and store.get_run(run_id).error_kind == "model_error"


def test_a_result_the_store_never_takes_ends_the_run_failed_with_the_reason_and_counted(tmp_path):
    store = FullDiskStore(str(tmp_path / "s.db"), finish_failures=-1, fail_failures=4)
    run_id, result = running_run(store)
    assert record(store, run_id, result) == "failed"
    run = store.get_run(run_id)
    assert run.state == "failed" and run.error_kind == "internal"
    assert "could not be recorded" in run.error and DISK_FULL in run.error
    assert store.run_counts() == {("m", "single_stream", "failed"): 1}
    assert store.run_state_counts()["running"] == 0


def test_failing_the_run_is_retried_until_the_store_has_room_again(tmp_path):
    store = FullDiskStore(str(tmp_path / "s.db"), finish_failures=-1, fail_failures=-1)
    run_id, result = running_run(store)
    threading.Timer(1.0, store.room.set).start()
    started = time.monotonic()
    assert record(store, run_id, result) == "failed"
    assert time.monotonic() - started >= 1.0
    assert store.get_run(run_id).state == "failed"


def test_a_daemon_stopping_while_the_store_fails_leaves_the_run_for_recovery(tmp_path):
    store = FullDiskStore(str(tmp_path / "s.db"), finish_failures=-1, fail_failures=-1)
    run_id, result = running_run(store)
    abort = threading.Event()
    threading.Timer(0.8, abort.set).start()
    assert record(store, run_id, result, abort) == "abandoned"
    assert store.get_run(run_id).state == "running"
    store.room.set()
    (recovered,) = store.recover_interrupted()
    assert recovered.id == run_id and recovered.state == "queued"


def test_a_refusal_is_not_retried(tmp_path):
    store = FullDiskStore(str(tmp_path / "s.db"))
    run_id, result = running_run(store)
    store.fail_run(run_id, "internal", "already ended elsewhere")
    started = time.monotonic()
    assert record(store, run_id, result) == "lost"
    assert time.monotonic() - started < 0.5 and store.calls["finish_run"] == 1
    with pytest.raises(HistoryStoreError) as refused:
        store.finish_run(run_id, result)
    assert not is_transient(refused.value)
