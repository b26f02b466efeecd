"""The launcher's guarantees against a hostile worker, with a torch-free stand-in (``standin_worker.py``).

Each test states what a worker may not do to the daemon: read its secrets, leave processes behind, grow
its memory, fill its disk, or use more host memory than its limit.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from benchd.runner.launch import WorkerLimits, read_events, run_worker, stderr_tail
from tests.conftest import REPO

STANDIN = "tests.runner.standin_worker"
SECRETS = {
    "BENCHD_API_TOKEN": "tok-3f9a1c",
    "HOOK_SECRET": "hook-77b2e0",
    "MLFLOW_TRACKING_PASSWORD": "mlflow-pw-51d8",
    "AWS_SECRET_ACCESS_KEY": "aws-9c04aa",
    "CUDA_SNEAKY_TOKEN": "cuda-tok-1e2d",  # an allowed prefix does not let a secret-looking name pass
}


def run(mode: str, out: Path, *extra: str, **kw):
    kw.setdefault("timeout_s", 60)
    env = {"PYTHONPATH": str(REPO), **kw.pop("env", {})}
    return run_worker(STANDIN, [mode, str(out), *extra], out, what="the test", env=env, **kw)


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie is dead: it only waits to be reaped)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_worker_environment_holds_none_of_the_daemons_secrets(tmp_path, monkeypatch):
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    monkeypatch.setenv("PYTHONPATH", "/the/daemons/own/path")
    out = tmp_path / "run"
    end = run("env", out)
    assert not end.failed, end.error
    raw, env = end.payload["proc_environ"], end.payload["environ"]
    for name, value in SECRETS.items():
        assert value not in raw and name not in env
    # what torch, CUDA and Python need does pass, and HOME/TMPDIR are private folders of the run
    assert env["CUDA_VISIBLE_DEVICES"] == "0" and env["OMP_NUM_THREADS"] == "3"
    assert env["PYTHONPATH"] == str(REPO)  # only the one the caller passed explicitly
    assert Path(env["HOME"]) == (out / "home").resolve() and Path(env["TMPDIR"]) == (out / "tmp").resolve()
    assert not (out / "home").exists() and not (out / "tmp").exists()  # scratch removed after the run


@pytest.mark.parametrize("mode", ["fork", "setsid"])
def test_children_that_ignore_sigterm_do_not_outlive_a_normal_end(tmp_path, mode):
    out = tmp_path / "run"
    end = run(mode, out, limits=WorkerLimits(grace_s=0.5))
    assert not end.failed, end.error
    child = int((out / "child.pid").read_text())
    assert not alive(child), f"the worker's {mode} child {child} outlived the run"


@pytest.mark.parametrize("mode", ["fork", "setsid"])
def test_children_that_ignore_sigterm_do_not_outlive_a_timeout(tmp_path, mode):
    out = tmp_path / "run"
    started = time.monotonic()
    end = run(mode, out, "hang", timeout_s=3, limits=WorkerLimits(grace_s=0.5))
    assert (end.outcome, end.error_kind) == ("timeout", "timeout")
    assert time.monotonic() - started < 30
    child = int((out / "child.pid").read_text())
    assert not alive(child), f"the worker's {mode} child {child} outlived the timeout"


def test_cancel_ends_the_worker_and_its_escaped_children(tmp_path):
    out = tmp_path / "run"
    cancel = threading.Event()
    timer = threading.Timer(2.0, cancel.set)
    timer.start()
    end = run("setsid", out, "hang", cancel=cancel, limits=WorkerLimits(grace_s=0.5))
    assert end.error_kind == "interrupted"
    assert not alive(int((out / "child.pid").read_text()))


def test_a_daemon_killed_with_sigkill_leaves_no_worker_and_no_escaped_child(tmp_path):
    out = tmp_path / "run"
    host = (
        "import sys; from pathlib import Path; from benchd.runner.launch import run_worker; "
        f"run_worker({STANDIN!r}, ['setsid', sys.argv[1], 'hang'], Path(sys.argv[1]), timeout_s=600, "
        f"what='the test', env={{'PYTHONPATH': {str(REPO)!r}}})"
    )
    daemon = subprocess.Popen([sys.executable, "-c", host, str(out)])
    try:
        deadline = time.monotonic() + 60
        while not (out / "child.pid").exists():
            assert time.monotonic() < deadline and daemon.poll() is None, "the worker never forked"
            time.sleep(0.05)
        worker = json.loads((out / "worker.pid").read_text())["worker"]["pid"]
        child = int((out / "child.pid").read_text())
    finally:
        daemon.kill()
        daemon.wait()
    deadline = time.monotonic() + 30
    while (alive(worker) or alive(child)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(worker) and not alive(child), "the dead daemon's worker tree lives on"


def test_a_worker_past_its_memory_limit_fails_as_out_of_memory_naming_the_limit(tmp_path):
    limits = WorkerLimits(memory_limit_bytes=256 << 20)
    under = run("alloc", tmp_path / "under", str(64 << 20), limits=limits)
    assert not under.failed, under.error
    over = run("alloc", tmp_path / "over", str(512 << 20), limits=limits)
    assert (over.outcome, over.error_kind) == ("failed", "out_of_memory")
    assert "256 MiB" in over.error and "MemoryError" in over.error


class PeakRSS:
    """Samples this process's RSS every few ms while the block runs (psutil)."""

    def __enter__(self) -> PeakRSS:
        self.proc = psutil.Process()
        self.start = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.stop.wait(0.002):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.start) / 2**20


