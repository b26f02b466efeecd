"""The Prometheus rules: promtool checks them and runs their unit tests; structure checked here."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from tests.system_tools import require_tool

from benchd.metrics import names

REPO = Path(__file__).resolve().parents[2]
PROM_DIR = REPO / "deploy" / "prometheus"
RENDER = REPO / "deploy" / "render_rules.py"
RULES = PROM_DIR / "benchd-rules.yml"
RULE_TESTS = sorted((PROM_DIR / "tests").glob("*.test.yml"))
RUNBOOK = "${BENCHD_DOCS_URL}/README.md#alert-"
REGRESSION_ALERTS = ("BenchdP99LatencyRegression", "BenchdThroughputRegression", "BenchdEnergyRegression")


def _promtool() -> str:
    return require_tool("promtool")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), *args], capture_output=True, text=True, timeout=120, check=False)


def _alerts() -> list[dict]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [r for g in groups for r in g["rules"] if "alert" in r]


def test_promtool_check_rules_passes() -> None:
    result = _run("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_prometheus_config_is_valid() -> None:
    result = _run("check", "config", str(PROM_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(test_file: Path) -> None:
    result = _run("test", "rules", str(test_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_exist() -> None:
    assert len(RULE_TESTS) >= 2


def test_every_alert_has_severity_summary_description_and_readme_runbook() -> None:
    alerts = _alerts()
    assert len(alerts) >= 9
    for rule in alerts:
        name = rule["alert"]
        assert re.fullmatch(r"Benchd[A-Za-z0-9]+", name), name
        if name not in REGRESSION_ALERTS:  # those choose critical or warning by role (tested below)
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        annotations = rule["annotations"]
        assert annotations["summary"] and annotations["description"], name
        assert annotations["runbook_url"] == RUNBOOK + name.lower(), name
        assert annotations["dashboard_url"].startswith("${BENCHD_GRAFANA_URL}/d/benchd-"), name
        assert "for" in rule, f"{name} has no for: (alerts latch on for:)"


def test_addresses_are_placeholders_named_once_each_never_hard_coded() -> None:
    text = "\n".join(line for line in RULES.read_text().splitlines() if not line.lstrip().startswith("#"))
    assert not re.search(r"https?://", text), "a hard-coded address in the rules"
    tokens = set(re.findall(r"\$\{(BENCHD_[A-Z_]+)\}", text))
    assert tokens == {"BENCHD_DOCS_URL", "BENCHD_GRAFANA_URL"}
    alerts = _alerts()
    assert text.count("${BENCHD_DOCS_URL}") == len(alerts)  # in every runbook_url, nowhere else
    assert text.count("${BENCHD_GRAFANA_URL}") == len(alerts)  # in every dashboard_url


def test_the_rendered_rules_have_the_deployed_addresses_and_no_placeholder_left(tmp_path: Path) -> None:
    rendered = tmp_path / "benchd-rules.yml"
    result = subprocess.run(
        [sys.executable, str(RENDER), str(RULES), str(rendered), "--docs-url",
         "https://git.example.com/ml/benchd/-/blob/main/", "--grafana-url", "https://grafana.example.com"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    text = rendered.read_text()
    assert "${BENCHD_" not in text
    assert _run("check", "rules", str(rendered)).returncode == 0
    groups = yaml.safe_load(text)["groups"]
    for rule in (r for g in groups for r in g["rules"] if "alert" in r):
        name = rule["alert"]
        assert rule["annotations"]["runbook_url"] == (
            f"https://git.example.com/ml/benchd/-/blob/main/README.md#alert-{name.lower()}"
        )
        assert rule["annotations"]["dashboard_url"].startswith("https://grafana.example.com/d/benchd-")


def test_render_refuses_a_bad_base_url(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(RENDER), str(RULES), str(tmp_path / "r.yml"), "--grafana-url", "grafana:3000"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2 and "BENCHD_GRAFANA_URL must be an absolute http(s) URL" in result.stderr
    assert not (tmp_path / "r.yml").exists()


def test_regression_alerts_page_for_the_champion_and_latch() -> None:
    for rule in (r for r in _alerts() if r["alert"] in REGRESSION_ALERTS):
        assert (
            rule["labels"]["severity"]
            == '{{ if eq $labels.role "champion" }}critical{{ else }}warning{{ end }}'
        )
        assert 'role="champion"' in rule["expr"] and 'role="candidate"' in rule["expr"]
        assert rule["for"] == "1m" and rule["keep_firing_for"] == "10m", rule["alert"]


def test_required_alerts_are_present() -> None:
    names = {r["alert"] for r in _alerts()}
    assert {
        "BenchdP99LatencyRegression", "BenchdThroughputRegression", "BenchdEnergyRegression",
        "BenchdRunsFailing", "BenchdRegistryUnreachable", "BenchdNoSuccessfulRun", "BenchdGPUThrottled",
        "BenchdDown", "BenchdAbsent",
    } <= names  # fmt: skip


def test_every_alert_has_a_firing_and_a_non_firing_unit_test() -> None:
    fires: set[str] = set()
    silent: set[str] = set()
    for test_file in RULE_TESTS:
        for group in yaml.safe_load(test_file.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else silent).add(case["alertname"])
    names = {r["alert"] for r in _alerts()}
    assert names - fires == set(), "alerts without a firing test"
    assert names - silent == set(), "alerts without a must-not-fire test"


def test_recording_rules_follow_level_metric_operations() -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    records = [r["record"] for g in groups for r in g["rules"] if "record" in r]
    assert records
    for name in records:
        assert re.fullmatch(r"[a-z_]+:benchd_[a-z0-9_]+:[a-z0-9_]+", name), name


def test_p99_alert_annotations_carry_the_interval_and_versions() -> None:
    rule = next(r for r in _alerts() if r["alert"] == "BenchdP99LatencyRegression")
    text = rule["annotations"]["description"] + rule["annotations"]["summary"]
    for needle in ("$labels.version", "$labels.baseline_version", "bound='low'", "bound='high'"):
        assert needle in text


def test_rules_only_use_contract_metrics() -> None:
    known = {m.name for m in names.ALL_METRICS} | {"up"}
    groups = yaml.safe_load(RULES.read_text())["groups"]
    for rule in (r for g in groups for r in g["rules"]):
        used = set(re.findall(r"(?<![:\w])(benchd_[a-z0-9_]+|up)\b", rule["expr"]))
        assert used and used <= known, (rule.get("alert") or rule.get("record"), used - known)
