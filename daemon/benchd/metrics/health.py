"""Daemon health metrics, collected live on every scrape.

``DaemonStats`` is the thread-safe place the watchers and the scheduler report to; ``DaemonCollector``
and ``BuildInfoCollector`` turn it into families. Every live collector runs inside an
``InstrumentedCollector``, which catches its errors (a failing collector yields what it has, never fails
the scrape) and records its success and duration into ``ScrapeStats``; ``ScrapeStatsCollector`` exports
them as ``benchd_scrape_collector_{success,duration_seconds}{collector}`` (node_exporter's pattern).
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from benchd.metrics import names
from benchd.metrics.collectors import family, typed_family

logger = logging.getLogger(__name__)


class DaemonStats:
    """Thread-safe counters of daemon events (registry polls), read by :class:`DaemonCollector`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._polls: dict[tuple[str, str], int] = {}
        self._last_success_unix_s: dict[str, float] = {}

    def record_poll(self, registry: str, outcome: str, now_unix_s: float | None = None) -> None:
        """Count one poll of ``registry``; ``outcome`` is ``ok`` or ``error``.

        Args:
            registry: the registry's configured name.
            outcome: ``ok`` or ``error`` (a bounded set: never an error message).
            now_unix_s: wall-clock time of the poll (default: now); recorded as the last success if ok.
        """
        now = time.time() if now_unix_s is None else now_unix_s
        with self._lock:
            # Both outcomes exist from the first poll on, so the first error is an increase from 0.
            for known in names.POLL_OUTCOMES:
                self._polls.setdefault((registry, known), 0)
            self._polls[(registry, outcome)] = self._polls.get((registry, outcome), 0) + 1
            if outcome == "ok":
                self._last_success_unix_s[registry] = now

    def polls(self) -> dict[tuple[str, str], int]:
        """Return a copy of the poll counts by (registry, outcome)."""
        with self._lock:
            return dict(self._polls)

    def last_success_unix_s(self) -> dict[str, float]:
        """Return a copy of the last successful poll time by registry (registries never ok are absent)."""
        with self._lock:
            return dict(self._last_success_unix_s)


class DaemonCollector:
    """Registry polls, last successful poll and queue depth.

    Args:
        stats: where the watchers record their polls.
        queue_depth: returns the number of runs waiting in the queue (called on every scrape).
    """

    def __init__(self, stats: DaemonStats, queue_depth: Callable[[], int]) -> None:
        self._stats = stats
        self._queue_depth = queue_depth

    def describe(self) -> Iterator[Metric]:
        """Yield the families without samples."""
        for spec in (names.REGISTRY_POLLS, names.REGISTRY_LAST_SUCCESS, names.QUEUE_RUNS):
            yield family(spec)

    def collect(self) -> Iterator[Metric]:
        """Yield the current values."""
        polls = typed_family(CounterMetricFamily, names.REGISTRY_POLLS)
        for (registry, outcome), count in sorted(self._stats.polls().items()):
            polls.add_metric([registry, outcome], count)
        yield polls
        last = typed_family(GaugeMetricFamily, names.REGISTRY_LAST_SUCCESS)
        for registry, when in sorted(self._stats.last_success_unix_s().items()):
            last.add_metric([registry], when)
        yield last
        queue = typed_family(GaugeMetricFamily, names.QUEUE_RUNS)
        queue.add_metric([], float(self._queue_depth()))
        yield queue


class RunStatesCollector:
    """``benchd_runs_in_state{state}``: how many runs the store holds in each state.

    Every state is exported, 0 included, so an alert on stuck runs (``running`` that never falls) or
    piling failures has a series from the start.

    Args:
        run_states: returns the count per state (called on every scrape); None exports the family empty.
    """

    def __init__(self, run_states: Callable[[], Mapping[str, int]] | None) -> None:
        self._run_states = run_states

    def describe(self) -> Iterator[Metric]:
        """Yield the family without samples."""
        yield family(names.RUNS_IN_STATE)

    def collect(self) -> Iterator[Metric]:
        """Yield the current counts."""
        runs = typed_family(GaugeMetricFamily, names.RUNS_IN_STATE)
        if self._run_states is not None:
            for state, count in sorted(self._run_states().items()):
                runs.add_metric([state], float(count))
        yield runs


class BuildInfoCollector:
    """``benchd_build_info{version, python} 1``."""

    def __init__(self, version: str, python_version: str | None = None) -> None:
        self._labels = [version, python_version or platform.python_version()]

    def describe(self) -> Iterator[Metric]:
        """Yield the family without samples."""
        yield family(names.BUILD_INFO)

    def collect(self) -> Iterator[Metric]:
        """Yield the build info sample."""
        info = typed_family(InfoMetricFamily, names.BUILD_INFO)
        info.add_metric(self._labels, {})
        yield info


