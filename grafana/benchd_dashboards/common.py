"""Shared pieces of the dashboards: the datasource variable, query and panel helpers, serialisation."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE_VARIABLE = "datasource"
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid="${" + DATASOURCE_VARIABLE + "}")
"""Every panel, variable and annotation queries the Prometheus the ``datasource`` variable picks: no uid
is hard-coded, so the dashboards import into any Grafana whatever its datasource is called."""
TAGS = ["benchd"]
SERIES = 'model="$model", scenario=~"$scenario", device="$device", instance=~"$instance"'
"""Label matchers of the Model dashboard's variables (``scenario`` is one value inside a repeated row)."""

VERDICT_THRESHOLD = 0.10
"""benchd's default ``verdict.threshold`` t: ratio panels draw dashed lines at 1 - t and 1 + t."""

BOUND_STYLE = [
    dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
    dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
    dm.DynamicConfigValue(id_val="custom.showPoints", value="never"),
]
"""Field override for a series that is a bound (the server scenario's latency bound): a dashed red line."""

# Units (Grafana unit ids). Counts of things are "short"; a ratio reads best as "1.150x".
RATIO = "suffix:x"
SAMPLES_PER_S = "suffix: samples/s"
QUERIES_PER_S = "suffix: queries/s"


def query(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False, table: bool = False,
          heatmap: bool = False) -> pb.Dataquery:  # fmt: skip
    """A Prometheus query on the dashboard's datasource."""
    q = pb.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if table:
        q = q.format(pm.PromQueryFormat.TABLE)
    if heatmap:
        q = q.format(pm.PromQueryFormat.HEATMAP)
    return q


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    """Absolute thresholds: (value, colour) pairs, the first with value None (the base)."""
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=value, color=color) for value, color in steps])
    )


def ratio_bounds(higher_is_better: bool = False) -> db.ThresholdsConfig:
    """Dashed lines at 1 - t and 1 + t (t = :data:`VERDICT_THRESHOLD`); red on the regressed side."""
    low, high = 1 - VERDICT_THRESHOLD, 1 + VERDICT_THRESHOLD
    if higher_is_better:  # throughput: below 1 - t is the bad side
        return thresholds((None, "red"), (low, "green"), (high, "blue"))
    return thresholds((None, "blue"), (low, "green"), (high, "red"))


def link_to_model(
    title: str, *, model: str, version: str, scenario: str = "", device: str = ""
) -> db.DashboardLink:
    """A data link to the Model dashboard with model and version (and scenario, device) filled in.

    Args are Grafana data-link expressions, e.g. ``${__data.fields.model}`` (tables) or
    ``${__field.labels.model}`` (time series).
    """
    params = [
        f"var-{DATASOURCE_VARIABLE}=${{{DATASOURCE_VARIABLE}}}",
        f"var-model={model}",
        f"var-version={version}",
    ]
    if scenario:
        params.append(f"var-scenario={scenario}")
    if device:
        params.append(f"var-device={device}")
    url = "/d/benchd-model/benchd-model?" + "&".join(params) + "&${__url_time_range}"
    return db.DashboardLink(title).type(dm.DashboardLinkType.LINK).url(url)


def timeseries(title: str, unit: str, *queries: pb.Dataquery, description: str, width: int = 12,
               height: int = 8, points: bool = False,
               bounds: db.ThresholdsConfig | None = None) -> ts.Panel:  # fmt: skip
    """A time-series panel; ``points`` draws each run as a point (results change once per run).

    ``bounds`` draws its thresholds as dashed lines (a line that means something: a verdict bound).
    """
    panel = (ts.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .span(width).height(height))  # fmt: skip
    for q in queries:
        panel = panel.with_target(q)
    if points:
        panel = panel.show_points(common.VisibilityMode.ALWAYS).point_size(5).span_nulls(True)
    if bounds is not None:
        panel = panel.thresholds(bounds).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return panel


def stat(title: str, unit: str, q: pb.Dataquery, *, description: str, width: int = 6,
         height: int = 4) -> stat_panel.Panel:  # fmt: skip
    """A single-value panel."""
    return (stat_panel.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
            .span(width).height(height).with_target(q))  # fmt: skip


def table(title: str, unit: str, *queries: pb.Dataquery, description: str, width: int = 24,
          height: int = 8) -> table_panel.Panel:  # fmt: skip
    """A table of instant queries (one row per series, labels as columns)."""
    panel = (table_panel.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .span(width).height(height))  # fmt: skip
    for q in queries:
        panel = panel.with_target(q)
    return panel


def variable(name: str, label: str, expr: str) -> db.QueryVariable:
    """A query variable over label values, refreshed when the time range changes."""
    return (
        db.QueryVariable(name)
        .label(label)
        .query(expr)
        .datasource(DATASOURCE)
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


class _PrometheusAnnotation(dm.AnnotationQuery):
    """An annotation query with the Prometheus datasource's own options, which the SDK model lacks."""

    def __init__(self, base: dm.AnnotationQuery, extra: dict[str, Any]) -> None:
        super().__init__(**{k: getattr(base, k) for k in vars(base)})
        self._extra = extra

    def to_json(self) -> dict[str, object]:
        return {**super().to_json(), **self._extra}


class PrometheusAnnotation(db.AnnotationQuery):
    """A Prometheus annotation: an event at each step where ``expr`` has a series, titled by its labels."""

    def __init__(self, name: str, expr: str, color: str, title: str, tag_keys: str, step: str = "1m") -> None:
        super().__init__()
        self.name(name).datasource(DATASOURCE).enable(True).icon_color(color).expr(expr)
        self._extra = {"titleFormat": title, "tagKeys": tag_keys, "step": step, "textFormat": ""}

    def build(self) -> dm.AnnotationQuery:
        """The annotation model, with titleFormat, tagKeys and step."""
        return _PrometheusAnnotation(super().build(), self._extra)


def dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with benchd's defaults: the datasource variable, tags, 7 days, refresh every minute."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(db.DatasourceVariable(DATASOURCE_VARIABLE).label("Data source").type("prometheus")
                       .description("The Prometheus (or Thanos, Mimir) that scrapes benchd."))
        .link(db.DashboardLink("benchd").type(dm.DashboardLinkType.DASHBOARDS).tags(TAGS).as_dropdown(True)
              .include_vars(True).keep_time(True))
    )  # fmt: skip


def to_json(built: Any) -> str:
    """Serialise a built dashboard deterministically (sorted keys, 2-space indent, final newline).

    Panel ids are assigned in order (1, 2, ...) so links and alert rules can refer to them.
    """
    data = json.loads(json.dumps(built, cls=JSONEncoder))
    for number, panel in enumerate(data.get("panels", []), start=1):
        panel["id"] = number
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
