"""``benchd run``'s lifecycle: one daemon per data dir, the port before recovery, stale workers told apart.

And every start-up failure as one sentence with exit status 2.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from benchd.history import open_store
from benchd.records import RunSpec
from benchd.runner.procs import boot_id, identity_of
from tests.conftest import quick
from tests.daemon.conftest import QUICK_BENCHMARK, wait_until
from tests.daemon.test_daemon import TERMINAL, publish
from tests.mlflow_server import free_port

pytestmark = pytest.mark.slow


def run_benchd(config_path, timeout_s: float = 60) -> subprocess.CompletedProcess:
    """``benchd run`` expected to fail at start-up (a timeout means it started: a failure too)."""
    return subprocess.run(
        [sys.executable, "-m", "benchd.cli", "run", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def one_sentence(proc: subprocess.CompletedProcess) -> str:
    """The start-up failure's sentence, after checking it is one line, exit 2 and no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("benchd run: cannot start: "), proc.stderr
    return last


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture
def stranger():
    """A process that is not benchd's (``sleep 300`` in a session of its own)."""
    proc = subprocess.Popen(["sleep", "300"], start_new_session=True)
    time.sleep(0.05)
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def interrupted_run(d, zoo, worker_pid_file: str) -> int:
    """A data dir as a dead daemon leaves it: a run ``running``, with ``worker.pid`` in its folder."""
    store = open_store(f"sqlite:///{d.root / 'data' / 'benchd.sqlite'}")
    spec = RunSpec(
        model="mlp",
        version="1",
        model_path=str(zoo["mlp"]),
        scenarios=(quick(),),
        timeout_s=60,
        device="cuda:0",
    )  # the daemon's first (fake) GPU slot
    run_id = store.enqueue_run(spec, reason="poll")
    store.claim_next_run("cuda:0")
    store.close()
    run_dir = d.root / "data" / "runs" / str(run_id)
    run_dir.mkdir(parents=True)
    (run_dir / "worker.pid").write_text(worker_pid_file)
    return run_id


def pid_file_for(pid: int, **change) -> str:
    me = identity_of(pid)
    worker = {"pid": pid, "start_ticks": me.start_ticks, "cmdline": list(me.cmdline), **change}
    return json.dumps({"boot_id": boot_id(), "worker": worker})


def test_a_second_daemon_on_the_same_data_dir_exits_2_and_leaves_the_first_ones_run_alone(
    daemon_factory, zoo
):
    slow = {
        **QUICK_BENCHMARK,
        "defaults": {**QUICK_BENCHMARK["defaults"], "min_duration": "6s", "max_duration": "20s"},
    }
    d = daemon_factory({"benchmark": slow}).start()
    publish(d, zoo["mlp"], "mlp", "1")
    (run,) = d.wait_runs(lambda rs: rs and rs[0]["state"] == "running", 60, "the run to start")
    pid_file = d.root / "data" / "runs" / str(run["id"]) / "worker.pid"
    worker = json.loads(wait_until(lambda: pid_file.exists() and pid_file.read_text(), 30, "the worker"))
    worker = worker["worker"]["pid"]
    environ = Path(f"/proc/{worker}/environ").read_bytes()
    assert b"test-token" not in environ and b"BENCHD_API_TOKEN" not in environ  # the daemon's API token
    second = run_benchd(d.config_path)  # same data dir, same port
    sentence = one_sentence(second)
    assert f"another benchd (pid {d.proc.pid}) is already running on the data dir" in sentence
    assert alive(worker), "the second daemon killed the first one's worker"
    (done,) = d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "the run to finish")
    assert (done["state"], done["attempts"]) == ("ok", 1)
    assert d.stop() == 0


