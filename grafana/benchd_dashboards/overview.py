"""The Overview dashboard: every model, its latest version and verdict, latency, throughput, energy."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from benchd_dashboards.common import dashboard, query, stat, table, timeseries

UID = "benchd-overview"

LATEST_VERSION = "topk by (model) (1, max by (model, version) (benchd_run_timestamp_seconds))"


def build() -> dm.Dashboard:
    """Build the Overview dashboard."""
    return (
        dashboard(UID, "benchd / Overview", "All models: latest version and verdict, P99, throughput, energy")
        .with_row(db.Row("Fleet"))
        .with_panel(stat("Models", "none", query("count(count by (model) (benchd_run_timestamp_seconds))",
                                                 instant=True),
                         description="Models with at least one successful run among the exported versions."))
        .with_panel(stat("Regressions now", "none",
                         query("count(benchd_regression_detected == 1) or vector(0)", instant=True),
                         description="Verdict metrics of exported versions that say regressed."))
        .with_panel(stat("Failed runs in range", "none",
                         query('sum(increase(benchd_runs_total{outcome=~"failed|timeout"}[$__range]))'
                               " or vector(0)", instant=True)))
        .with_panel(stat("benchd hosts", "none", query("count(benchd_build_info)", instant=True)))
        .with_panel(table("Latest version per model",
                          query(LATEST_VERSION, ref_id="A", instant=True, table=True),
                          description="Value: when the version's latest run ended.", width=8))
        .with_panel(table("Verdicts of the latest versions",
                          query("max by (model, version, baseline_version, scenario, device, batch_size,"
                                " metric, state) (benchd_regression_state == 1 and on (model, version) "
                                + LATEST_VERSION + ")", instant=True, table=True),
                          description="State of every verdict metric of each model's latest version.",
                          width=16))
        .with_row(db.Row("Latency"))
        .with_panel(timeseries("P99 latency by version",
                               "s",
                               query('max by (model, version, scenario) '
                                     '(benchd_run_latency_seconds{percentile="0.99"})',
                                     "{{model}} {{version}} {{scenario}}"),
                               description="Exact P99 of each version's latest run (one point per run).",
                               width=24, points=True))
        .with_panel(timeseries("P99 ratio candidate / baseline",
                               "none",
                               query('max by (model, version, baseline_version, scenario) '
                                     '(benchd_regression_ratio{metric="p99", bound="point"})',
                                     "{{model}} {{version}}/{{baseline_version}} {{scenario}}"),
                               description="Above 1: the candidate is slower than its baseline.",
                               points=True))
        .with_panel(timeseries("Throughput",
                               "short",
                               query("max by (model, version, scenario) "
                                     "(benchd_run_throughput_samples_per_second)",
                                     "{{model}} {{version}} {{scenario}}"),
                               description="Samples per second of each version's latest run.", points=True))
        .with_row(db.Row("Energy and failures"))
        .with_panel(timeseries("Energy per sample",
                               "joule",
                               query("max by (model, version, scenario) "
                                     "(benchd_run_energy_per_sample_joules)",
                                     "{{model}} {{version}} {{scenario}}"),
                               points=True))
        .with_panel(timeseries("Failed runs",
                               "none",
                               query('sum by (model, outcome) '
                                     '(increase(benchd_runs_total{outcome!="ok"}[$__rate_interval]))',
                                     "{{model}} {{outcome}}"),
                               description="Runs that failed, timed out or were invalid."))
        .build()
    )  # fmt: skip
