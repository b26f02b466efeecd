"""A run's supervisor: the process between the daemon and a worker, which outlives nothing it started.

Run by :mod:`benchd.runner.launch` as ``python -I -S supervise.py CONFIG_JSON CMD...`` (standard library
only, imports nothing of benchd, starts in about 10 ms). It

- becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so every process the worker starts, including a
  double-forked one that called ``setsid()``, is re-parented to it instead of init when its parent dies;
- starts ``CMD`` (the worker) in a process group of its own, with a memory limit (``RLIMIT_DATA``), and
  SIGKILL when the supervisor dies (``PR_SET_PDEATHSIG``);
- copies the worker's stderr into ``worker.log``, capped (the newer half rotates into ``worker.log.1``);
- writes ``worker.pid``: both processes' pid, start time (``/proc/PID/stat``, clock ticks since boot),
  command line and the boot id, so a restarted daemon can tell them from a pid reused by another process;
- when the worker exits, or the supervisor gets SIGTERM (the daemon's timeout or cancel, or the daemon
  itself died: ``PR_SET_PDEATHSIG``), sends SIGTERM to every process left in its tree, waits ``grace_s``,
  SIGKILLs what is still there until nothing is, reaps them all, then writes ``worker.exit`` (the worker's
  return code, negative for a signal) and exits 0.

The worker's stdout is the daemon's pipe, inherited unchanged.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import signal
import sys
import time
from typing import Any

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
_KILL_ROUNDS = 200


class CappedLog:
    """An append-only log of at most ``cap_bytes``: two halves, ``path`` (newest) and ``path.1``."""

    def __init__(self, path: str, cap_bytes: int) -> None:
        self.path = path
        self.half = max(cap_bytes // 2, 1024)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        self.size = os.fstat(self.fd).st_size
        self.dropped = 0

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating at half the cap; a failing disk drops output, never the run."""
        view = memoryview(data)
        while view:
            room = self.half - self.size
            if room <= 0:
                self._rotate()
                continue
            part = view[:room]
            try:
                written = os.write(self.fd, part)
            except OSError:
                self.dropped += len(view)
                return
            self.size += written
            view = view[written:]

    def _rotate(self) -> None:
        older = self.path + ".1"
        with contextlib.suppress(OSError):
            self.dropped += os.stat(older).st_size
        try:
            os.replace(self.path, older)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError:
            self.size = 0  # keep appending where we are; the cap is kept again at the next rotation
            return
        os.close(self.fd)
        self.fd, self.size = fd, 0
        self.write(
            f"[benchd: worker.log rotated; the previous part is in worker.log.1, "
            f"{self.dropped} older bytes dropped]\n".encode()
        )


def _prctl(option: int, value: int) -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def _stat_fields(pid: int) -> list[bytes] | None:
    """``/proc/PID/stat`` after the command name: [state, ppid, pgrp, session, ...]; None when gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _identity(pid: int, cmdline: list[str]) -> dict[str, object]:
    fields = _stat_fields(pid)
    return {"pid": pid, "start_ticks": int(fields[19]) if fields else None, "cmdline": cmdline}


def _descendants(root: int) -> list[int]:
    """Live (not zombie) processes below ``root``, found through /proc's parent links."""
    children: dict[int, list[int]] = {}
    state: dict[int, bytes] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is None:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
        state[int(entry)] = fields[0]
    found, todo = [], list(children.get(root, ()))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return [p for p in found if state.get(p) not in (b"Z", b"X")]


