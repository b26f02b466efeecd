"""Durability and concurrency: kill -9 loses nothing committed; readers run while the daemon writes.

Both backends (see conftest.py).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

from tests.threads import run_threads

import benchd
from benchd.history import SQLHistoryStore
from benchd.records import ModelVersion

_WRITER = r"""
import sys
from benchd.history import open_store
from benchd.records import ModelVersion, RunSpec, RunResult

store = open_store(sys.argv[1])
i = 0
while True:
    spec = RunSpec(model="m", version=str(i), model_path="/x")
    run_id = store.enqueue_run(spec)
    store.claim_next_run("cpu")
    store.finish_run(run_id, RunResult(model="m", version=str(i), device="cpu", outcome="ok"))
    store.record_version(ModelVersion("m", str(i), "local"))
    store.set_cursor("local", "m", str(i))
    print(i, flush=True)  # everything up to i is committed
    i += 1
"""


def test_kill_9_mid_write_loses_nothing_committed(store_url: str, open_test_store) -> None:
    env = dict(os.environ, PYTHONPATH=str(Path(benchd.__file__).parent.parent))
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, store_url], stdout=subprocess.PIPE, env=env, text=True
    )
    last = -1
    assert proc.stdout is not None
    while last < 40:
        line = proc.stdout.readline()
        assert line, f"writer died early (rc={proc.poll()})"
        last = int(line)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    store = open_test_store(clock=time.time)
    runs = store.list_runs(limit=10_000)
    done = {int(r.version) for r in runs if r.state == "ok"}
    assert set(range(last + 1)) <= done
    assert {v.version for v in store.list_versions("m")} >= {str(i) for i in range(last + 1)}
    assert int(store.get_cursor("local", "m")) >= last
    # at most the one run in flight is left running, and recovery handles it
    assert len([r for r in runs if r.state == "running"]) <= 1
    store.recover_interrupted()
    assert store.list_runs(state="running") == []


def test_readers_in_other_threads_and_connections_see_commits_while_writing(
    open_test_store, make_spec, make_run_result
) -> None:
    store = open_test_store(clock=time.time)
    reader = open_test_store(clock=time.time)  # e.g. the CLI in another process
    stop = threading.Event()
    seen_counts: dict[int, list[int]] = {0: [], 1: []}

    def write() -> None:
        try:
            for i in range(150):
                spec = make_spec(version=str(i))
                run_id = store.enqueue_run(spec)
                store.claim_next_run("cpu")
                store.finish_run(run_id, make_run_result(spec))
                store.record_version(ModelVersion("resnet", str(i), "local"))
        finally:
            stop.set()  # the readers stop too when the writer fails (run_threads reports it)

    def read(s: SQLHistoryStore, k: int) -> None:
        while not stop.is_set():
            n = len(s.result_rows(model="resnet"))
            finished = len(s.list_runs(state="ok", limit=1000))
            assert finished >= n  # a run's results commit together with its state
            seen_counts[k].append(n)
            s.run_counts()
            s.list_versions("resnet")
            time.sleep(0.002)

    # a reader or the writer that raises fails the test; one still running at the deadline is a hang
    run_threads([write, partial(read, store, 0), partial(read, reader, 1)], timeout_s=120)
    for counts in seen_counts.values():  # each reader saw the history only grow, never past what was written
        assert counts and counts == sorted(counts) and counts[-1] <= 150
    assert len(reader.result_rows(model="resnet")) == 150


def test_connections_of_ended_threads_are_closed(store: SQLHistoryStore) -> None:
    def use() -> None:
        store.list_models()

    for _ in range(30):  # like a thread-per-request HTTP server
        t = threading.Thread(target=use)
        t.start()
        t.join()
    assert store._db.open_count() <= 2
    store.list_models()  # this thread's connection still works
