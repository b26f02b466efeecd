"""The start-up guards in-process: the data-dir lock, the writable check, the periodic task."""

from __future__ import annotations

import os
import threading

import pytest

from benchd.service.lifecycle import DataDirLock, PeriodicTask, StartupError, check_writable, one_line


def test_the_data_dir_lock_is_exclusive_names_its_holder_and_is_released(tmp_path):
    first = DataDirLock(tmp_path / "data").acquire()
    assert (tmp_path / "data" / "benchd.lock").read_text().strip() == str(os.getpid())
    with pytest.raises(StartupError, match=rf"another benchd \(pid {os.getpid()}\) is already running"):
        DataDirLock(tmp_path / "data").acquire()
    first.release()
    first.release()  # idempotent
    DataDirLock(tmp_path / "data").acquire().release()


def test_a_data_dir_that_is_a_file_is_refused_in_one_sentence(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(StartupError, match="is not usable") as e:
        DataDirLock(tmp_path / "f" / "data").acquire()
    assert "\n" not in str(e.value)
    with pytest.raises(StartupError, match="cannot write in"):
        check_writable(tmp_path / "f" / "runs")


def test_one_line_joins_driver_messages():
    assert (
        one_line("connection failed\n\tIs the server running?\n")
        == "connection failed; Is the server running?"
    )


def test_a_periodic_task_keeps_running_after_a_failure():
    calls = []
    done = threading.Event()

    def task():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first call fails")
        done.set()

    periodic = PeriodicTask("test", 0.01, task)
    periodic.start()
    assert done.wait(10)
    periodic.stop()
    assert len(calls) >= 2