def test_a_stdout_flood_without_newline_does_not_grow_the_daemon(tmp_path):
    events = []
    with PeakRSS() as rss:
        end = run("stdout", tmp_path / "run", str(300 << 20), on_event=events.append)
    assert not end.failed, end.error
    assert rss.growth_mib < 24, f"the daemon grew by {rss.growth_mib:.0f} MiB reading 300 MB of stdout"
    assert [e["event"] for e in events] == ["after_flood"]  # the stream recovers after the dropped line


def test_a_worker_flooding_events_still_times_out_and_the_daemon_stays_small(tmp_path):
    seen = []
    started = time.monotonic()
    with PeakRSS() as rss:
        end = run("events", tmp_path / "run", timeout_s=3, on_event=lambda e: seen.append(1))
    assert (end.outcome, end.error_kind) == ("timeout", "timeout")
    assert time.monotonic() - started < 30 and len(seen) > 1000
    assert rss.growth_mib < 24, f"the daemon grew by {rss.growth_mib:.0f} MiB queueing events"


def test_a_stderr_flood_keeps_the_log_within_its_cap_and_the_daemon_small(tmp_path):
    out = tmp_path / "run"
    cap = 4 << 20
    with PeakRSS() as rss:
        end = run("stderr", out, str(200 << 20), limits=WorkerLimits(log_cap_bytes=cap))
    assert not end.failed, end.error
    logged = sum(p.stat().st_size for p in out.glob("worker.log*"))
    assert logged <= cap + 4096, f"{logged} bytes of log kept for a cap of {cap}"
    assert "the end of stderr" in stderr_tail(out / "worker.log")
    assert rss.growth_mib < 24, f"the daemon grew by {rss.growth_mib:.0f} MiB over 200 MB of stderr"


def test_read_events_drops_oversized_and_garbage_lines_and_keeps_the_rest():
    stream = io.BufferedReader(
        io.BytesIO(b'{"event": "a"}\n' + b"y" * 10_000 + b'\nnot json\n{"event": "b"}\n{"event": "c"}')
    )
    got = []
    dropped = read_events(stream, got.append, max_line_bytes=1024)
    assert [e["event"] for e in got] == ["a", "b", "c"]
    assert dropped == 10_001 + len(b"not json\n")


def test_stderr_tail_reads_the_end_across_a_rotation(tmp_path):
    log = tmp_path / "worker.log"
    (tmp_path / "worker.log.1").write_bytes(b"old" * 1000 + b"OLDEND")
    log.write_bytes(b"NEWSTART" + b"n" * 10)
    tail = stderr_tail(log, n_bytes=30)
    assert tail == "oldold" + "OLDEND" + "NEWSTART" + "n" * 10  # 30 bytes: 12 from the older file


def test_limits_refuse_nonsense():
    with pytest.raises(ValueError, match="memory_limit_bytes"):
        WorkerLimits(memory_limit_bytes=1000)
    with pytest.raises(ValueError, match="log_cap_bytes"):
        WorkerLimits(log_cap_bytes=10)
