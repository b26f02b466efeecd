"""The Model dashboard: one model on one scenario and device, version by version."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import heatmap
from grafana_foundation_sdk.models import dashboard as dm

from benchd_dashboards.common import DATASOURCE, SERIES, dashboard, query, table, timeseries, variable

UID = "benchd-model"

_DASHED = [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]})]


def _latency_heatmap() -> heatmap.Panel:
    return (
        heatmap.Panel()
        .title("Query latency distribution")
        .description("Queries per latency bucket, from the cumulative histogram; each run shows as a column.")
        .datasource(DATASOURCE)
        .span(24)
        .height(9)
        .calculate(False)
        .with_target(query(f"sum by (le) (increase(benchd_query_latency_seconds_bucket{{{SERIES}}}"
                           "[$__rate_interval]))", "{{le}}", heatmap=True))
        .y_axis(heatmap.YAxisConfig().unit("s"))
    )  # fmt: skip


def build() -> dm.Dashboard:
    """Build the Model dashboard."""
    return (
        dashboard(UID, "benchd / Model", "One model on one scenario and device: latency, verdicts, energy.")
        # Fleets: pick a hardware class (GPU model + driver major); the hidden instance variable then
        # narrows every series to the hosts of that class, so versions compare on like hardware.
        .with_variable(variable("hardware_class", "Hardware class",
                                "label_values(benchd_device_info, hardware_class)"))
        .with_variable(variable("instance", "Instance",
                                "label_values(benchd_device_info"
                                '{hardware_class="$hardware_class"}, instance)')
                       .multi(True).include_all(True).hide(dm.VariableHide.HIDE_VARIABLE))
        .with_variable(variable("model", "Model",
                                'label_values(benchd_run_timestamp_seconds{instance=~"$instance"}, model)'))
        .with_variable(variable("scenario", "Scenario",
                                'label_values(benchd_run_timestamp_seconds{model="$model"}, scenario)'))
        .with_variable(variable("device", "Device",
                                "label_values(benchd_run_timestamp_seconds"
                                '{model="$model", scenario="$scenario"}, device)'))
        .with_row(db.Row("Versions and verdicts"))
        .with_panel(table("Versions and roles",
                          query('max by (version, role) (benchd_model_version_info{model="$model"})',
                                instant=True, table=True),
                          width=8))
        .with_panel(table("Verdicts",
                          query(f"max by (version, baseline_version, batch_size, metric, state) "
                                f"(benchd_regression_state{{{SERIES}}})", "A", instant=True, table=True),
                          query(f"max by (version, baseline_version, batch_size, metric, bound) "
                                f"(benchd_regression_ratio{{{SERIES}}})", "", "B", instant=True, table=True),
                          description="Verdict state and ratio candidate / baseline with its 95% interval.",
                          width=16))
        .with_panel(timeseries("P99 candidate vs baseline: ratio and 95% interval",
                               "none",
                               query(f'max by (version, baseline_version, batch_size, bound) '
                                     f'(benchd_regression_ratio{{{SERIES}, metric="p99"}})',
                                     "{{version}} vs {{baseline_version}} bs{{batch_size}} {{bound}}"),
                               description="Regressed when the low bound is above 1 + the minimum effect.",
                               points=True)
                    .override_by_regexp(".* (low|high)$", _DASHED))
        .with_panel(timeseries("P99 latency: candidate and baseline",
                               "s",
                               query(f'max by (version, batch_size) (benchd_run_latency_seconds{{{SERIES}, '
                                     f'percentile="0.99"}}) * on (version) group_left (role) '
                                     f'max by (version, role) (benchd_model_version_info{{model="$model", '
                                     f'role=~"candidate|baseline"}})',
                                     "{{role}} {{version}} bs{{batch_size}}"),
                               points=True))
        .with_row(db.Row("Latency"))
        .with_panel(_latency_heatmap())
        .with_panel(timeseries("Percentiles by version (latest run)",
                               "s",
                               query(f"max by (version, batch_size, percentile) "
                                     f"(benchd_run_latency_seconds{{{SERIES}}})",
                                     "{{version}} p{{percentile}} bs{{batch_size}}"),
                               points=True))
        .with_panel(timeseries("P99 by version over all runs (from the histogram)",
                               "s",
                               query(f"histogram_quantile(0.99, sum by (version, le) "
                                     f"(benchd_query_latency_seconds_bucket{{{SERIES}}}))",
                                     "{{version}}")))
        .with_row(db.Row("Throughput, energy, power, throttling"))
        .with_panel(timeseries("Throughput",
                               "short",
                               query(f"max by (version, batch_size) "
                                     f"(benchd_run_throughput_samples_per_second{{{SERIES}}})",
                                     "{{version}} bs{{batch_size}} samples/s"),
                               points=True, width=8))
        .with_panel(timeseries("Energy per sample",
                               "joule",
                               query(f"max by (version, batch_size) "
                                     f"(benchd_run_energy_per_sample_joules{{{SERIES}}})",
                                     "{{version}} bs{{batch_size}}"),
                               points=True, width=8))
        .with_panel(timeseries("Power during runs",
                               "watt",
                               query(f"max by (version, batch_size, stat) "
                                     f"(benchd_run_power_watts{{{SERIES}}})",
                                     "{{version}} bs{{batch_size}} {{stat}}"),
                               points=True, width=8))
        .with_panel(timeseries("Throttled during the latest run",
                               "bool_yes_no",
                               query(f"max by (version, batch_size) (benchd_run_throttled{{{SERIES}}})",
                                     "{{version}} bs{{batch_size}}"),
                               description="1 when the device reported clock throttling during the run.",
                               points=True))
        .with_panel(table("Device",
                          query('max by (device, name, uuid, driver, hardware_class) '
                                '(benchd_device_info{device="$device"})', instant=True, table=True),
                          width=12))
        .build()
    )  # fmt: skip
