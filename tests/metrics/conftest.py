"""Fixtures for the exporter tests: deterministic snapshots and a live registry."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from metrics_fixtures import small_snapshot
from prometheus_client import CollectorRegistry

from benchd.metrics.health import DaemonStats, ScrapeStats, register_daemon_collectors
from benchd.metrics.snapshot import ResultsSnapshot


@pytest.fixture
def snapshot() -> ResultsSnapshot:
    return small_snapshot()


Live = tuple[CollectorRegistry, DaemonStats, ScrapeStats]


@pytest.fixture
def live_registry() -> Callable[..., Live]:
    """Factory: a fresh registry with the daemon's live collectors (queue depth 2 unless given)."""

    def make(queue_depth: Callable[[], int] = lambda: 2) -> Live:
        registry = CollectorRegistry()
        stats = DaemonStats()
        scrape_stats = ScrapeStats()
        register_daemon_collectors(
            registry, daemon_stats=stats, scrape_stats=scrape_stats, queue_depth=queue_depth,
            version="0.1.0",
        )
        return registry, stats, scrape_stats

    return make