class ScrapeStats:
    """Thread-safe success and duration of each collector's last collection."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats: dict[str, tuple[bool, float]] = {}

    def record(self, collector: str, success: bool, duration_s: float) -> None:
        """Record one collection of ``collector``."""
        with self._lock:
            self._stats[collector] = (success, duration_s)

    def snapshot(self) -> dict[str, tuple[bool, float]]:
        """Return a copy: collector -> (success, duration_s)."""
        with self._lock:
            return dict(self._stats)


class InstrumentedCollector:
    """Run a collector, record its success and duration, and never let it fail the scrape.

    A collector that raises midway yields the families it produced before the error (a partial scrape,
    as client_python's process collector does) and is recorded as failed.
    """

    def __init__(self, name: str, collector: Collector, scrape_stats: ScrapeStats) -> None:
        self.name = name
        self._collector = collector
        self._scrape_stats = scrape_stats

    def describe(self) -> Iterator[Metric]:
        """Delegate to the wrapped collector's ``describe()`` (empty if it has none)."""
        describe = getattr(self._collector, "describe", None)
        return iter(describe()) if describe is not None else iter(())

    def collect(self) -> Iterator[Metric]:
        """Collect the wrapped collector's families, timing it."""
        start = time.perf_counter()
        families: list[Metric] = []
        success = True
        try:
            for metric in self._collector.collect():
                families.append(metric)
        except Exception:
            success = False
            logger.exception("metrics collector %s failed", self.name)
        self._scrape_stats.record(self.name, success, time.perf_counter() - start)
        return iter(families)


class ScrapeStatsCollector:
    """Export :class:`ScrapeStats`; register it after the collectors it reports on."""

    def __init__(self, scrape_stats: ScrapeStats) -> None:
        self._scrape_stats = scrape_stats

    def describe(self) -> Iterator[Metric]:
        """Yield the families without samples."""
        yield family(names.SCRAPE_COLLECTOR_SUCCESS)
        yield family(names.SCRAPE_COLLECTOR_DURATION)

    def collect(self) -> Iterator[Metric]:
        """Yield each collector's last success and duration."""
        stats = sorted(self._scrape_stats.snapshot().items())
        success = typed_family(GaugeMetricFamily, names.SCRAPE_COLLECTOR_SUCCESS)
        duration = typed_family(GaugeMetricFamily, names.SCRAPE_COLLECTOR_DURATION)
        for name, (ok, duration_s) in stats:
            success.add_metric([name], 1.0 if ok else 0.0)
            duration.add_metric([name], duration_s)
        yield success
        yield duration


def runtime_collectors() -> dict[str, Collector]:
    """prometheus_client's process, platform and GC collectors, kept off its global registry.

    ``process_*`` needs /proc (Linux); elsewhere the process collector yields nothing and never fails.
    """
    return {
        "process": ProcessCollector(registry=None),
        "python": PlatformCollector(registry=None),
        # GCCollector must register somewhere: a throwaway registry, never the global one
        "gc": GCCollector(registry=CollectorRegistry(auto_describe=False)),
    }


def register_daemon_collectors(
    registry: CollectorRegistry,
    *,
    daemon_stats: DaemonStats,
    scrape_stats: ScrapeStats,
    queue_depth: Callable[[], int],
    version: str,
    extra: Mapping[str, Collector] | None = None,
    run_states: Callable[[], Mapping[str, int]] | None = None,
    runtime: bool = True,
) -> None:
    """Register the live collectors into ``registry``, each instrumented, scrape stats last.

    Args:
        registry: the daemon's one registry of live collectors (the results part is cached apart).
        daemon_stats: poll counters the watchers update.
        scrape_stats: shared with :class:`benchd.metrics.cache.ResultsCache`, which records its renders.
        queue_depth: returns the run queue's depth.
        version: benchd's version for ``benchd_build_info``.
        extra: more live collectors by name (e.g. ``{"devices": DeviceCollector(...)}``).
        run_states: returns the number of runs in each state (``benchd_runs_in_state``).
        runtime: also the daemon process's own ``process_*`` (CPU, memory, open files) and ``python_*``
            (interpreter, garbage collector) metrics, from prometheus_client's collectors, registered here
            and never on its global registry.
    """
    collectors: dict[str, Collector] = {
        "daemon": DaemonCollector(daemon_stats, queue_depth),
        "runs": RunStatesCollector(run_states),
        "build": BuildInfoCollector(version),
        **(runtime_collectors() if runtime else {}),
        **(extra or {}),
    }
    for name, collector in collectors.items():
        registry.register(InstrumentedCollector(name, collector, scrape_stats))
    registry.register(ScrapeStatsCollector(scrape_stats))
