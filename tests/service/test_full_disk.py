"""A full disk under the store while a real run ends: the run ends ``failed``, counted, once there is room.

The store lives on a 4 MiB tmpfs mounted for the test (root only: elsewhere the test skips and says so;
tests/service/test_recording.py covers the same logic with a store whose writes fail).
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import threading
import time

import pytest

from benchd.history import open_store
from benchd.metrics.health import RunStatesCollector
from benchd.records import RunSpec
from benchd.service.recording import RetryPolicy
from benchd.service.slots import Slot, SlotWorker
from tests.conftest import quick

pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_recording.py covers this with a failing store")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> None:
    with (folder / "filler").open("wb") as f:
        try:
            while True:
                f.write(b"\0" * 65536)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC


def wait_for(predicate, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)
    return value


def test_a_full_disk_when_a_run_ends_fails_the_run_once_there_is_room(tiny_disk, tmp_path, zoo, caplog):
    db = tiny_disk / "store.sqlite"
    store = open_store(str(db))
    spec = RunSpec(
        model="mlp", version="1", model_path=str(zoo["mlp"]), scenarios=(quick(min_duration_s=2.0),)
    )
    run_id = store.enqueue_run(spec)
    ended = []
    slot = SlotWorker(
        Slot("cpu", "cpu"),
        store,
        {},
        tmp_path / "runs",
        meter=None,
        fingerprint=lambda name: {},
        after_run=lambda record, result, cancel: ended.append(record.id),
        wakeup=threading.Condition(),
        retry=RetryPolicy(result_window_s=1.0, first_delay_s=0.2, max_delay_s=0.5),
    )
    slot.start()
    try:
        wait_for(lambda: store.get_run(run_id).state == "running", 60, "the run to start")
        with sqlite3.connect(db) as conn:  # an empty WAL, so the next write needs new space
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        fill(tiny_disk)
        wait_for(
            lambda: f"recording run {run_id} as failed failed" in caplog.text, 120, "the disk to fill up"
        )
        assert store.get_run(run_id).state == "running"  # nothing could be written yet
        (tiny_disk / "filler").unlink()
        run = wait_for(lambda: (r := store.get_run(run_id)).finished and r, 30, "the run to be failed")
    finally:
        slot.stop(5.0)
    assert run.state == "failed" and run.error_kind == "internal"
    assert "could not be recorded" in run.error and "full" in run.error
    assert store.run_counts() == {("mlp", "single_stream", "failed"): 1}
    (family,) = RunStatesCollector(store.run_state_counts).collect()
    by_state = {s.labels["state"]: s.value for s in family.samples}
    assert (by_state["failed"], by_state["running"]) == (1, 0)
    assert ended == []  # no verdict for a result that was not stored
    store.close()
