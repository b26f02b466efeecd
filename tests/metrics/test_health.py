"""Daemon health collectors: poll counters, instrumentation, scrape stats."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily
from tests.threads import run_threads

from benchd.metrics.health import (
    BuildInfoCollector,
    DaemonCollector,
    DaemonStats,
    InstrumentedCollector,
    ScrapeStats,
    ScrapeStatsCollector,
)


def test_polls_are_counted_from_zero_per_outcome_and_last_success_kept() -> None:
    stats = DaemonStats()
    stats.record_poll("prod", "error", now_unix_s=100.0)
    registry = CollectorRegistry()
    registry.register(DaemonCollector(stats, lambda: 0))
    get = registry.get_sample_value
    assert get("benchd_registry_polls_total", {"registry": "prod", "outcome": "ok"}) == 0
    assert get("benchd_registry_polls_total", {"registry": "prod", "outcome": "error"}) == 1
    assert get("benchd_registry_last_success_timestamp_seconds", {"registry": "prod"}) is None
    stats.record_poll("prod", "ok", now_unix_s=160.0)
    assert get("benchd_registry_last_success_timestamp_seconds", {"registry": "prod"}) == 160.0


def test_record_poll_is_thread_safe() -> None:
    stats = DaemonStats()

    def poll_many() -> None:
        for _ in range(2000):
            stats.record_poll("local", "ok", now_unix_s=1.0)

    run_threads([poll_many] * 8, timeout_s=60)
    assert stats.polls()[("local", "ok")] == 16000


def test_queue_depth_is_read_on_every_collect() -> None:
    depth = iter([3, 7])
    registry = CollectorRegistry()
    registry.register(DaemonCollector(DaemonStats(), lambda: next(depth)))
    assert registry.get_sample_value("benchd_queue_runs") == 3
    assert registry.get_sample_value("benchd_queue_runs") == 7


def test_build_info() -> None:
    registry = CollectorRegistry()
    registry.register(BuildInfoCollector("1.2.3", "3.11.7"))
    assert registry.get_sample_value("benchd_build_info", {"version": "1.2.3", "python": "3.11.7"}) == 1


class _HalfBroken:
    """Yields one family, then fails (like a device that disappears mid-scrape)."""

    def describe(self):
        return [GaugeMetricFamily("benchd_half", "Half.")]

    def collect(self):
        family = GaugeMetricFamily("benchd_half", "Half.")
        family.add_metric([], 1.0)
        yield family
        raise OSError("device vanished")


def test_a_failing_collector_yields_what_it_has_and_is_reported() -> None:
    scrape_stats = ScrapeStats()
    registry = CollectorRegistry()
    registry.register(InstrumentedCollector("half", _HalfBroken(), scrape_stats))
    registry.register(ScrapeStatsCollector(scrape_stats))
    assert registry.get_sample_value("benchd_half") == 1.0  # the scrape itself does not fail
    assert registry.get_sample_value("benchd_scrape_collector_success", {"collector": "half"}) == 0.0
    assert registry.get_sample_value("benchd_scrape_collector_duration_seconds", {"collector": "half"}) >= 0


def test_instrumented_collector_registers_through_describe_without_collecting() -> None:
    scrape_stats = ScrapeStats()
    CollectorRegistry().register(InstrumentedCollector("half", _HalfBroken(), scrape_stats))
    assert scrape_stats.snapshot() == {}
