"""The start-up guards in-process: the data-dir lock, the writable check, the periodic task."""

from __future__ import annotations

import ctypes
import os
import signal
import threading
import time

import pytest

from benchd.service.lifecycle import (
    DataDirLock,
    PeriodicTask,
    StartupError,
    check_writable,
    make_undumpable,
    one_line,
)


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


NOBODY = 65534


def _as_worker_user() -> None:
    """In a forked child: become the unprivileged user the daemon and its worker share (nobody, if root).

    A uid change makes the kernel mark the process undumpable; a process exec'd as that user is
    dumpable, so that is set back.
    """
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
        ctypes.CDLL(None, use_errno=True).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE


def _daemon_like(undumpable: bool) -> int:
    """Fork a process holding a secret in its environment; it makes itself undumpable when asked."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # no exec: the interpreter's own path never matters
        try:
            _as_worker_user()
            done = make_undumpable() if undumpable else True
            os.write(w, b"1" if done else b"0")
            time.sleep(60)
        finally:
            os._exit(0)
    os.close(w)
    assert os.read(r, 1) == b"1", "make_undumpable() failed"
    os.close(r)
    return pid


def _can_read_environ_of(pid: int) -> bool:
    peeker = os.fork()
    if peeker == 0:
        code = 2
        try:
            _as_worker_user()
            with open(f"/proc/{pid}/environ", "rb") as f:
                f.read()
            code = 1
        except PermissionError:
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(peeker, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the peeking process failed ({code})"
    return code == 1


@pytest.mark.parametrize("undumpable", [False, True])
def test_an_undumpable_daemon_hides_its_environment_from_its_own_user(undumpable):
    pid = _daemon_like(undumpable)
    try:
        assert _can_read_environ_of(pid) is not undumpable
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
