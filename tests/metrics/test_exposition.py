"""The exposition: byte-equal to prometheus_client, golden file, parsers, promtool check metrics."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from metrics_fixtures import small_snapshot
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text
from tests.system_tools import require_tool

from benchd.metrics import names
from benchd.metrics.cache import MetricsExporter, ResultsCache
from benchd.metrics.collectors import ResultsCollector
from benchd.metrics.health import (
    BuildInfoCollector,
    DaemonCollector,
    DaemonStats,
    RunStatesCollector,
    ScrapeStats,
    ScrapeStatsCollector,
)
from benchd.metrics.render import RenderError, render_both, render_openmetrics, render_text
from benchd.records import RUN_STATES

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "metrics.prom"


def _golden_registry() -> CollectorRegistry:
    stats = DaemonStats()
    stats.record_poll("local", "ok", now_unix_s=1_700_020_000.0)
    stats.record_poll("prod", "error", now_unix_s=1_700_020_001.0)
    registry = CollectorRegistry()
    snapshot = small_snapshot()
    registry.register(ResultsCollector(lambda: snapshot))
    registry.register(DaemonCollector(stats, lambda: 2))
    states = dict.fromkeys(RUN_STATES, 0) | {"queued": 2, "running": 1, "ok": 7, "failed": 1}
    registry.register(RunStatesCollector(lambda: states))
    registry.register(BuildInfoCollector("0.1.0", "3.11.7"))
    scrape_stats = ScrapeStats()  # fixed figures: a live scrape's durations vary
    scrape_stats.record("results", True, 0.0042)
    scrape_stats.record("daemon", False, 0.0003)
    registry.register(ScrapeStatsCollector(scrape_stats))
    return registry


def test_golden_exposition() -> None:
    """The whole contract as Prometheus sees it; regenerate with BENCHD_REGENERATE_GOLDEN=1 and review.

    Regenerating writes the file and fails the test, so a run with the variable set never passes: the
    new file is reviewed (``git diff``) and the test run again without it.
    """
    text = generate_latest(_golden_registry())
    if os.environ.get("BENCHD_REGENERATE_GOLDEN") == "1":
        GOLDEN.write_bytes(text)
        pytest.fail(
            f"regenerated {GOLDEN}: review it with git diff, then run again without BENCHD_REGENERATE_GOLDEN"
        )
    assert text == GOLDEN.read_bytes()


def test_golden_file_holds_the_whole_contract() -> None:
    """The golden file itself is checked, so a regenerated file that lost a family or a label is caught."""
    families = {f.name: f for f in parse_text(GOLDEN.read_text())}
    assert set(families) == {
        s.name[: -len("_total")] if s.kind == "counter" else s.name for s in names.ALL_METRICS
    }
    for spec in names.ALL_METRICS:
        family = families[spec.name[: -len("_total")] if spec.kind == "counter" else spec.name]
        assert family.samples, f"{spec.name} has no sample in {GOLDEN.name}"
        wanted = set(spec.labels)
        for sample in family.samples:
            assert wanted <= set(sample.labels) | {"le"}, (spec.name, sample)
    promtool = require_tool("promtool")
    result = subprocess.run(
        [promtool, "check", "metrics"],
        input=GOLDEN.read_bytes(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def test_renderer_is_byte_equal_to_prometheus_client() -> None:
    registry = _golden_registry()
    families = list(registry.collect())
    assert render_text(families) == generate_latest(registry)
    assert render_openmetrics(families) == generate_openmetrics(registry)
    text, openmetrics = render_both(families)
    assert text == generate_latest(registry)
    assert openmetrics + b"# EOF\n" == generate_openmetrics(registry)


def test_label_values_and_help_are_escaped_like_prometheus_client() -> None:
    family = GaugeMetricFamily("benchd_odd", 'Help with "quotes", a \\ and a\nnewline.', labels=["model"])
    family.add_metric(['we"ird\\name\nwith newline'], 1.5)
    family.add_metric(["plain"], float("nan"))
    family.add_metric(["inf"], float("inf"))

    class One:
        def collect(self):
            return [family]

    registry = CollectorRegistry()
    registry.register(One())
    assert render_text([family]) == generate_latest(registry)
    assert render_openmetrics([family]) == generate_openmetrics(registry)
    parsed = list(parse_openmetrics(render_openmetrics([family]).decode()))
    assert parsed[0].samples[0].labels["model"] == 'we"ird\\name\nwith newline'


def test_renderer_refuses_what_it_cannot_write() -> None:
    family = GaugeMetricFamily("benchd_x", "x.", labels=["a"])
    family.add_sample("benchd_x_created", {"a": "b"}, 1.0)
    with pytest.raises(RenderError):
        render_text([family])


def test_exposition_parses_in_both_formats(live_registry) -> None:
    registry, stats, _ = live_registry()
    stats.record_poll("local", "ok")
    cache = ResultsCache()
    cache.update(small_snapshot())
    exporter = MetricsExporter(cache, registry)
    text_families = {f.name: f for f in parse_text(exporter.scrape().decode())}
    assert text_families["benchd_query_latency_seconds"].type == "histogram"
    om = exporter.scrape(openmetrics=True).decode()
    om_families = {f.name: f for f in parse_openmetrics(om)}  # strict: fails on a misplaced # EOF
    assert om.count("# EOF") == 1 and om.endswith("# EOF\n")
    assert om_families["benchd_runs"].type == "counter"
    assert om_families["benchd_model_version"].type == "info"
    assert om_families["benchd_registry_polls"].type == "counter"
    runtime = {n for n in om_families if n.startswith(("process_", "python_"))}  # prometheus_client's
    assert set(om_families) - runtime == {spec.family for spec in names.ALL_METRICS}
    text_names = {s.name[: -len("_total")] if s.kind == "counter" else s.name for s in names.ALL_METRICS}
    assert {n for n in text_families if not n.startswith(("process_", "python_"))} == text_names


def test_the_daemon_process_exports_its_own_process_and_python_metrics(live_registry) -> None:
    import prometheus_client

    global_before = set(prometheus_client.REGISTRY._collector_to_names)
    registry, _, _ = live_registry()
    for name in ("process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                 "process_start_time_seconds"):  # fmt: skip
        assert registry.get_sample_value(name) is not None and registry.get_sample_value(name) >= 0, name
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    info = next(f for f in registry.collect() if f.name == "python_info")
    assert info.samples[0].labels["implementation"]
    for collector in ("process", "python", "gc"):
        assert registry.get_sample_value("benchd_scrape_collector_success", {"collector": collector}) == 1.0
    assert set(prometheus_client.REGISTRY._collector_to_names) == global_before  # never the global one


def test_promtool_check_metrics_passes_on_a_real_exposition(live_registry) -> None:
    promtool = require_tool("promtool")
    registry, stats, _ = live_registry()
    stats.record_poll("local", "ok")
    cache = ResultsCache()
    cache.update(small_snapshot())
    body = MetricsExporter(cache, registry).scrape()
    result = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, timeout=60, check=False
    )
    assert result.returncode == 0, (result.stdout + result.stderr).decode()
    assert result.stdout.strip() == b"" and result.stderr.strip() == b""


def test_promtool_check_metrics_catches_a_bad_name() -> None:
    """The lint must be able to fail: a counter without _total in the text format."""
    promtool = require_tool("promtool")
    bad = b"# HELP benchd_runs Runs.\n# TYPE benchd_runs counter\nbenchd_runs 1\n"
    result = subprocess.run(
        [promtool, "check", "metrics"], input=bad, capture_output=True, timeout=60, check=False
    )
    assert result.returncode != 0
