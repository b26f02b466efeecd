"""Dashboards as code: regenerated output equals the committed JSON, which passes Grafana's schema."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml
from benchd_dashboards.panel_queries import (
    annotation_queries,
    dashboard_variables,
    label_values_query,
    load_dashboards,
    panel_queries,
    render_expr,
)
from tests.system_tools import require_tool

from benchd.metrics import names

REPO = Path(__file__).resolve().parents[2]
SCHEMA = REPO / "tests" / "fixtures" / "grafana-dashboard.schema.json"
PROVISIONING = REPO / "grafana" / "provisioning"
VARIABLE_VALUES = {
    "model": "resnet50",
    "version": ".*",
    "scenario": "server",
    "device": "cuda:0",
    "instance": ".*",
    "hardware_class": "nvidia-h200-drv570",
}
PROMETHEUS_METRICS = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
PROCESS_METRICS = {"process_resident_memory_bytes", "process_cpu_seconds_total", "process_open_fds",
                   "process_max_fds"}  # prometheus_client's, on benchd's registry  # fmt: skip


def _build_module():
    try:
        importlib.import_module("grafana_foundation_sdk")
    except ImportError:
        pytest.fail("grafana-foundation-sdk missing: pip install 'grafana-foundation-sdk==1769699379!11.6.0'")
    spec = importlib.util.spec_from_file_location("benchd_grafana_build", REPO / "grafana" / "build.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerated_dashboards_and_alerts_equal_the_committed_files() -> None:
    build = _build_module()
    outputs = build.outputs()
    assert {p.name for p in outputs} == {"overview.json", "model.json", "daemon.json", "benchd-alerts.yml"}
    for path, content in outputs.items():
        assert path.exists(), f"{path} not committed: run python grafana/build.py"
        assert path.read_text() == content, f"{path} is stale: run python grafana/build.py"
    assert build.main(["--check"]) == 0


def test_dashboards_validate_against_grafana_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    dashboards = load_dashboards()
    assert set(dashboards) == {"overview", "model", "daemon"}
    for name, dashboard in dashboards.items():
        jsonschema.validate(dashboard, schema)
        assert dashboard["uid"] == f"benchd-{name}"


def test_schema_rejects_a_broken_dashboard() -> None:
    schema = json.loads(SCHEMA.read_text())
    broken = load_dashboards()["overview"]
    broken["panels"][1]["gridPos"] = {"h": "tall", "w": 6, "x": 0, "y": 0}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def _panels(dashboard: dict) -> list[dict]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_query_uses_the_datasource_variable_never_a_hard_coded_uid() -> None:
    for dashboard in load_dashboards().values():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        first = dashboard["templating"]["list"][0]
        assert (first["name"], first["type"], first["query"]) == ("datasource", "datasource", "prometheus")
        refs = [p["datasource"] for p in _panels(dashboard)]
        refs += [t["datasource"] for p in _panels(dashboard) for t in p["targets"]]
        refs += [v["datasource"] for v in dashboard["templating"]["list"] if v["type"] == "query"]
        refs += [a["datasource"] for a in dashboard["annotations"].get("list", [])]
        assert refs and all(r == {"type": "prometheus", "uid": "${datasource}"} for r in refs), refs
        assert '"uid": "prometheus"' not in json.dumps(dashboard)


def test_every_panel_has_a_unit_and_a_description() -> None:
    for name, dashboard in load_dashboards().items():
        for panel in _panels(dashboard):
            assert panel["targets"], panel["title"]
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{name} / {panel['title']} has no unit"
            assert len(panel.get("description", "")) > 20, f"{name} / {panel['title']} has no description"


def test_ratio_panels_draw_the_verdict_bounds_and_latency_panels_the_latency_bound() -> None:
    ratio_panels = [p for d in load_dashboards().values() for p in _panels(d)
                    if p["fieldConfig"]["defaults"]["unit"] == "suffix:x"]  # fmt: skip
    assert len(ratio_panels) == 2
    for panel in ratio_panels:
        steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["value"] for s in steps] == [None, 0.9, 1.1] and steps[2]["color"] == "red"
        assert panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] == {"mode": "dashed"}
    bound = "benchd_run_latency_bound_seconds"
    bound_panels = [p for d in load_dashboards().values() for p in _panels(d)
                    if any(bound in t["expr"] for t in p["targets"])]  # fmt: skip
    assert {p["title"] for p in bound_panels} == {
        "P99 latency by version", "P99 latency: candidate, baseline and the latency bound",
    }  # fmt: skip
    for panel in bound_panels:
        (override,) = [
            o for o in panel["fieldConfig"]["overrides"] if "latency bound" in o["matcher"]["options"]
        ]
        props = {p["id"]: p["value"] for p in override["properties"]}
        assert props["custom.lineStyle"]["fill"] == "dash" and props["color"]["fixedColor"] == "red"


def test_overview_rows_and_series_link_to_the_model_dashboard_with_model_and_version() -> None:
    overview = load_dashboards()["overview"]
    linked = {p["title"]: p["fieldConfig"]["defaults"].get("links", []) for p in _panels(overview)}
    for title in ("Latest version per model", "Verdicts of the latest versions", "P99 latency by version",
                  "P99 ratio candidate / baseline", "Throughput"):  # fmt: skip
        (link,) = linked[title]
        url = link["url"]
        assert url.startswith("/d/benchd-model/") and "${__url_time_range}" in url, url
        field = "${__data.fields." if title.startswith(("Latest", "Verdicts")) else "${__field.labels."
        assert f"var-model={field}model}}" in url and f"var-version={field}version}}" in url, url
        assert "var-datasource=${datasource}" in url
    model_variables = {v.name for v in dashboard_variables(load_dashboards()["model"])}
    assert {"model", "version", "scenario", "device"} <= model_variables  # what the links fill in


def test_verdicts_and_change_points_are_annotations() -> None:
    boards = load_dashboards()
    model = {a["name"]: a for a in boards["model"]["annotations"]["list"]}
    assert set(model) == {"Verdicts", "Change points"}
    assert "benchd_regression_state" in model["Verdicts"]["expr"] and "offset 1m" in model["Verdicts"]["expr"]
    assert "benchd_change_point_ratio" in model["Change points"]["expr"]
    assert "{{version}}" in model["Verdicts"]["titleFormat"] and model["Verdicts"]["step"] == "1m"
    overview = {a["name"] for a in boards["overview"]["annotations"]["list"]}
    assert overview == {"Regressions"}


def test_a_row_per_scenario() -> None:
    for name in ("overview", "model"):
        dashboard = load_dashboards()[name]
        rows = [p for p in dashboard["panels"] if p["type"] == "row" and p.get("repeat")]
        assert [(r["title"], r["repeat"]) for r in rows] == [("Scenario $scenario", "scenario")], name
        scenario = next(v for v in dashboard["templating"]["list"] if v["name"] == "scenario")
        assert scenario["multi"] and scenario["includeAll"]


def test_dashboards_have_the_panels_the_issue_asks_for() -> None:
    d = load_dashboards()
    titles = {name: {p["title"] for p in dash["panels"]} for name, dash in d.items()}
    assert {"Latest version per model", "Verdicts of the latest versions", "P99 latency by version",
            "Throughput", "Energy per sample", "Failed runs"} <= titles["overview"]  # fmt: skip
    assert {"Query latency distribution", "Percentiles by version (latest run)",
            "P99 candidate vs baseline: ratio and 95% interval", "Energy per sample", "Power during runs",
            "Throttled during the latest run"} <= titles["model"]  # fmt: skip
    assert {"Registry polls", "Queued runs", "Run outcomes", "Prometheus scrape duration",
            "Collector duration", "Resident memory", "CPU"} <= titles["daemon"]  # fmt: skip
    heatmap = next(p for p in d["model"]["panels"] if p["type"] == "heatmap")
    assert "benchd_query_latency_seconds_bucket" in heatmap["targets"][0]["expr"]
    assert heatmap["targets"][0]["format"] == "heatmap"
    assert [v.name for v in dashboard_variables(d["model"])] == [
        "hardware_class",
        "instance",
        "model",
        "version",
        "scenario",
        "device",
    ]


def _metric_names(expr: str) -> set[str]:
    found = set(re.findall(r"\b(benchd_[a-z0-9_]+|up|scrape_[a-z_]+|process_[a-z_]+)\b", expr))
    histogram = "benchd_query_latency_seconds"
    return {histogram if n.startswith(histogram) else n for n in found}


def test_every_queried_metric_is_in_the_contract() -> None:
    known = {m.name for m in names.ALL_METRICS} | PROMETHEUS_METRICS | PROCESS_METRICS
    for dashboard in load_dashboards().values():
        for q in panel_queries(dashboard) + annotation_queries(dashboard):
            assert _metric_names(q.expr) <= known, (q.panel_title, q.expr)
        for v in dashboard_variables(dashboard):
            assert _metric_names(v.query) <= known, v.query


def test_every_query_is_valid_promql_after_substitution(tmp_path: Path) -> None:
    """promtool parses each rendered panel query (as a recording rule expression)."""
    promtool = require_tool("promtool")
    rules = []
    for name, dashboard in load_dashboards().items():
        for i, q in enumerate(panel_queries(dashboard) + annotation_queries(dashboard)):
            rules.append({"record": f"check:{name}_{i}:query", "expr": render_expr(q.expr, VARIABLE_VALUES)})
        for v in dashboard_variables(dashboard):
            selector, _ = label_values_query(v.query)
            if selector:
                rules.append({"record": f"check:{name}_{v.name}:variable",
                              "expr": render_expr(selector, VARIABLE_VALUES)})  # fmt: skip
    assert len(rules) > 30
    path = tmp_path / "queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": rules}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_expr_substitutes_variables_and_builtins() -> None:
    expr = 'sum(increase(x{model="$model", d="${device}"}[$__rate_interval])) and y[$__range]'
    assert render_expr(expr, {"model": "m", "device": "cuda:0"}) == (
        'sum(increase(x{model="m", d="cuda:0"}[1m])) and y[1h]'
    )
    with pytest.raises(KeyError):
        render_expr('x{a="$missing"}', {})
    assert label_values_query('label_values(up{job="x"}, instance)') == ('up{job="x"}', "instance")
    assert label_values_query("label_values(model)") == (None, "model")


def test_provisioning_files() -> None:
    datasource = yaml.safe_load((PROVISIONING / "datasources" / "benchd.yml").read_text())
    assert datasource["datasources"][0]["uid"] == "prometheus"
    assert datasource["datasources"][0]["type"] == "prometheus"
    providers = yaml.safe_load((PROVISIONING / "dashboards" / "benchd.yml").read_text())["providers"]
    assert providers[0]["type"] == "file" and providers[0]["options"]["path"]


def test_grafana_alerts_are_generated_from_the_prometheus_rules() -> None:
    alerts = yaml.safe_load((REPO / "grafana" / "alerting" / "benchd-alerts.yml").read_text())
    prom = yaml.safe_load((REPO / "deploy" / "prometheus" / "benchd-rules.yml").read_text())
    sources = {r["alert"]: r for g in prom["groups"] for r in g["rules"] if "alert" in r}
    rules = alerts["groups"][0]["rules"]
    assert [r["title"] for r in rules] == [
        "BenchdP99LatencyRegression", "BenchdThroughputRegression", "BenchdEnergyRegression",
    ]  # fmt: skip
    for rule in rules:
        source = sources[rule["title"]]
        assert rule["data"][0]["model"]["expr"] == source["expr"].strip()
        assert rule["for"] == source["for"]
        # Grafana interpolates environment variables into provisioned labels: every $ is escaped
        assert rule["labels"] == {k: v.replace("$", "$$") for k, v in source["labels"].items()}
        assert "$$labels.role" in rule["labels"]["severity"]
        for link in ("runbook_url", "dashboard_url"):
            assert rule["annotations"][link] == source["annotations"][link]
        refs = {d["refId"]: d for d in rule["data"]}
        assert rule["condition"] in refs and refs[rule["condition"]]["model"]["type"] == "threshold"
        assert all(d["datasourceUid"] in {"prometheus", "__expr__"} for d in rule["data"])
        assert "$values.LOW" in rule["annotations"]["description"]
        assert "$$" not in rule["annotations"]["description"]  # annotations are not interpolated


def test_grafana_alerts_are_not_provisioned_next_to_the_prometheus_rules() -> None:
    """They are alternatives: provisioning/ holds no alert rules, or each regression would notify twice."""
    files = sorted(PROVISIONING.rglob("*.y*ml"))
    assert files  # datasources and dashboards
    with_rules = [f for f in files if "groups" in (yaml.safe_load(f.read_text()) or {})]
    assert with_rules == [], "Grafana alert rules are provisioned by default"
