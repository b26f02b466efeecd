"""The daemon's start-up guards: one daemon per data dir, a usable data dir, clear start-up errors.

Start-up order (see :class:`~benchd.service.app.BenchdApp`): the data-dir lock first (before the store
is opened or anything is touched), then the store and devices, then the HTTP port, and only then
recovery of runs a dead daemon left behind (which may kill its stale workers). A second daemon on the
same data dir, or one whose port is taken, so stops before it can harm the first one's runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import logging
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path

from benchd.errors import BenchdError

logger = logging.getLogger(__name__)

LOCK_FILE = "benchd.lock"


class StartupError(BenchdError):
    """The daemon cannot start; the message is one sentence saying why and what to do."""


def one_line(text: str) -> str:
    """``text`` on one line (drivers' multi-line messages joined), for start-up errors."""
    return re.sub(r"\s*\n\s*", "; ", text.strip())


class DataDirLock:
    """An exclusive ``flock`` on ``DATA_DIR/benchd.lock``, held for the daemon's life.

    The kernel releases it when the process dies however it dies, so a stale lock file never blocks a
    restart. The file holds the holder's pid, for the message a second daemon prints.
    """

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.path = data_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        """Take the lock (creating the data dir if needed).

        Raises:
            StartupError: the data dir cannot be created or written, or another daemon holds the lock.
        """
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StartupError(
                f"the data dir {self.data_dir} is not usable: {e.strerror or e}; make it a writable "
                "folder or set data_dir (--data-dir)"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_pid(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise StartupError(f"cannot lock the data dir {self.data_dir}: {e.strerror or e}") from e
            who = f"pid {holder}" if holder else "another process"
            raise StartupError(
                f"another benchd ({who}) is already running on the data dir {self.data_dir}; stop it "
                "first, or give this one its own data_dir (--data-dir)"
            ) from e
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:
            os.close(fd)
            raise StartupError(
                f"the data dir {self.data_dir} is not writable: {e.strerror or e}; make it a writable "
                "folder or set data_dir (--data-dir)"
            ) from e
        self._fd = fd
        return self

    def release(self) -> None:
        """Give the lock up (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        return int(os.pread(fd, 32, 0).decode().strip() or 0) or None
    except (OSError, ValueError):
        return None


def make_undumpable() -> bool:
    """Hide this process's ``/proc/PID/environ``, memory and file descriptors from its own user.

    A worker runs as the daemon's user, so by default it could read the daemon's environment (every
    secret) from ``/proc/DAEMON/environ`` and, where ptrace is allowed, its memory.
    ``prctl(PR_SET_DUMPABLE, 0)`` makes those root-only (and turns off core dumps of the daemon).
    Root gains nothing (a root worker may read anything), so this is done only when not root.
    Returns True when it was done.
    """
    if os.geteuid() == 0:
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0) == 0  # PR_SET_DUMPABLE
    except (OSError, AttributeError):
        return False


def check_writable(folder: Path) -> None:
    """Write and remove a probe file in ``folder`` (run outputs go there).

    Raises:
        StartupError: the folder cannot be created or written (read-only file system, full disk).
    """
    probe = folder / f".benchd-write-probe-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        raise StartupError(
            f"cannot write in {folder}: {e.strerror or e}; make the data dir writable or set data_dir "
            "(--data-dir)"
        ) from e


def bind_error(host: str, port: int, error: OSError) -> StartupError:
    """The start-up error for an HTTP address that cannot be bound."""
    if error.errno == errno.EADDRINUSE:
        return StartupError(
            f"cannot listen on {host}:{port}: the port is already in use (by another benchd or another "
            "program); stop it or set http.port (--port)"
        )
    why = error.strerror or str(error)
    return StartupError(f"cannot listen on {host}:{port}: {why}; check http.host and http.port")


class PeriodicTask:
    """Calls ``task`` every ``interval_s`` on a thread of its own until stopped.

    A failing call is logged and never stops the loop.
    """

    def __init__(self, name: str, interval_s: float, task: Callable[[], object]) -> None:
        self.interval_s = interval_s
        self.task = task
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"benchd-{name}", daemon=True)

    def start(self) -> None:
        """Start the loop (the first call comes after one interval)."""
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop and wait for a call in progress."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30.0)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.task()
            except Exception:  # a failing check must not end the daemon's checks
                logger.exception("periodic task %s failed", self._thread.name)
