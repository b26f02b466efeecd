"""Shared pieces of the dashboards: the datasource, query and panel helpers, serialisation."""

from __future__ import annotations

import json
from typing import Any

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as pb
from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.builders import timeseries as ts
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

DATASOURCE_UID = "prometheus"
"""The one datasource uid every panel uses (grafana/provisioning/datasources/benchd.yml defines it)."""
DATASOURCE = dm.DataSourceRef(type_val="prometheus", uid=DATASOURCE_UID)
TAGS = ["benchd"]
SERIES = 'model="$model", scenario="$scenario", device="$device", instance=~"$instance"'
"""Label matchers of the Model dashboard's variables."""


def query(expr: str, legend: str = "", ref_id: str = "A", *, instant: bool = False, table: bool = False,
          heatmap: bool = False) -> pb.Dataquery:  # fmt: skip
    """A Prometheus query on the benchd datasource."""
    q = pb.Dataquery().expr(expr).ref_id(ref_id).datasource(DATASOURCE)
    if legend:
        q = q.legend_format(legend)
    q = q.instant() if instant else q.range()
    if table:
        q = q.format(pm.PromQueryFormat.TABLE)
    if heatmap:
        q = q.format(pm.PromQueryFormat.HEATMAP)
    return q


def timeseries(title: str, unit: str, *queries: pb.Dataquery, description: str = "", width: int = 12,
               height: int = 8, points: bool = False) -> ts.Panel:  # fmt: skip
    """A time-series panel; ``points`` draws each run as a point (results change once per run)."""
    panel = ts.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(height)
    if description:
        panel = panel.description(description)
    for q in queries:
        panel = panel.with_target(q)
    if points:
        from grafana_foundation_sdk.models import common

        panel = panel.show_points(common.VisibilityMode.ALWAYS).point_size(5).span_nulls(True)
    return panel


def stat(title: str, unit: str, q: pb.Dataquery, *, description: str = "", width: int = 6,
         height: int = 4) -> stat_panel.Panel:  # fmt: skip
    """A single-value panel."""
    panel = stat_panel.Panel().title(title).unit(unit).datasource(DATASOURCE).span(width).height(height)
    if description:
        panel = panel.description(description)
    return panel.with_target(q)


def table(title: str, *queries: pb.Dataquery, description: str = "", width: int = 24,
          height: int = 8) -> table_panel.Panel:  # fmt: skip
    """A table of instant queries (one row per series, labels as columns)."""
    panel = table_panel.Panel().title(title).datasource(DATASOURCE).span(width).height(height)
    if description:
        panel = panel.description(description)
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


def dashboard(uid: str, title: str, description: str) -> db.Dashboard:
    """A dashboard with benchd's defaults: tags, 7 days, refresh every minute, shared crosshair."""
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(TAGS)
        .time("now-7d", "now")
        .refresh("1m")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
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
