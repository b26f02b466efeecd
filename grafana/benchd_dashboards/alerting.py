"""Grafana-managed alert rules, generated from the Prometheus rules (the one source of truth).

The Grafana-managed rules are an *alternative* to loading ``deploy/prometheus/benchd-rules.yml`` into
Prometheus with Alertmanager: use one or the other, or every regression notifies twice. So the generated
file lives in ``grafana/alerting/`` (not under ``provisioning/``, nothing loads it by default); copy its
rendered copy (``deploy/render_rules.py``) into Grafana's ``provisioning/alerting`` to switch.

Each Prometheus alert named in :data:`GRAFANA_ALERTS` becomes a Grafana alert rule with the same PromQL,
``for``, labels, summary, runbook and dashboard links. Grafana templates have no ``query`` function, so the
95% interval comes from two extra instant queries (``LOW``, ``HIGH``) whose series match the alert's by
labels and are read through ``$values``. Grafana interpolates environment variables into the labels of a
provisioned rule (not into its annotations), so every ``$`` of a label template is written ``$$``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DATASOURCE_UID = "prometheus"
"""The datasource uid alert rules query (alert rules cannot use a dashboard's datasource variable);
grafana/provisioning/datasources/benchd.yml provisions it."""

_INTERVAL = (
    '(95% interval {{ printf "%.3f" $values.LOW.Value }} to {{ printf "%.3f" $values.HIGH.Value }}) in '
    "scenario {{ $labels.scenario }}, batch size {{ $labels.batch_size }}, on {{ $labels.device }} of "
    "{{ $labels.instance }}."
)
_ROLE = '{{ if eq $labels.role "champion" }}the deployed version{{ else }}a candidate, not deployed{{ end }}'

GRAFANA_ALERTS: dict[str, dict[str, str]] = {
    "BenchdP99LatencyRegression": {
        "uid": "benchd-p99-latency-regression",
        "metric": "p99",
        "description": (
            "{{ $labels.model }} version {{ $labels.version }} (" + _ROLE + ') has {{ printf "%.3f" '
            "$values.B.Value }}x the P99 latency of baseline version {{ $labels.baseline_version }} "
            + _INTERVAL
        ),
    },
    "BenchdThroughputRegression": {
        "uid": "benchd-throughput-regression",
        "metric": "throughput",
        "description": (
            "{{ $labels.model }} version {{ $labels.version }} (" + _ROLE + ') reaches {{ printf "%.3f" '
            "$values.B.Value }}x the throughput of baseline version {{ $labels.baseline_version }} "
            + _INTERVAL
        ),
    },
    "BenchdEnergyRegression": {
        "uid": "benchd-energy-regression",
        "metric": "energy",
        "description": (
            "{{ $labels.model }} version {{ $labels.version }} (" + _ROLE + ') uses {{ printf "%.3f" '
            "$values.B.Value }}x the energy per sample of baseline version {{ $labels.baseline_version }} "
            + _INTERVAL
        ),
    },
}
"""Alerts users can get from Grafana instead: alert name -> Grafana rule uid, verdict metric, description."""

FOLDER = "benchd"
GROUP = "benchd"
EVALUATION_INTERVAL = "1m"


def _prometheus_alerts(rules_path: Path) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(rules_path.read_text())["groups"]
    return {r["alert"]: r for g in groups for r in g["rules"] if "alert" in r}


def _instant_query(ref_id: str, expr: str) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 600, "to": 0},
        "datasourceUid": DATASOURCE_UID,
        "model": {"refId": ref_id, "expr": expr, "instant": True, "range": False, "intervalMs": 1000,
                  "maxDataPoints": 43200},
    }  # fmt: skip


def _expression(ref_id: str, model: dict[str, Any]) -> dict[str, Any]:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": "__expr__",
        "model": {"refId": ref_id, "datasource": {"type": "__expr__", "uid": "__expr__"}, **model},
    }


def grafana_rule(alert: dict[str, Any], uid: str, metric: str, description: str) -> dict[str, Any]:
    """Translate one Prometheus alerting rule into a Grafana provisioning rule."""
    bound = f'max without (bound) (benchd_regression_ratio{{metric="{metric}", bound="%s"}})'
    return {
        "uid": uid,
        "title": alert["alert"],
        "condition": "C",
        "data": [
            _instant_query("A", alert["expr"].strip()),
            _instant_query("LOW", bound % "low"),
            _instant_query("HIGH", bound % "high"),
            _expression("B", {"type": "reduce", "expression": "A", "reducer": "last",
                              "settings": {"mode": "dropNN"}}),
            _expression("C", {"type": "threshold", "expression": "B",
                              "conditions": [{"evaluator": {"type": "gt", "params": [0]}}]}),
        ],
        "noDataState": "OK",
        "execErrState": "Error",
        "for": alert["for"],
        "annotations": {
            "summary": alert["annotations"]["summary"],
            "description": description,
            "runbook_url": alert["annotations"]["runbook_url"],
            "dashboard_url": alert["annotations"]["dashboard_url"],
        },
        "labels": {k: v.replace("$", "$$") for k, v in alert.get("labels", {}).items()},
        "isPaused": False,
    }  # fmt: skip


def build_provisioning(rules_path: Path) -> dict[str, Any]:
    """The Grafana alerting provisioning document for every alert in :data:`GRAFANA_ALERTS`."""
    alerts = _prometheus_alerts(rules_path)
    rules = [grafana_rule(alerts[name], **spec) for name, spec in GRAFANA_ALERTS.items()]
    return {
        "apiVersion": 1,
        "groups": [
            {"orgId": 1, "name": GROUP, "folder": FOLDER, "interval": EVALUATION_INTERVAL, "rules": rules}
        ],
    }


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings as literal blocks so the PromQL stays readable."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def to_yaml(document: dict[str, Any]) -> str:
    """Serialise the provisioning document (a header comment, then stable YAML)."""
    header = (
        "# Generated by `python grafana/build.py` from deploy/prometheus/benchd-rules.yml:\n"
        "# edit those rules (or grafana/benchd_dashboards/alerting.py), not this file.\n"
        "# Grafana-managed alerts are the alternative to the Prometheus rules with Alertmanager: load one,\n"
        "# not both. Render its runbook and dashboard addresses first (deploy/render_rules.py), then put\n"
        "# the rendered copy in Grafana's provisioning/alerting folder.\n"
    )
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=4096, allow_unicode=True)
