"""A worker process under its supervisor: start it, read its events, wait for it, end it (no torch).

:func:`start_worker` starts ``python -I -S supervise.py`` (see :mod:`benchd.runner.supervise`), which
starts the worker; :class:`WorkerProcess` reads the worker's events and waits for the supervisor, which
exits only once nothing the worker started is left. :mod:`benchd.runner.launch` builds on these.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchd.runner.procs import PID_FILE, ProcessIdentity
from benchd.runner.sandbox import HOME_DIR, TMP_DIR, WorkerLimits, worker_env
from benchd.runner.streams import EventHandler, read_events

logger = logging.getLogger(__name__)

SUPERVISOR = Path(__file__).with_name("supervise.py")
EXIT_FILE = "worker.exit"
LOG_FILE = "worker.log"
_EOF = object()


def start_worker(
    module: str,
    args: list[str],
    out_dir: Path,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    limits: WorkerLimits | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m module args`` as a worker under its supervisor; return the supervisor's process.

    The supervisor runs in a session of its own with stdout piped to us (the worker's JSON events) and
    writes the worker's stderr into ``out_dir/worker.log`` (capped), its identity into ``worker.pid`` and
    its end into ``worker.exit``. The worker's environment is :func:`~benchd.runner.sandbox.worker_env`
    plus ``env`` (explicit variables, which win); nothing else of the daemon's environment reaches it.
    """
    limits = limits or WorkerLimits()
    for stale in (EXIT_FILE, PID_FILE, LOG_FILE + ".1"):
        (out_dir / stale).unlink(missing_ok=True)
    config = {
        "log": str(out_dir / LOG_FILE),
        "log_cap_bytes": limits.log_cap_bytes,
        "memory_limit_bytes": limits.memory_limit_bytes,
        "grace_s": limits.grace_s,
        "pid_file": str(out_dir / PID_FILE),
        "exit_file": str(out_dir / EXIT_FILE),
        "parent_pid": os.getpid(),
    }
    cmd = [sys.executable, "-I", "-S", str(SUPERVISOR), json.dumps(config), python, "-m", module, *args]
    (out_dir / LOG_FILE).write_bytes(b"")
    with (out_dir / LOG_FILE).open("ab") as err:  # the supervisor's own errors; it appends the worker's
        return subprocess.Popen(  # noqa: S603 - our own interpreter and script
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=worker_env(out_dir, env),
            start_new_session=True,  # no preexec_fn: the supervisor sets up its own death signal
        )


def kill_group(proc: subprocess.Popen[bytes], grace_s: float = 3.0, out_dir: Path | None = None) -> None:
    """End a worker: SIGTERM its supervisor, which SIGTERMs the whole tree and SIGKILLs it after ``grace_s``.

    Should the supervisor itself not exit in time, its process group and (from ``out_dir/worker.pid``)
    the worker's are SIGKILLed.
    """
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=grace_s + 10.0)
        return
    except subprocess.TimeoutExpired:
        logger.error("the supervisor of worker pid file %s did not exit; killing its groups", out_dir)
    groups = [proc.pid]
    if out_dir is not None:
        try:
            worker = ProcessIdentity.from_json(json.loads((out_dir / PID_FILE).read_text()).get("worker"))
        except (OSError, ValueError, AttributeError):
            worker = None
        if worker is not None:
            groups.append(worker.pid)
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    proc.wait(timeout=10.0)


class WorkerProcess:
    """One running worker; :meth:`wait` delivers its events on the waiting thread and returns its status.

    The reader thread only moves JSON lines from the worker's stdout into a bounded queue (each line at
    most ``limits.max_event_bytes``, at most :attr:`QUEUE_EVENTS` waiting: a worker that writes faster
    than the daemon handles blocks on its pipe); ``on_event`` runs on the thread that calls :meth:`wait`,
    so callers never need locks for their bookkeeping.
    """

    QUEUE_EVENTS = 1000

    def __init__(
        self,
        module: str,
        args: list[str],
        out_dir: Path,
        *,
        on_event: EventHandler | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
        limits: WorkerLimits | None = None,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.on_event = on_event
        self.limits = limits or WorkerLimits()
        self.stderr_path = out_dir / LOG_FILE
        self.events: queue.Queue[Any] = queue.Queue(maxsize=self.QUEUE_EVENTS)
        self._listening = True  # False once wait() returned: the reader then drops what is left
        self.proc = start_worker(module, args, out_dir, python, env, self.limits)
        self.reader = threading.Thread(target=self._read, name="benchd-worker-events", daemon=True)
        self.reader.start()

    def _put(self, item: Any) -> None:
        while self._listening:
            try:
                self.events.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def _read(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None  # the worker is started with stdout=PIPE
        try:
            read_events(stdout, self._put, self.limits.max_event_bytes)
        finally:
            self._put(_EOF)

    def _deliver(self, timeout_s: float) -> bool:
        """Deliver one event; False on timeout or once stdout closed."""
        try:
            event = self.events.get(timeout=timeout_s)
        except queue.Empty:
            return False
        if event is _EOF:
            self.events.put(_EOF)  # stays at the end for later calls (the reader has stopped)
            return False
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken progress display or bookkeeping bug must not break the run
                logger.exception("worker event handler failed")
        return True

    def _drain(self, timeout_s: float = 5.0) -> None:
        """Deliver what the worker wrote before it ended (for at most ``timeout_s``), then stop listening."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._deliver(0.05) and not self.reader.is_alive():
                break
        self._listening = False

    def _closed(self) -> bool:
        return not self.reader.is_alive() and self.events.qsize() <= 1

    def wait(self, timeout_s: float, cancel: threading.Event | None) -> int | None:
        """Wait for the worker; end its tree at ``timeout_s`` or when ``cancel`` is set (then None).

        Returns the worker's exit status (negative: the signal that ended it). The deadline and
        ``cancel`` are checked after every event, so a worker flooding events still times out.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self._deliver(0.1)
            if self._closed() or self.proc.poll() is not None:
                try:
                    self.proc.wait(timeout=self.limits.grace_s + 10.0)
                except subprocess.TimeoutExpired:  # stdout closed but the supervisor hangs on
                    kill_group(self.proc, self.limits.grace_s, self.out_dir)
                self._drain()
                return self._exit_status()
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                kill_group(self.proc, self.limits.grace_s, self.out_dir)
                self._drain()
                return None

    def _exit_status(self) -> int:
        """The worker's status from the supervisor's ``worker.exit``, else the supervisor's own."""
        try:
            code = json.loads((self.out_dir / EXIT_FILE).read_text()).get("returncode")
        except (OSError, ValueError, AttributeError):
            code = None
        if isinstance(code, int):
            return code
        logger.error(
            "the supervisor of %s left no worker.exit (status %s)", self.out_dir, self.proc.returncode
        )
        return self.proc.returncode if self.proc.returncode is not None else -int(signal.SIGKILL)

    def cleanup(self) -> None:
        """Remove the worker's scratch ``HOME`` and ``TMPDIR`` (its whole process tree has ended)."""
        self._listening = False
        for name in (HOME_DIR, TMP_DIR):
            shutil.rmtree(self.out_dir / name, ignore_errors=True)
        if not self.reader.is_alive() and self.proc.stdout is not None:
            self.proc.stdout.close()
