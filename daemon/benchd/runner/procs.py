"""Telling our own worker processes from strangers, for a restarted daemon (Linux ``/proc``; no torch).

A pid alone names a process only while it lives: once it exits, the number is handed to the next process
that starts. So ``worker.pid`` (written by :mod:`benchd.runner.supervise`) holds, for the supervisor and
the worker, the pid, the start time (clock ticks since boot, field 22 of ``/proc/PID/stat``) and the
command line, plus the boot id. :func:`kill_stale_worker` kills a process group only when its leader still
matches all of them, so a reused pid is never killed.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

PID_FILE = "worker.pid"
_PROC = Path("/proc")


@dataclass(frozen=True)
class ProcessIdentity:
    """Who a process is: pid, start time (clock ticks after boot) and command line."""

    pid: int
    start_ticks: int | None
    cmdline: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: Any) -> ProcessIdentity | None:
        """Parse one entry of ``worker.pid``; None when it is not one."""
        if not isinstance(doc, dict) or not isinstance(doc.get("pid"), int):
            return None
        ticks = doc.get("start_ticks")
        return cls(doc["pid"], ticks if isinstance(ticks, int) else None, tuple(doc.get("cmdline") or ()))


def boot_id(proc: Path = _PROC) -> str:
    """This boot's id (``/proc/sys/kernel/random/boot_id``); "" when unknown."""
    try:
        return (proc / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def stat_fields(pid: int, proc: Path = _PROC) -> list[str] | None:
    """``/proc/PID/stat`` after the command name (``[state, ppid, pgrp, session, ...]``); None when gone."""
    try:
        return (proc / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def identity_of(pid: int, proc: Path = _PROC) -> ProcessIdentity | None:
    """The identity of the live process ``pid`` now, or None when there is none (or only a zombie)."""
    fields = stat_fields(pid, proc)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    try:
        raw = (proc / str(pid) / "cmdline").read_bytes()
    except OSError:
        return None
    cmdline = tuple(a.decode("utf-8", "replace") for a in raw.split(b"\0") if a)
    return ProcessIdentity(pid, int(fields[19]), cmdline)


def is_same_process(recorded: ProcessIdentity, proc: Path = _PROC) -> bool:
    """True when the process ``recorded`` names is alive and still the same one (start time, command)."""
    now = identity_of(recorded.pid, proc)
    return (
        now is not None
        and recorded.start_ticks is not None
        and now.start_ticks == recorded.start_ticks
        and now.cmdline == recorded.cmdline
    )


def group_members(pgid: int, proc: Path = _PROC) -> list[int]:
    """Live processes whose process group is ``pgid``."""
    members = []
    for entry in proc.iterdir():
        if entry.name.isdigit():
            fields = stat_fields(int(entry.name), proc)
            if fields is not None and fields[0] not in ("Z", "X") and fields[2] == str(pgid):
                members.append(int(entry.name))
    return members


def kill_stale_worker(run_dir: Path, proc: Path = _PROC) -> list[int]:
    """SIGKILL what is left of a run's worker after the daemon that started it died; return what was killed.

    For each of the supervisor and the worker recorded in ``run_dir/worker.pid``, its process group is
    killed only when (a) the group leader is alive and matches the recorded start time, command line and
    boot, or (b) the leader is gone but members of its group remain: a pid still used as a group id is
    not given to a new process, so those members are the worker's own. A pid file from another boot, an
    old plain-number pid file, or a leader that no longer matches (its pid was reused) kills nothing.
    """
    path = run_dir / PID_FILE
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if not isinstance(doc, dict):
        logger.warning("%s holds no process identities (an older benchd wrote it); killing nothing", path)
        return []
    if doc.get("boot_id") != boot_id(proc):
        return []
    killed: list[int] = []
    for role in ("supervisor", "worker"):
        recorded = ProcessIdentity.from_json(doc.get(role))
        if recorded is None:
            continue
        leader_alive = identity_of(recorded.pid, proc) is not None
        if leader_alive and not is_same_process(recorded, proc):
            logger.info(
                "stale %s pid %d of %s now belongs to another process; leaving it alone",
                role,
                recorded.pid,
                run_dir,
            )
            continue
        members = group_members(recorded.pid, proc)
        if not members:
            continue
        try:
            os.killpg(recorded.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            continue
        killed.extend(members)
        logger.warning(
            "killed the stale %s process group %d of %s (%d processes)",
            role,
            recorded.pid,
            run_dir,
            len(members),
        )
    if killed:
        time.sleep(0.1)
    return killed


def kill_stale_workers(run_dir: Path, proc: Path = _PROC) -> list[int]:
    """:func:`kill_stale_worker` for a run's own worker and every worker under it (a comparison's units)."""
    folders = sorted({path.parent for path in run_dir.rglob(PID_FILE)})
    return [pid for folder in folders for pid in kill_stale_worker(folder, proc)]
