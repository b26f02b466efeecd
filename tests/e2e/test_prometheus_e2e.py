"""Prometheus scrapes a real ``benchd run``: a slower version fires the P99 alert, every panel has data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time

import pytest

from benchd.cli.demo import VERSIONS, demo_verdict
from tests.conftest import REPO, write_model
from tests.daemon.conftest import QUICK_BENCHMARK, wait_until
from tests.daemon.test_daemon import TERMINAL
from tests.prometheus_server import api, start_prometheus

sys.path.insert(0, str(REPO / "grafana"))
from benchd_dashboards.panel_queries import (  # noqa: E402
    annotation_queries,
    dashboard_variables,
    label_values_query,
    load_dashboards,
    panel_queries,
    render_expr,
)

#: The demo's own verdict settings (benchd demo --fast): its slower v2 must fire the P99 alert here.
VERDICT = demo_verdict(fast=True)
#: The demo's first two versions (MLP widths): v1 the baseline, v2 slower.
V1_WIDTH, V2_WIDTH = (width for _, width, _ in VERSIONS[:2])


DOCS_URL = "https://docs.example.test/benchd"
GRAFANA_URL = "https://grafana.example.test"
OPTIONAL = ("benchd_run_latency_bound_seconds",)
"""Panel queries allowed to be empty here: this daemon runs no server scenario with a latency bound."""


def fast_rules(tmp_path):
    """The shipped rules rendered for a deployment (render_rules.py), every ``for:`` cut to 2 s.

    The promtool tests cover the real durations (a verdict alert fires after 1m there).
    """
    rendered = tmp_path / "rendered.yml"
    source = REPO / "deploy" / "prometheus" / "benchd-rules.yml"
    render = [sys.executable, str(REPO / "deploy" / "render_rules.py"), str(source), str(rendered),
              "--docs-url", DOCS_URL, "--grafana-url", GRAFANA_URL]  # fmt: skip
    subprocess.run(render, check=True, timeout=60)
    path = tmp_path / "rules.yml"
    path.write_text(re.sub(r"(\n\s+for: )\S+", r"\g<1>2s", rendered.read_text()))
    return path


@pytest.fixture(scope="module")
def demo_versions(tmp_path_factory):
    """The demo's v1 and v2, written as the demo writes them."""
    root = tmp_path_factory.mktemp("demo-versions")
    return [write_model(root / f"v{i}", "mlp", width=w) for i, w in ((1, V1_WIDTH), (2, V2_WIDTH))]


@pytest.mark.slow
def test_the_demos_slower_version_fires_the_p99_alert_and_every_panel_has_data(
    daemon_factory, demo_versions, tmp_path
):
    d = daemon_factory({"verdict": VERDICT, "benchmark": QUICK_BENCHMARK}).start()
    prom_url, stop_prom = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{d.port}"], [fast_rules(tmp_path)])
    try:
        shutil.copytree(demo_versions[0], d.models / "mlp" / "1")
        d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "v1's run")
        shutil.copytree(demo_versions[1], d.models / "mlp" / "2")
        run2 = d.wait_runs(lambda rs: len(rs) == 2 and rs[0]["state"] in TERMINAL, 120, "v2's run")[0]
        verdict = wait_until(lambda: d.get(f"/api/v1/runs/{run2['id']}")[1]["verdicts"], 120, "v2's verdict")[
            0
        ]
        p99 = next(m for m in verdict["metrics"] if m["metric"] == "p99_latency")
        assert p99["state"] == "regressed" and p99["ratio_low"] > 1.05, verdict

        def firing():
            alerts = api(prom_url, "/api/v1/alerts")["alerts"]
            return [
                a
                for a in alerts
                if a["labels"]["alertname"] == "BenchdP99LatencyRegression" and a["state"] == "firing"
            ]

        started = time.time()
        alerts = wait_until(firing, 60, "BenchdP99LatencyRegression to fire")
        labels, annotations = alerts[0]["labels"], alerts[0]["annotations"]
        assert (labels["model"], labels["version"], labels["baseline_version"]) == ("mlp", "2", "1")
        # v2 is the newest judged version and not deployed (no champion alias): a candidate, a warning
        assert (labels["role"], labels["severity"]) == ("candidate", "warning")
        assert "interval" in annotations["description"] and "(candidate)" in annotations["summary"]
        assert annotations["runbook_url"] == f"{DOCS_URL}/README.md#alert-benchdp99latencyregression"
        assert annotations["dashboard_url"].startswith(f"{GRAFANA_URL}/d/benchd-model?var-model=mlp&")
        # no alert that must not fire here
        names = {a["labels"]["alertname"] for a in api(prom_url, "/api/v1/alerts")["alerts"]}
        assert not names & {"BenchdDown", "BenchdRunsFailing", "BenchdGPUThrottled", "BenchdCollectorFailing"}

        wait_until(lambda: _rate_ready(prom_url), 60, "two scrapes inside the rate window")
        empty = []
        events = {}
        for dashboard in load_dashboards().values():
            values = _variable_values(prom_url, dashboard)
            for q in panel_queries(dashboard):
                expr = render_expr(q.expr, values)
                result = api(prom_url, "/api/v1/query", query=expr)["result"]  # fails unless answered
                if not result and not any(name in expr for name in OPTIONAL):
                    empty.append(f"{q.dashboard_uid} / {q.panel_title}: {expr}")
            for a in annotation_queries(dashboard):  # as Grafana asks: a range query at the annotation's step
                expr = render_expr(a.expr, values)
                found = api(prom_url, "/api/v1/query_range", query=expr, start=str(started - 120),
                            end=str(time.time()), step="1")["result"]  # fmt: skip
                events[(a.dashboard_uid, a.panel_title)] = found
        assert not empty, "panels without data:\n" + "\n".join(empty)
        # the regression shows as an annotation on both dashboards; no change point in two versions
        assert events[("benchd-overview", "Regressions")] and events[("benchd-model", "Verdicts")], events
        assert events[("benchd-model", "Change points")] == []
    finally:
        stop_prom()


def _rate_ready(url):
    return api(url, "/api/v1/query", query="count_over_time(benchd_build_info[1m]) >= 5")["result"]


def _variable_values(url, dashboard):
    values = {}
    for var in dashboard_variables(dashboard):
        selector, label = label_values_query(render_expr(var.query, values))
        found = api(url, f"/api/v1/label/{label}/values", **({"match[]": selector} if selector else {}))
        assert found, f"variable {var.name} of {var.dashboard_uid} has no values"
        if var.include_all:  # Grafana's All: the custom all value, else every value found as a regex
            values[var.name] = var.all_value or "|".join(sorted(found))
        else:
            values[var.name] = sorted(found)[0]
    return values