class Supervisor:
    """One worker and everything it starts (see the module docstring)."""

    def __init__(self, config: dict[str, Any], cmd: list[str]) -> None:
        self.config = config
        self.cmd = cmd
        self.me = os.getpid()
        self.stop_requested = False
        self.worker_pid = 0
        self.status: int | None = None
        self.killed = 0
        self.log = CappedLog(str(config["log"]), int(config["log_cap_bytes"]))
        self.wake_r, wake_w = os.pipe()
        for fd in (self.wake_r, wake_w):
            os.set_blocking(fd, False)
        signal.set_wakeup_fd(wake_w)
        for sig in _STOP_SIGNALS:
            signal.signal(sig, self._on_stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # only to wake select() through the wakeup fd
        self.err_r = -1

    def _on_stop(self, *_: object) -> None:
        self.stop_requested = True

    def start(self) -> None:
        """Fork and exec the worker with its stderr on a pipe to us."""
        self.err_r, err_w = os.pipe()
        memory = self.config.get("memory_limit_bytes")
        pid = os.fork()
        if pid == 0:  # the worker, until exec
            try:
                os.setpgid(0, 0)
                os.dup2(err_w, 2)  # every other descriptor of ours is close-on-exec
                signal.set_wakeup_fd(-1)
                for sig in (*_STOP_SIGNALS, signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
                    signal.signal(sig, signal.SIG_DFL)
                if memory:
                    resource.setrlimit(resource.RLIMIT_DATA, (int(memory), int(memory)))
                # no core files: a crashing model would write its whole memory into the daemon's folder
                resource.setrlimit(resource.RLIMIT_CORE, (0, resource.getrlimit(resource.RLIMIT_CORE)[1]))
                _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                if os.getppid() != self.me:
                    os._exit(1)
                os.execv(self.cmd[0], self.cmd)
            except BaseException as e:  # noqa: BLE001 - report and leave; never return into our code
                with contextlib.suppress(OSError):
                    os.write(2, f"benchd supervisor: cannot start the worker: {e}\n".encode())
                os._exit(127)
        os.close(err_w)
        os.set_blocking(self.err_r, False)
        self.worker_pid = pid
        self._write_json(
            str(self.config["pid_file"]),
            {
                "boot_id": _boot_id(),
                "supervisor": _identity(self.me, _cmdline(self.me)),
                "worker": _identity(pid, self.cmd),
            },
        )

    def run(self) -> int:
        """Supervise until the worker exits or we are told to stop; end the tree; return our exit code."""
        self.start()
        while self.status is None and not self.stop_requested:
            self._pump(1.0)
            self._reap()
        self._end_tree(float(self.config.get("grace_s", 3.0)))
        self._drain_stderr()
        self._write_json(
            str(self.config["exit_file"]),
            {
                "returncode": self.status,
                "stopped": self.stop_requested,
                "leftover_processes_killed": self.killed,
                "max_rss_kib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
                "log_bytes_dropped": self.log.dropped,
            },
        )
        return 0

    def _pump(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for stderr output or a signal; copy what stderr has into the log."""
        fds = [self.wake_r] + ([self.err_r] if self.err_r >= 0 else [])
        try:
            ready, _, _ = select.select(fds, [], [], timeout_s)
        except InterruptedError:
            return
        if self.wake_r in ready:
            with contextlib.suppress(OSError):
                os.read(self.wake_r, 4096)
        if self.err_r in ready:
            self._read_stderr()

    def _read_stderr(self) -> bool:
        """Copy what the stderr pipe holds now; False once it reached EOF."""
        for _ in range(64):  # at most 4 MiB per call, so signals are still seen
            try:
                data = os.read(self.err_r, 65536)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if not data:
                os.close(self.err_r)
                self.err_r = -1
                return False
            self.log.write(data)
        return True

    def _drain_stderr(self, timeout_s: float = 2.0) -> None:
        """Copy the rest of stderr: every writer is gone, so EOF follows (a survivor costs ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self.err_r >= 0 and self._read_stderr() and time.monotonic() < deadline:
            self._pump(0.05)
        if self.err_r >= 0:
            os.close(self.err_r)
            self.err_r = -1

    def _reap(self) -> None:
        """Collect every exited child (all of them are ours: the worker and re-parented orphans)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            except InterruptedError:
                continue
            if pid == 0:
                return
            if pid == self.worker_pid:
                self.status = os.waitstatus_to_exitcode(status)

    def _signal(self, pids: list[int], sig: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _end_tree(self, grace_s: float) -> None:
        """SIGTERM whatever is left below us, wait ``grace_s``, then SIGKILL until nothing is left."""
        left = _descendants(self.me)
        if not left:
            self._reap()
            return
        if self.status is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.worker_pid, signal.SIGTERM)
        self._signal(left, signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            self._pump(0.05)
            self._reap()
            if not _descendants(self.me):
                return
        for _ in range(_KILL_ROUNDS):
            left = _descendants(self.me)
            if not left:
                break
            self.killed += len(left)
            self._signal(left, signal.SIGKILL)
            time.sleep(0.01)
            if self.err_r >= 0:
                self._read_stderr()
            self._reap()
        self._reap()

    @staticmethod
    def _write_json(path: str, doc: dict[str, object]) -> None:
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(doc, f)
            os.replace(tmp, path)
        except OSError as e:
            sys.stderr.write(f"benchd supervisor: cannot write {path}: {e}\n")


def _cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode("utf-8", "replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def main(argv: list[str]) -> int:
    """``supervise.py CONFIG_JSON CMD...``.

    CONFIG_JSON holds ``log``, ``log_cap_bytes``, ``memory_limit_bytes`` (or null), ``grace_s``,
    ``pid_file``, ``exit_file`` and ``parent_pid`` (the daemon's pid, to notice it died before we
    asked for SIGTERM on its death).
    """
    if len(argv) < 3:
        sys.stderr.write("usage: supervise.py CONFIG_JSON CMD...\n")
        return 2
    config = json.loads(argv[1])
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)  # the daemon died: end the tree, as for a timeout
    if os.getppid() != config.get("parent_pid", os.getppid()):
        return 1  # the daemon died before that was set up: start nothing
    return Supervisor(config, argv[2:]).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
