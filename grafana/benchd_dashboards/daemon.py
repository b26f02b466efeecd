"""The Daemon dashboard: registry polls, the run queue, run outcomes and the cost of a scrape."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from benchd_dashboards.common import dashboard, query, table, timeseries, variable

UID = "benchd-daemon"

INSTANCE = 'instance=~"$instance"'
_BENCHD_TARGETS = f"max by (instance, job) (benchd_build_info{{{INSTANCE}}})"


def build() -> dm.Dashboard:
    """Build the Daemon dashboard."""
    instance = variable("instance", "Instance", "label_values(benchd_build_info, instance)").multi(True)
    return (
        dashboard(UID, "benchd / Daemon", "benchd itself: registry polls, queue, run outcomes, scrape cost.")
        .with_variable(instance.include_all(True).all_value(".*"))
        .with_row(db.Row("Registries and queue"))
        .with_panel(timeseries("Registry polls",
                               "ops",
                               query(f"sum by (instance, registry, outcome) "
                                     f"(rate(benchd_registry_polls_total{{{INSTANCE}}}[$__rate_interval]))",
                                     "{{instance}} {{registry}} {{outcome}}"),
                               width=8))
        .with_panel(timeseries("Time since the last successful poll",
                               "s",
                               query(f"time() - benchd_registry_last_success_timestamp_seconds{{{INSTANCE}}}",
                                     "{{instance}} {{registry}}"),
                               width=8))
        .with_panel(timeseries("Queued runs",
                               "none",
                               query(f"benchd_queue_runs{{{INSTANCE}}}", "{{instance}}"),
                               width=8))
        .with_row(db.Row("Runs"))
        .with_panel(timeseries("Run outcomes",
                               "none",
                               query(f"sum by (outcome) (increase(benchd_runs_total{{{INSTANCE}}}"
                                     "[$__rate_interval]))", "{{outcome}}")))
        .with_panel(timeseries("Benchmark power (energy counter rate)",
                               "watt",
                               query(f"sum by (instance, device) "
                                     f"(rate(benchd_energy_joules_total{{{INSTANCE}}}[$__rate_interval]))",
                                     "{{instance}} {{device}}"),
                               description="Energy of measured windows per second: average power spent "
                                           "benchmarking."))
        .with_row(db.Row("Scrape cost"))
        .with_panel(timeseries("Prometheus scrape duration",
                               "s",
                               query(f"scrape_duration_seconds * on (instance, job) {_BENCHD_TARGETS}",
                                     "{{instance}}"),
                               width=8))
        .with_panel(timeseries("Samples per scrape",
                               "short",
                               query(f"scrape_samples_scraped * on (instance, job) {_BENCHD_TARGETS}",
                                     "{{instance}}"),
                               width=8))
        .with_panel(timeseries("Collector duration",
                               "s",
                               query(f"benchd_scrape_collector_duration_seconds{{{INSTANCE}}}",
                                     "{{instance}} {{collector}}"),
                               description="Live collectors: per scrape; results: its last render (run end).",
                               width=8))
        .with_panel(timeseries("Collector success",
                               "bool",
                               query(f"min by (collector) (benchd_scrape_collector_success{{{INSTANCE}}})",
                                     "{{collector}}")))
        .with_panel(table("benchd builds",
                          query(f"max by (instance, version, python) (benchd_build_info{{{INSTANCE}}})",
                                instant=True, table=True),
                          width=12))
        .with_panel(table("Devices",
                          query(f"max by (instance, device, name, uuid, driver, hardware_class) "
                                f"(benchd_device_info{{{INSTANCE}}})", instant=True, table=True)))
        .build()
    )  # fmt: skip