def test_port_in_use_exits_2_before_recovery_kills_or_changes_anything(daemon_factory, zoo, stranger):
    d = daemon_factory()
    (d.root / "data").mkdir()
    run_id = interrupted_run(d, zoo, pid_file_for(stranger.pid))  # it even looks like our stale worker
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", d.port))
        busy.listen()
        sentence = one_sentence(run_benchd(d.config_path))
    assert f"cannot listen on 127.0.0.1:{d.port}: the port is already in use" in sentence
    assert alive(stranger.pid)
    store = open_store(f"sqlite:///{d.root / 'data' / 'benchd.sqlite'}")
    assert store.get_run(run_id).state == "running" and store.get_run(run_id).attempts == 1
    store.close()
    # with the port free, the same start recovers: the (matching) stale worker is killed, the run re-run
    d.start()
    assert stranger.wait(timeout=10) == -9
    (run,) = d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "the re-queued run")
    assert (run["state"], run["attempts"]) == ("ok", 2)


@pytest.mark.parametrize("pid_file", ["plain number (older benchd)", "reused pid (start time differs)"])
def test_a_stale_pid_now_used_by_another_process_is_never_killed(daemon_factory, zoo, stranger, pid_file):
    d = daemon_factory()
    (d.root / "data").mkdir()
    text = str(stranger.pid) if pid_file.startswith("plain") else pid_file_for(stranger.pid, start_ticks=1)
    interrupted_run(d, zoo, text)
    d.start()
    (run,) = d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "the re-queued run")
    assert run["state"] == "ok"
    assert alive(stranger.pid), "the daemon killed a process that only had a stale worker's pid"


def _config(d, **changes):
    config = yaml.safe_load(d.config_path.read_text())
    config.update(changes)
    d.config_path.write_text(yaml.safe_dump(config))


def test_lock_held_corrupt_store_and_unusable_data_dir_are_one_sentence(daemon_factory, tmp_path):
    d = daemon_factory()
    data = d.root / "data"
    data.mkdir()
    with (data / "benchd.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        sentence = one_sentence(run_benchd(d.config_path))
        assert f"another benchd (pid {os.getpid()}) is already running on the data dir {data}" in sentence
    (data / "benchd.sqlite").write_bytes(b"this is not a database" * 100)
    assert "file is not a database" in one_sentence(run_benchd(d.config_path))
    a_file = tmp_path / "plain-file"
    a_file.write_text("")
    _config(d, data_dir=str(a_file / "data"))
    assert f"the data dir {a_file / 'data'} is not usable" in one_sentence(run_benchd(d.config_path))


def test_a_corrupt_runs_table_is_one_sentence_naming_the_store(daemon_factory, zoo):
    d = daemon_factory()
    (d.root / "data").mkdir()
    run_id = interrupted_run(d, zoo, "")
    db = d.root / "data" / "benchd.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("UPDATE runs SET spec_json = '{not json' WHERE id = ?", (run_id,))
    sentence = one_sentence(run_benchd(d.config_path))
    assert f"cannot recover the runs a previous daemon left in the history store {db}" in sentence


def test_an_unreachable_postgresql_store_is_one_sentence_without_its_password(daemon_factory):
    d = daemon_factory()
    url = f"postgresql://benchd:hunter2-secret@127.0.0.1:{free_port()}/benchd"
    _config(d, store={"url": url})
    proc = run_benchd(d.config_path)
    sentence = one_sentence(proc)
    assert "cannot connect" in sentence and "127.0.0.1" in sentence
    assert "hunter2-secret" not in proc.stderr


def test_a_read_only_data_dir_is_one_sentence(daemon_factory, tmp_path):
    d = daemon_factory()
    ro = tmp_path / "ro"
    ro.mkdir()
    if os.geteuid() == 0:  # root writes through permissions: a read-only mount it is
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(ro)], capture_output=True
        )
        if done.returncode != 0:
            pytest.skip(f"root, and cannot mount a read-only tmpfs here: {done.stderr.decode().strip()}")
    else:
        ro.chmod(0o555)
    try:
        _config(d, data_dir=str(ro / "data"))
        sentence = one_sentence(run_benchd(d.config_path))
        assert f"the data dir {ro / 'data'} is not usable" in sentence
        assert "Read-only file system" in sentence or "Permission denied" in sentence
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", "-l", str(ro)], check=False)
