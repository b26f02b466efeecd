"""A restarted daemon kills a stale worker only when pid, start time, command line and boot all match."""

from __future__ import annotations

import json
import os
import subprocess
import time

import psutil
import pytest

from benchd.runner.procs import boot_id, identity_of, is_same_process, kill_stale_worker, kill_stale_workers


@pytest.fixture
def spawn():
    started = []

    def make(*cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd), start_new_session=True)
        started.append(proc)
        time.sleep(0.05)
        return proc

    yield make
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def write_pid_file(run_dir, worker: dict, boot: str | None = None) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    doc = {"boot_id": boot_id() if boot is None else boot, "worker": worker}
    (run_dir / "worker.pid").write_text(json.dumps(doc))


def identity(pid: int) -> dict:
    me = identity_of(pid)
    return {"pid": me.pid, "start_ticks": me.start_ticks, "cmdline": list(me.cmdline)}


def test_a_live_stale_worker_is_killed(tmp_path, spawn):
    stale = spawn("sleep", "300")
    write_pid_file(tmp_path / "run", identity(stale.pid))
    assert kill_stale_worker(tmp_path / "run") == [stale.pid]
    assert stale.wait(timeout=10) == -9


def test_a_runs_comparison_workers_are_killed_with_its_own(tmp_path, spawn):
    run_worker, unit_worker = spawn("sleep", "300"), spawn("sleep", "301")
    write_pid_file(tmp_path / "run", identity(run_worker.pid))
    write_pid_file(tmp_path / "run" / "compare-single_stream-bs1" / "unit-001", identity(unit_worker.pid))
    assert sorted(kill_stale_workers(tmp_path / "run")) == sorted([run_worker.pid, unit_worker.pid])
    assert run_worker.wait(timeout=10) == -9 and unit_worker.wait(timeout=10) == -9


@pytest.mark.parametrize(
    "change",
    [
        {"start_ticks": -1},  # the pid was reused by a process that started later
        {"cmdline": ["python", "-m", "benchd.runner", "spec.json", "out"]},  # same pid, another program
    ],
)
def test_a_reused_pid_is_never_killed(tmp_path, spawn, change):
    stranger = spawn("sleep", "300")
    recorded = {**identity(stranger.pid), **change}
    write_pid_file(tmp_path / "run", recorded)
    assert kill_stale_worker(tmp_path / "run") == []
    assert alive(stranger.pid)


def test_a_pid_file_from_another_boot_or_an_old_benchd_kills_nothing(tmp_path, spawn):
    proc = spawn("sleep", "300")
    write_pid_file(tmp_path / "a", identity(proc.pid), boot="another-boot")
    assert kill_stale_worker(tmp_path / "a") == []
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "worker.pid").write_text(str(proc.pid))  # what benchd wrote before
    assert kill_stale_worker(tmp_path / "b") == []
    assert alive(proc.pid)


def test_what_is_left_of_a_group_whose_leader_died_is_killed(tmp_path, spawn):
    leader = spawn("sh", "-c", f"sleep 300 & echo $! > {tmp_path / 'child'}; sleep 1")
    recorded = identity(leader.pid)
    assert leader.wait(timeout=10) == 0
    child = int((tmp_path / "child").read_text())
    assert alive(child) and os.getpgid(child) == leader.pid  # the leader is gone, its group is not
    write_pid_file(tmp_path / "run", recorded)
    assert kill_stale_worker(tmp_path / "run") == [child]
    deadline = time.monotonic() + 10
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child)


def test_is_same_process_needs_start_time_and_command(spawn):
    proc = spawn("sleep", "300")
    me = identity_of(proc.pid)
    assert is_same_process(me)
    proc.kill()
    proc.wait()
    assert not is_same_process(me)
