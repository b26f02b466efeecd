"""ResultsCache and MetricsExporter: cached bytes, updates, failures, formats, gzip."""

from __future__ import annotations

import dataclasses
import gzip

from metrics_fixtures import result_series, small_snapshot
from prometheus_client import CollectorRegistry, generate_latest

from benchd.metrics.cache import MetricsExporter, ResultsCache
from benchd.metrics.health import DaemonCollector, DaemonStats, ScrapeStats
from benchd.metrics.snapshot import ResultsSnapshot


def test_cached_bytes_are_unchanged_between_scrapes_until_update(live_registry) -> None:
    registry, _, _ = live_registry()
    cache = ResultsCache()
    cache.update(small_snapshot())
    first = cache.body()
    exporter = MetricsExporter(cache, registry)
    exporter.scrape()
    exporter.scrape(openmetrics=True)
    assert cache.body() is first  # the very same object: nothing re-rendered by scrapes

    changed = dataclasses.replace(
        small_snapshot(), results=(*small_snapshot().results, result_series("gpt2", "1", seed=3))
    )
    cache.update(changed)
    assert cache.body() is not first
    assert b'model="gpt2"' in cache.body() and b'model="gpt2"' not in first


def test_cache_matches_generate_latest_over_its_collector() -> None:
    cache = ResultsCache(latest_versions=2)
    cache.update(small_snapshot())
    registry = CollectorRegistry()
    registry.register(cache.collector)
    assert cache.body() == generate_latest(registry)
    assert b'version="2"' not in cache.body()  # only the latest 2 of resnet50's versions
    assert cache.samples == cache.body().count(b"\n") - 2 * cache.body().count(b"# TYPE")


def test_a_failing_update_keeps_serving_the_previous_bytes() -> None:
    scrape_stats = ScrapeStats()
    cache = ResultsCache(scrape_stats=scrape_stats)
    assert cache.update(small_snapshot())
    good = cache.body()
    assert scrape_stats.snapshot()["results"][0] is True
    broken = ResultsSnapshot(results=(result_series("m", "1", latency_percentiles_s=None),))  # type: ignore[arg-type]
    assert cache.update(broken) is False
    assert cache.body() is good
    assert cache.snapshot == small_snapshot()
    assert scrape_stats.snapshot()["results"][0] is False


def test_openmetrics_has_one_eof_at_the_very_end(live_registry) -> None:
    registry, _, _ = live_registry()
    cache = ResultsCache()
    cache.update(small_snapshot())
    body = MetricsExporter(cache, registry).scrape(openmetrics=True)
    assert body.count(b"# EOF") == 1 and body.endswith(b"# EOF\n")
    assert b"# TYPE benchd_runs counter" in body and b"# TYPE benchd_queue_runs gauge" in body


def test_scrape_before_any_snapshot_serves_only_the_live_part(live_registry) -> None:
    registry, _, _ = live_registry()
    body = MetricsExporter(ResultsCache(), registry).scrape(openmetrics=True)
    assert body.startswith(b"# HELP benchd_registry_polls") and body.endswith(b"# EOF\n")


def test_gzip_body_is_two_members_that_decompress_to_the_plain_body() -> None:
    registry = CollectorRegistry()  # deterministic live part (no scrape durations)
    registry.register(DaemonCollector(DaemonStats(), lambda: 3))
    cache = ResultsCache()
    cache.update(small_snapshot())
    exporter = MetricsExporter(cache, registry)
    for openmetrics in (False, True):
        plain = exporter.scrape(openmetrics=openmetrics)
        compressed = exporter.scrape(openmetrics=openmetrics, gzipped=True)
        assert gzip.decompress(compressed) == plain
        assert cache.body(openmetrics, gzipped=True) is cache.body(openmetrics, gzipped=True)


def test_live_part_changes_per_scrape_and_records_collector_stats(live_registry) -> None:
    depth = {"n": 1}
    registry, _, scrape_stats = live_registry(queue_depth=lambda: depth["n"])
    cache = ResultsCache(scrape_stats=scrape_stats)
    cache.update(small_snapshot())
    exporter = MetricsExporter(cache, registry)
    assert b"benchd_queue_runs 1.0" in exporter.scrape()
    depth["n"] = 5
    assert b"benchd_queue_runs 5.0" in exporter.scrape()
    body = exporter.scrape().decode()
    for collector in ("results", "daemon", "build"):
        assert f'benchd_scrape_collector_success{{collector="{collector}"}} 1.0' in body
        assert f'benchd_scrape_collector_duration_seconds{{collector="{collector}"}}' in body
