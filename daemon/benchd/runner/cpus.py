"""CPU sets: the benchmark worker on its own CPUs, benchd's own threads (sampler, HTTP) off them.

A sampler thread or an HTTP request handled on the core a timed query runs on puts its work into that
query's latency, more often into the tail. With ``benchmark.cpu_set`` the worker pins itself (every thread,
torch's pool included, since it is created after the pin) to that set, and the parent process pins its own
threads to the other CPUs. ``auto`` pins only when the worker's thread count is set and leaves at least one
CPU for benchd; ``none`` never pins. No torch here: parents use this module too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

logger = logging.getLogger(__name__)

CPUSet = tuple[int, ...]

#: The CPUs this process could use before :func:`pin_process` first narrowed them (None: never pinned).
_before_pinning: CPUSet | None = None


def available_cpus() -> CPUSet:
    """The CPUs this process may run on, sorted: as they were before benchd pinned it, if it did.

    The daemon pins its own threads off the worker's CPUs; the worker's CPUs are still chosen from the set
    the process was started with, or every later comparison would find only the daemon's own CPUs.
    """
    return _before_pinning if _before_pinning is not None else tuple(sorted(os.sched_getaffinity(0)))


def parse_cpu_list(text: str) -> CPUSet:
    """Parse a Linux CPU list such as ``"2-3,6"``.

    Raises:
        ValueError: not a CPU list.
    """
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"not a CPU list: {text!r} (expected e.g. 2-3,6)")
        first, last = int(low), int(high or low)
        if last < first:
            raise ValueError(f"not a CPU list: {text!r} ({part} runs backwards)")
        cpus.update(range(first, last + 1))
    if not cpus:
        raise ValueError(f"not a CPU list: {text!r}")
    return tuple(sorted(cpus))


def worker_threads(setting: int | str | None, available: CPUSet | None = None) -> int | None:
    """The worker's torch intra-op thread count for ``benchmark.threads``.

    ``auto``: every CPU this process may use but one (at least one), so the host's other work (benchd's
    sampler and HTTP threads, a Prometheus scraping it) has a CPU of its own instead of preempting a timed
    query; a count as given; None: torch's default (every CPU).
    """
    if setting == "auto":
        available = available if available is not None else available_cpus()
        return max(1, len(available) - 1)
    if isinstance(setting, str):
        raise ValueError(f"threads must be a count, auto or none, got {setting!r}")
    return setting


def worker_cpus(
    setting: str | Sequence[int] | None, threads: int | None, available: CPUSet | None = None
) -> CPUSet | None:
    """The CPUs the worker is pinned to, or None for no pinning.

    Args:
        setting: ``auto``, ``none`` (or None), or explicit CPUs.
        threads: the worker's torch thread count (None: torch's default, every CPU).
        available: the CPUs to choose from (default: this process's).
    """
    if setting is None or setting == "none":
        return None
    available = available if available is not None else available_cpus()
    if setting == "auto":
        if not threads or len(available) <= threads:
            return None
        return available[-threads:]
    if isinstance(setting, str):
        raise ValueError(f"cpu_set must be auto, none or a list of CPUs, got {setting!r}")
    wanted = tuple(sorted(set(setting)))
    missing = [c for c in wanted if c not in available]
    if missing:
        raise ValueError(
            f"cpu_set names CPUs {missing} this process cannot use (it may use {list(available)})"
        )
    return wanted


def configured_cpus(setting: str | Sequence[int] | None, threads: int | str | None) -> CPUSet | None:
    """:func:`worker_cpus` of ``benchmark.cpu_set`` and ``benchmark.threads`` (:func:`worker_threads`) here.

    Raises:
        ConfigError: ``cpu_set`` names CPUs this process may not use (the field is named).
    """
    from benchd.errors import ConfigError

    try:
        return worker_cpus(setting, worker_threads(threads))
    except ValueError as e:
        raise ConfigError("benchmark.cpu_set", str(e)) from e


def others(cpus: Iterable[int] | None, available: CPUSet | None = None) -> CPUSet | None:
    """The CPUs outside ``cpus`` (where benchd's own threads go), or None when none would be left."""
    if cpus is None:
        return None
    available = available if available is not None else available_cpus()
    rest = tuple(c for c in available if c not in set(cpus))
    return rest or None


def pin_process(cpus: Iterable[int] | None) -> bool:
    """Pin every thread of this process (and the threads it starts later) to ``cpus``; True when done.

    ``sched_setaffinity`` acts on one thread, so each thread in ``/proc/self/task`` is pinned; threads
    created afterwards inherit their creator's set. A failure is logged and leaves the process unpinned.
    """
    global _before_pinning
    if cpus is None:
        return False
    if _before_pinning is None:
        _before_pinning = tuple(sorted(os.sched_getaffinity(0)))
    wanted = set(cpus)
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tids = [0]
    try:
        for tid in tids:
            try:
                os.sched_setaffinity(tid, wanted)
            except ProcessLookupError:  # the thread ended meanwhile
                continue
    except OSError as e:
        logger.warning("cannot pin to CPUs %s: %s", sorted(wanted), e)
        return False
    return True
