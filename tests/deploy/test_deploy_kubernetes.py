"""Kubernetes manifests: API and CRD schemas, the generated PrometheusRule and ConfigMap, their wiring."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import DEPLOY, KUBE, RULES_FILE, load_yaml

CORE = ["namespace.yaml", "configmap.yaml", "daemonset.yaml", "service.yaml"]
CRDS = ["servicemonitor.yaml", "prometheusrule.yaml"]
# The oldest Kubernetes the manifests promise to work on, and the newest the validator knows ("latest",
# resolved inside the test: collection must not need the optional validator package).
K8S_VERSIONS = ["1.30.0", "latest"]
GENERATOR = KUBE / "generate_prometheusrule.py"


@pytest.fixture(scope="module")
def kubernetes_validate() -> Any:
    """The ``kubernetes_validate`` package (the ``test`` extra), imported only by the tests that use it."""
    import kubernetes_validate

    return kubernetes_validate


def _k8s_version(kubernetes_validate: Any, version: str) -> str:
    return kubernetes_validate.latest_version() if version == "latest" else version


def _crd_validator(schema: dict[str, Any], kind: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"})


def _container(manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
    containers = manifests["daemonset.yaml"]["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["benchd"]
    return containers[0]


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("name", CORE)
def test_core_manifest_matches_the_kubernetes_openapi_schema(manifests, name, version, kubernetes_validate):
    kubernetes_validate.validate(manifests[name], _k8s_version(kubernetes_validate, version), strict=True)


def test_strict_validation_rejects_an_unknown_container_field(manifests, kubernetes_validate):
    broken = copy.deepcopy(manifests["daemonset.yaml"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {"path": "/readyz"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("name", CRDS)
def test_operator_resource_matches_the_crd_schema(manifests, operator_schema, name):
    doc = manifests[name]
    errors = [f"{list(e.absolute_path)}: {e.message}"
              for e in _crd_validator(operator_schema, doc["kind"]).iter_errors(doc)]
    assert errors == []


def test_crd_schema_rejects_a_bad_duration_and_an_unknown_field(manifests, operator_schema):
    monitor = copy.deepcopy(manifests["servicemonitor.yaml"])
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    assert not _crd_validator(operator_schema, "ServiceMonitor").is_valid(monitor)
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
            "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "1", "fore": "5m"}]}]}}
    assert not _crd_validator(operator_schema, "PrometheusRule").is_valid(rule)


def test_kustomization_lists_every_manifest_exactly_once(manifests):
    kustomization = load_yaml(KUBE / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == sorted(manifests)
    assert len(set(kustomization["resources"])) == len(kustomization["resources"])
    namespaces = {d["metadata"].get("namespace") for d in manifests.values() if d["kind"] != "Namespace"}
    assert namespaces == {kustomization["namespace"]} == {manifests["namespace.yaml"]["metadata"]["name"]}


def _clean_env() -> dict[str, str]:
    """The environment without BENCHD_DOCS_URL / BENCHD_GRAFANA_URL: the committed manifest uses defaults."""
    return {k: v for k, v in os.environ.items() if k not in ("BENCHD_DOCS_URL", "BENCHD_GRAFANA_URL")}


def test_committed_generated_manifests_are_up_to_date():
    assert RULES_FILE.is_file(), f"{RULES_FILE} is missing: it is the source of prometheusrule.yaml"
    result = subprocess.run([sys.executable, str(GENERATOR), "--check"], capture_output=True, text=True,
                            timeout=60, env=_clean_env())
    assert result.returncode == 0, result.stderr


def test_prometheusrule_carries_the_rules_files_groups_with_addresses_rendered(manifests):
    text = RULES_FILE.read_text(encoding="utf-8")
    rendered = text.replace("${BENCHD_DOCS_URL}", "https://github.com/benchd/benchd/blob/main")
    rendered = rendered.replace("${BENCHD_GRAFANA_URL}", "http://localhost:3000")
    assert manifests["prometheusrule.yaml"]["spec"] == {"groups": yaml.safe_load(rendered)["groups"]}
    assert "${BENCHD_" not in (KUBE / "prometheusrule.yaml").read_text(encoding="utf-8")


def test_generator_renders_the_addresses_it_is_given(tmp_path):
    argv = [sys.executable, str(GENERATOR), "--out-dir", str(tmp_path), "--docs-url",
            "https://docs.example.com/benchd", "--grafana-url", "https://grafana.example.com/"]
    subprocess.run(argv, check=True, timeout=60, env=_clean_env())
    rules = [r for g in load_yaml(tmp_path / "prometheusrule.yaml")["spec"]["groups"] for r in g["rules"]]
    alerts = [r for r in rules if "alert" in r]
    assert alerts and all(r["annotations"]["runbook_url"].startswith("https://docs.example.com/benchd/README.md#")
                          for r in alerts)  # fmt: skip
    assert all(r["annotations"]["dashboard_url"].startswith("https://grafana.example.com/d/") for r in alerts)
    bad = subprocess.run([*argv[:4], "--docs-url", "docs.example.com"], capture_output=True, text=True,
                         timeout=60, env=_clean_env())  # fmt: skip
    assert bad.returncode == 2 and "BENCHD_DOCS_URL must be an absolute http(s) URL" in bad.stderr


def test_generator_copies_rule_groups_verbatim(tmp_path):
    rules = {"groups": [
        {"name": "latency", "interval": "1m", "rules": [
            {"alert": "P99Regressed", "expr": 'benchd_regression_detected{metric="p99_latency"}\n  == 1\n',
             "for": "10m", "keep_firing_for": "15m", "labels": {"severity": "critical"},
             "annotations": {"summary": "{{ $labels.model }} {{ $labels.version }}: P99 +{{ $value }}"}},
            {"record": "benchd:ratio:max", "expr": "max by (model) (benchd_regression_ratio)"}]},
        {"name": "daemon", "rules": [{"alert": "Down", "expr": "up == 0", "for": "5m"}]},
    ]}
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    argv = [sys.executable, str(GENERATOR), "--rules", str(tmp_path / "rules.yml"),
            "--config", str(DEPLOY / "benchd.yaml"), "--out-dir", str(tmp_path)]
    subprocess.run(argv, check=True, timeout=60)
    assert load_yaml(tmp_path / "prometheusrule.yaml")["spec"] == rules
    assert subprocess.run([*argv, "--check"], timeout=60).returncode == 0
    rules["groups"][1]["rules"][0]["for"] = "10m"
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules), encoding="utf-8")
    stale = subprocess.run([*argv, "--check"], capture_output=True, text=True, timeout=60)
    assert stale.returncode == 1 and "prometheusrule.yaml" in stale.stderr


def test_configmap_holds_deploy_benchd_yaml_verbatim(manifests):
    data = manifests["configmap.yaml"]["data"]
    assert data == {"benchd.yaml": (DEPLOY / "benchd.yaml").read_text(encoding="utf-8")}


def test_daemonset_targets_the_gpu_pool_with_one_dedicated_gpu(manifests):
    pod = manifests["daemonset.yaml"]["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
    resources = _container(manifests)["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == resources["requests"]["nvidia.com/gpu"] == 1
    assert "cpu" not in resources["limits"], "a CPU limit throttles and distorts latencies"


def test_daemonset_runs_non_root_with_a_read_only_root(manifests):
    pod = manifests["daemonset.yaml"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
    context = _container(manifests)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["capabilities"]["drop"] == ["ALL"]
    writable = {m["mountPath"] for m in _container(manifests)["volumeMounts"] if not m.get("readOnly")}
    assert writable == {"/var/lib/benchd", "/tmp", "/dev/shm"}
    # Only the init container runs as root, and it can do nothing but chown the hostPath.
    (init,) = pod["initContainers"]
    assert init["securityContext"]["capabilities"] == {"drop": ["ALL"], "add": ["CHOWN"]}
    assert init["command"][:2] == ["chown", f"{pod['securityContext']['runAsUser']}:"
                                            f"{pod['securityContext']['runAsGroup']}"]


def test_daemonset_mounts_config_store_and_probes_the_http_port(manifests):
    pod = manifests["daemonset.yaml"]["spec"]["template"]["spec"]
    container = _container(manifests)
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    config_volume = mounts[str(config_path.parent)]["configMap"]
    assert config_volume["name"] == manifests["configmap.yaml"]["metadata"]["name"]
    assert config_path.name in manifests["configmap.yaml"]["data"]
    assert mounts["/var/lib/benchd"]["hostPath"] == {"path": "/var/lib/benchd", "type": "DirectoryOrCreate"}
    assert container["ports"] == [{"name": "http", "containerPort": 9777, "protocol": "TCP"}]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    secrets = [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert {e["name"] for e in secrets} >= {"BENCHD_API_TOKEN", "MLFLOW_TRACKING_TOKEN"}
    assert all(e["valueFrom"]["secretKeyRef"]["optional"] is True for e in secrets)


def test_service_and_servicemonitor_select_the_daemonset_pods(manifests):
    pod_labels = manifests["daemonset.yaml"]["spec"]["template"]["metadata"]["labels"]
    service = manifests["service.yaml"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    monitor = manifests["servicemonitor.yaml"]["spec"]
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    assert [(e["port"], e["path"]) for e in monitor["endpoints"]] == [("http", "/metrics")]
    assert {e["port"] for e in monitor["endpoints"]} <= service_ports
