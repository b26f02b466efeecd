"""The Daemon dashboard: registry polls, the run queue, run outcomes, the process, the cost of a scrape."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from benchd_dashboards.common import dashboard, query, table, thresholds, timeseries, variable

UID = "benchd-daemon"

INSTANCE = 'instance=~"$instance"'
BENCHD = f'job="benchd", {INSTANCE}'
_BENCHD_TARGETS = f"max by (instance, job) (benchd_build_info{{{INSTANCE}}})"


def build() -> dm.Dashboard:
    """Build the Daemon dashboard."""
    instance = variable("instance", "Instance", "label_values(benchd_build_info, instance)").multi(True)
    return (
        dashboard(UID, "benchd / Daemon", "benchd itself: registry polls, queue, run outcomes, the daemon "
                  "process, scrape cost.")
        .with_variable(instance.include_all(True).all_value(".*").description("benchd daemons to show."))
        .with_row(db.Row("Registries and queue"))
        .with_panel(timeseries("Registry polls",
                               "ops",
                               query(f"sum by (instance, registry, outcome) "
                                     f"(rate(benchd_registry_polls_total{{{INSTANCE}}}[$__rate_interval]))",
                                     "{{instance}} {{registry}} {{outcome}}"),
                               description="Polls per second by outcome; errors back off up to 5 minutes.",
                               width=8))
        .with_panel(timeseries("Time since the last successful poll",
                               "s",
                               query(f"time() - benchd_registry_last_success_timestamp_seconds{{{INSTANCE}}}",
                                     "{{instance}} {{registry}}"),
                               description="BenchdRegistryUnreachable fires above 30 minutes (the red line).",
                               width=8, bounds=thresholds((None, "green"), (1800, "red"))))
        .with_panel(timeseries("Queued runs",
                               "short",
                               query(f"benchd_queue_runs{{{INSTANCE}}}", "{{instance}}"),
                               description="Runs waiting in the persisted queue (one runs at a time per "
                                           "device).",
                               width=8))
        .with_row(db.Row("Runs"))
        .with_panel(timeseries("Run outcomes",
                               "short",
                               query(f"sum by (outcome) (increase(benchd_runs_total{{{INSTANCE}}}"
                                     "[$__rate_interval]))", "{{outcome}}"),
                               description="Runs ended per interval: ok, failed, timeout, invalid."))
        .with_panel(timeseries("Benchmark power (energy counter rate)",
                               "watt",
                               query(f"sum by (instance, device) "
                                     f"(rate(benchd_energy_joules_total{{{INSTANCE}}}[$__rate_interval]))",
                                     "{{instance}} {{device}}"),
                               description="Energy of measured windows per second: average power spent "
                                           "benchmarking."))
        .with_row(db.Row("The daemon process"))
        .with_panel(timeseries("Resident memory",
                               "bytes",
                               query(f"process_resident_memory_bytes{{{BENCHD}}}", "{{instance}}"),
                               description="RSS of the daemon process (workers are separate processes).",
                               width=8))
        .with_panel(timeseries("CPU",
                               "percentunit",
                               query(f"rate(process_cpu_seconds_total{{{BENCHD}}}[$__rate_interval])",
                                     "{{instance}}"),
                               description="CPU the daemon process uses (1 = one core); benchmarks run in "
                                           "workers and are not counted here.",
                               width=8))
        .with_panel(timeseries("Open file descriptors",
                               "short",
                               query(f"process_open_fds{{{BENCHD}}}", "{{instance}}"),
                               query(f"process_max_fds{{{BENCHD}}}", "{{instance}} limit", "B"),
                               description="Open files and sockets of the daemon, and its limit.",
                               width=8))
        .with_row(db.Row("Scrape cost"))
        .with_panel(timeseries("Prometheus scrape duration",
                               "s",
                               query(f"scrape_duration_seconds * on (instance, job) {_BENCHD_TARGETS}",
                                     "{{instance}}"),
                               description="How long Prometheus takes to scrape /metrics (results are "
                                           "cached).",
                               width=8))
        .with_panel(timeseries("Samples per scrape",
                               "short",
                               query(f"scrape_samples_scraped * on (instance, job) {_BENCHD_TARGETS}",
                                     "{{instance}}"),
                               description="Series per scrape: grows with models, versions kept and "
                                           "scenarios.",
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
                                     "{{collector}}"),
                               description="0 when a collector failed; BenchdCollectorFailing fires after 15 "
                                           "min.")
                    .thresholds(thresholds((None, "red"), (1, "green"))))
        .with_panel(table("benchd builds", "short",
                          query(f"max by (instance, version, python) (benchd_build_info{{{INSTANCE}}})",
                                instant=True, table=True),
                          description="benchd and Python version of each daemon.",
                          width=12))
        .with_panel(table("Devices", "short",
                          query(f"max by (instance, device, name, uuid, driver, hardware_class) "
                                f"(benchd_device_info{{{INSTANCE}}})", instant=True, table=True),
                          description="The benchmark devices of each daemon and their hardware class.",
                          width=12))
        .build()
    )  # fmt: skip
