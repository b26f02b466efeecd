"""The Overview dashboard: every model's latest version and verdict; P99, throughput, energy by scenario."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from benchd_dashboards.common import (
    BOUND_STYLE,
    RATIO,
    SAMPLES_PER_S,
    PrometheusAnnotation,
    dashboard,
    link_to_model,
    query,
    ratio_bounds,
    stat,
    table,
    thresholds,
    timeseries,
    variable,
)

UID = "benchd-overview"

LATEST_VERSION = "topk by (model) (1, max by (model, version) (benchd_run_timestamp_seconds))"
SCENARIO = 'scenario=~"$scenario"'

_TABLE_LINK = link_to_model("Open ${__data.fields.model} ${__data.fields.version} in benchd / Model",
                            model="${__data.fields.model}", version="${__data.fields.version}")  # fmt: skip
_VERDICT_LINK = link_to_model(
    "Open ${__data.fields.model} ${__data.fields.version} (${__data.fields.scenario}) in benchd / Model",
    model="${__data.fields.model}", version="${__data.fields.version}",
    scenario="${__data.fields.scenario}", device="${__data.fields.device}",
)  # fmt: skip
_SERIES_LINK = link_to_model(
    "Open ${__field.labels.model} ${__field.labels.version} in benchd / Model",
    model="${__field.labels.model}", version="${__field.labels.version}",
    scenario="${__field.labels.scenario}",
)  # fmt: skip

NEW_REGRESSION = (
    'max by (model, version, baseline_version, scenario, metric) (benchd_regression_state{state="regressed"} '
    '== 1'
    ' unless benchd_regression_state{state="regressed"} offset 1m)'
)
"""A regressed verdict appears: one event at the first step it is exported."""


def build() -> dm.Dashboard:
    """Build the Overview dashboard."""
    scenario = (variable("scenario", "Scenario", "label_values(benchd_run_timestamp_seconds, scenario)")
                .multi(True).include_all(True).all_value(".*")
                .description("One row of panels per scenario picked."))  # fmt: skip
    return (
        dashboard(UID, "benchd / Overview", "All models: latest version and verdict; P99, throughput and "
                  "energy per scenario. Click a row or a series to open it in benchd / Model.")
        .with_variable(scenario)
        .annotation(PrometheusAnnotation("Regressions", NEW_REGRESSION, "red",
                                         "{{model}} {{version}} regressed ({{metric}} vs "
                                         "{{baseline_version}})",
                                         "scenario,metric"))
        .with_row(db.Row("Fleet"))
        .with_panel(stat("Models", "short", query("count(count by (model) (benchd_run_timestamp_seconds))",
                                                  instant=True),
                         description="Models with at least one successful run among the exported versions."))
        .with_panel(stat("Regressions now", "short",
                         query("count(benchd_regression_detected == 1) or vector(0)", instant=True),
                         description="Verdict metrics of exported versions that say regressed.")
                    .thresholds(thresholds((None, "green"), (1, "red"))))
        .with_panel(stat("Failed runs in range", "short",
                         query('sum(increase(benchd_runs_total{outcome=~"failed|timeout"}[$__range]))'
                               " or vector(0)", instant=True),
                         description="Runs that failed or timed out in the dashboard's time range.")
                    .thresholds(thresholds((None, "green"), (1, "orange"))))
        .with_panel(stat("benchd hosts", "short", query("count(benchd_build_info)", instant=True),
                         description="benchd daemons Prometheus scrapes."))
        .with_panel(table("Latest version per model", "dateTimeAsIso",
                          query(LATEST_VERSION + " * 1000", ref_id="A", instant=True, table=True),
                          description="Each model's newest version and when its latest run ended. Click a "
                                      "row "
                                      "to open the model at that version.",
                          width=8)
                    .data_links([_TABLE_LINK]))
        .with_panel(table("Verdicts of the latest versions", "short",
                          query("max by (model, version, baseline_version, scenario, device, batch_size,"
                                " metric, state) (benchd_regression_state == 1 and on (model, version) "
                                + LATEST_VERSION + ")", instant=True, table=True),
                          description="State of every verdict metric of each model's latest version. Click a "
                                      "row to open that version and scenario.",
                          width=16)
                    .data_links([_VERDICT_LINK]))
        .with_row(db.Row("Scenario $scenario").repeat("scenario"))
        .with_panel(timeseries("P99 latency by version",
                               "s",
                               query(f'max by (model, version, scenario) '
                                     f'(benchd_run_latency_seconds{{percentile="0.99", {SCENARIO}}})',
                                     "{{model}} {{version}}"),
                               query(f"max by (model, scenario) "
                                     f"(benchd_run_latency_bound_seconds{{{SCENARIO}}})",
                                     "{{model}} latency bound", "B"),
                               description="Exact P99 of each version's latest run (one point per run); "
                                           "dashed: "
                                           "the latency bound of a server scenario, where one is set.",
                               width=24, points=True)
                    .override_by_regexp(".* latency bound$", BOUND_STYLE)
                    .data_links([_SERIES_LINK]))
        .with_panel(timeseries("P99 ratio candidate / baseline",
                               RATIO,
                               query(f'max by (model, version, baseline_version, scenario) '
                                     f'(benchd_regression_ratio{{metric="p99", bound="point", {SCENARIO}}})',
                                     "{{model}} {{version}}/{{baseline_version}}"),
                               description="Above 1: the candidate is slower than its baseline. Dashed: 1 "
                                           "+/- 0.10, "
                                           "benchd's default verdict threshold (edit if you changed it).",
                               points=True, bounds=ratio_bounds())
                    .data_links([_SERIES_LINK]))
        .with_panel(timeseries("Throughput",
                               SAMPLES_PER_S,
                               query("max by (model, version, scenario) "
                                     f"(benchd_run_throughput_samples_per_second{{{SCENARIO}}})",
                                     "{{model}} {{version}}"),
                               description="Samples per second of each version's latest run.", points=True)
                    .data_links([_SERIES_LINK]))
        .with_panel(timeseries("Energy per sample",
                               "joule",
                               query("max by (model, version, scenario) "
                                     f"(benchd_run_energy_per_sample_joules{{{SCENARIO}}})",
                                     "{{model}} {{version}}"),
                               description="Energy of the measured window per sample, latest run of each "
                                           "version (GPUs: NVML energy counter; CPUs: RAPL where readable).",
                               points=True, width=24)
                    .data_links([_SERIES_LINK]))
        .with_row(db.Row("Failures"))
        .with_panel(timeseries("Failed runs",
                               "short",
                               query('sum by (model, outcome) '
                                     '(increase(benchd_runs_total{outcome!="ok"}[$__rate_interval]))',
                                     "{{model}} {{outcome}}"),
                               description="Runs that failed, timed out or were invalid.", width=24)
                    .thresholds(thresholds((None, "green"), (1, "red"))))
        .build()
    )  # fmt: skip

