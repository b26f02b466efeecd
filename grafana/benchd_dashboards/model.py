"""The Model dashboard: one model on one device, version by version, a row per scenario."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap
from grafana_foundation_sdk.models import dashboard as dm

from benchd_dashboards.common import (
    BOUND_STYLE,
    DATASOURCE,
    QUERIES_PER_S,
    RATIO,
    SAMPLES_PER_S,
    SERIES,
    PrometheusAnnotation,
    dashboard,
    query,
    ratio_bounds,
    table,
    thresholds,
    timeseries,
    variable,
)

UID = "benchd-model"

VERSIONS = 'version=~"$version"'
ALL_SCENARIOS = 'model="$model", device="$device", instance=~"$instance"'
_DASHED = [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})]

NEW_VERDICT = (
    "max by (version, baseline_version, scenario, batch_size, state) "
    f"(benchd_regression_state{{{ALL_SCENARIOS}}} == 1 unless benchd_regression_state{{{ALL_SCENARIOS}}} "
    f"offset 1m)"
)
"""A verdict appears (a new version judged, or one re-judged): one event at the first step it is seen."""
NEW_CHANGE_POINT = (
    "max by (version, scenario, batch_size) "
    f"(benchd_change_point_ratio{{{ALL_SCENARIOS}}} unless benchd_change_point_ratio{{{ALL_SCENARIOS}}} "
    f"offset 1m)"
)
"""A change point in the per-run P99 history appears."""


def _latency_heatmap() -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title("Query latency distribution")
        .description("Queries per latency bucket, from the cumulative histogram; each run shows as a column.")
        .datasource(DATASOURCE)
        .unit("s")
        .span(24)
        .height(9)
        .calculate(False)
        .with_target(query("sum by (le) (increase(benchd_query_latency_seconds_bucket"
                           f"{{{SERIES}, {VERSIONS}}}[$__rate_interval]))", "{{le}}", heatmap=True))
        .y_axis(heatmap.YAxisConfig().unit("s"))
    )  # fmt: skip


def _variables(board: db.Dashboard) -> db.Dashboard:
    # Fleets: pick a hardware class (GPU model + driver major); the hidden instance variable then narrows
    # every series to the hosts of that class, so versions compare on like hardware.
    return (
        board
        .with_variable(variable("hardware_class", "Hardware class",
                                "label_values(benchd_device_info, hardware_class)")
                       .description("GPU model and driver major: versions compare on like hardware."))
        .with_variable(variable("instance", "Instance",
                                "label_values(benchd_device_info"
                                '{hardware_class="$hardware_class"}, instance)')
                       .multi(True).include_all(True).hide(dm.VariableHide.HIDE_VARIABLE))
        .with_variable(variable("model", "Model",
                                'label_values(benchd_run_timestamp_seconds{instance=~"$instance"}, model)'))
        .with_variable(variable("version", "Version",
                                'label_values(benchd_run_timestamp_seconds{model="$model"}, version)')
                       .multi(True).include_all(True).all_value(".*")
                       .description("The versions to show (all exported ones by default)."))
        .with_variable(variable("scenario", "Scenario",
                                'label_values(benchd_run_timestamp_seconds{model="$model"}, scenario)')
                       .multi(True).include_all(True).all_value(".*")
                       .description("One row of panels per scenario picked."))
        .with_variable(variable("device", "Device",
                                "label_values(benchd_run_timestamp_seconds"
                                '{model="$model", scenario=~"$scenario"}, device)'))
    )  # fmt: skip


def build() -> dm.Dashboard:
    """Build the Model dashboard."""
    board = dashboard(UID, "benchd / Model", "One model on one device, version by version: verdicts, then a "
                      "row per scenario with latency, throughput and energy.")
    return (
        _variables(board)
        .annotation(PrometheusAnnotation("Verdicts", NEW_VERDICT, "orange",
                                         "{{version}} vs {{baseline_version}}: {{state}}", "scenario,state"))
        .annotation(PrometheusAnnotation("Change points", NEW_CHANGE_POINT, "purple",
                                         "P99 change point at {{version}}", "scenario"))
        .with_row(db.Row("Versions and verdicts"))
        .with_panel(table("Versions and roles", "short",
                          query('max by (version, role) (benchd_model_version_info{model="$model"})',
                                instant=True, table=True),
                          description="Which version is the candidate, the baseline of the newest verdict, "
                                      "and "
                                      "the champion (deployed).",
                          width=8))
        .with_panel(table("Verdicts", "short",
                          query(f"max by (version, baseline_version, scenario, batch_size, metric, state) "
                                f"(benchd_regression_state{{{ALL_SCENARIOS}, {VERSIONS}}})", "A",
                                instant=True, table=True),
                          query(f"max by (version, baseline_version, scenario, batch_size, metric, bound) "
                                f"(benchd_regression_ratio{{{ALL_SCENARIOS}, {VERSIONS}}})", "", "B",
                                instant=True, table=True),
                          description="Every exported version's latest verdict: state, and ratio candidate / "
                                      "baseline with its 95% interval.",
                          width=16))
        .with_row(db.Row("Scenario $scenario").repeat("scenario"))
        .with_panel(timeseries("P99 candidate vs baseline: ratio and 95% interval",
                               RATIO,
                               query(f'max by (version, baseline_version, batch_size, bound) '
                                     f'(benchd_regression_ratio{{{SERIES}, {VERSIONS}, metric="p99"}})',
                                     "{{version}} vs {{baseline_version}} bs{{batch_size}} {{bound}}"),
                               description="Regressed when the low bound is above 1 + the minimum effect. "
                                           "Dashed: 1 +/- 0.10, benchd's default verdict threshold.",
                               points=True, bounds=ratio_bounds())
                    .override_by_regexp(".* (low|high)$", _DASHED))
        .with_panel(timeseries("P99 latency: candidate, baseline and the latency bound",
                               "s",
                               query(f'max by (version, batch_size) (benchd_run_latency_seconds{{{SERIES}, '
                                     f'percentile="0.99"}}) * on (version) group_left (role) '
                                     f'max by (version, role) (benchd_model_version_info{{model="$model", '
                                     f'role=~"candidate|baseline"}})',
                                     "{{role}} {{version}} bs{{batch_size}}"),
                               query(f"max by (batch_size) (benchd_run_latency_bound_seconds{{{SERIES}}})",
                                     "latency bound bs{{batch_size}}", "B"),
                               description="P99 of the newest verdict's two versions. Dashed red: the server "
                                           "scenario's latency bound (runs above it are INVALID), when one "
                                           "is set.",
                               points=True)
                    .override_by_regexp("^latency bound.*", BOUND_STYLE))
        .with_panel(_latency_heatmap())
        .with_panel(timeseries("Percentiles by version (latest run)",
                               "s",
                               query(f"max by (version, batch_size, percentile) "
                                     f"(benchd_run_latency_seconds{{{SERIES}, {VERSIONS}}})",
                                     "{{version}} p{{percentile}} bs{{batch_size}}"),
                               description="Exact p50 to p99.9 of each version's latest run, from raw "
                                           "samples.",
                               points=True))
        .with_panel(timeseries("P99 by version over all runs (from the histogram)",
                               "s",
                               query(f"histogram_quantile(0.99, sum by (version, le) "
                                     f"(benchd_query_latency_seconds_bucket{{{SERIES}, {VERSIONS}}}))",
                                     "{{version}}"),
                               description="P99 over every run of each version (bucket resolution), so "
                                           "re-runs "
                                           "count too."))
        .with_panel(timeseries("Throughput",
                               SAMPLES_PER_S,
                               query(f"max by (version, batch_size) "
                                     f"(benchd_run_throughput_samples_per_second{{{SERIES}, {VERSIONS}}})",
                                     "{{version}} bs{{batch_size}}"),
                               description="Samples per second of each version's latest run.",
                               points=True, width=8))
        .with_panel(timeseries("Queries per second",
                               QUERIES_PER_S,
                               query(f"max by (version, batch_size) "
                                     f"(benchd_run_throughput_queries_per_second{{{SERIES}, {VERSIONS}}})",
                                     "{{version}} bs{{batch_size}}"),
                               description="Queries per second of each version's latest run (a query carries "
                                           "batch_size samples).",
                               points=True, width=8))
        .with_panel(timeseries("Energy per sample",
                               "joule",
                               query(f"max by (version, batch_size) "
                                     f"(benchd_run_energy_per_sample_joules{{{SERIES}, {VERSIONS}}})",
                                     "{{version}} bs{{batch_size}}"),
                               description="Energy of the measured window per sample (NVML energy counter on "
                                           "GPUs, RAPL on CPUs where readable).",
                               points=True, width=8))
        .with_panel(timeseries("Power during runs",
                               "watt",
                               query(f"max by (version, batch_size, stat) "
                                     f"(benchd_run_power_watts{{{SERIES}, {VERSIONS}}})",
                                     "{{version}} bs{{batch_size}} {{stat}}"),
                               description="Mean and peak device power over each latest run's measured "
                                           "window.",
                               points=True))
        .with_panel(timeseries("Throttled during the latest run",
                               "bool_yes_no",
                               query(f"max by (version, batch_size) "
                                     f"(benchd_run_throttled{{{SERIES}, {VERSIONS}}})",
                                     "{{version}} bs{{batch_size}}"),
                               description="1 when the device reported clock throttling during the run: its "
                                           "figures are not used as a baseline.",
                               points=True)
                    .thresholds(thresholds((None, "green"), (1, "red"))))
        .with_row(db.Row("Device"))
        .with_panel(table("Device", "short",
                          query('max by (device, name, uuid, driver, hardware_class) '
                                '(benchd_device_info{device="$device"})', instant=True, table=True),
                          description="What the benchmark device is (name, UUID, driver, hardware class).",
                          width=24))
        .build()
    )  # fmt: skip
