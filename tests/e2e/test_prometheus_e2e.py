"""Prometheus scrapes a real ``benchd run``: a slower version fires the P99 alert, every panel has data."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from tests.conftest import REPO, write_model
from tests.daemon.conftest import QUICK_BENCHMARK, wait_until
from tests.daemon.test_daemon import TERMINAL
from tests.prometheus_server import api, start_prometheus

sys.path.insert(0, str(REPO / "grafana"))
from benchd_dashboards.panel_queries import (  # noqa: E402
    dashboard_variables,
    label_values_query,
    load_dashboards,
    panel_queries,
    render_expr,
)

VERDICT = {
    "mode": "batch",
    "threshold": 0.10,
    "min_pairs": 3,
    "max_pairs": 8,
    "trial": "0.4s",
    "time_cap": "30s",
}


def fast_rules(tmp_path):
    """The shipped rules with every ``for:`` cut to 2 s: the promtool tests cover the real durations."""
    text = (REPO / "deploy" / "prometheus" / "benchd-rules.yml").read_text()
    path = tmp_path / "rules.yml"
    path.write_text(re.sub(r"(\n\s+for: )\S+", r"\g<1>2s", text))
    return path


@pytest.fixture(scope="module")
def slow_mlp(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("slow") / "mlp", "mlp", width=6.0)


def test_a_slower_version_fires_the_p99_alert_and_every_panel_has_data(
    daemon_factory, zoo, slow_mlp, tmp_path
):
    d = daemon_factory({"verdict": VERDICT, "benchmark": QUICK_BENCHMARK}).start()
    prom_url, stop_prom = start_prometheus(tmp_path / "prom", [f"127.0.0.1:{d.port}"], [fast_rules(tmp_path)])
    try:
        shutil.copytree(zoo["mlp"], d.models / "mlp" / "1")
        d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "v1's run")
        shutil.copytree(slow_mlp, d.models / "mlp" / "2")
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

        alerts = wait_until(firing, 60, "BenchdP99LatencyRegression to fire")
        labels = alerts[0]["labels"]
        assert (labels["model"], labels["version"], labels["baseline_version"]) == ("mlp", "2", "1")
        assert "interval" in alerts[0]["annotations"]["description"]
        # no alert that must not fire here
        names = {a["labels"]["alertname"] for a in api(prom_url, "/api/v1/alerts")["alerts"]}
        assert not names & {"BenchdDown", "BenchdRunsFailing", "BenchdGPUThrottled", "BenchdCollectorFailing"}

        wait_until(lambda: _rate_ready(prom_url), 60, "two scrapes inside the rate window")
        empty = []
        for dashboard in load_dashboards().values():
            values = _variable_values(prom_url, dashboard)
            for q in panel_queries(dashboard):
                expr = render_expr(q.expr, values)
                if not api(prom_url, "/api/v1/query", query=expr)["result"]:
                    empty.append(f"{q.dashboard_uid} / {q.panel_title}: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
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
