"""Fixtures for the deploy-file tests: parsed documents and schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from deploy_support import FIXTURES, KUBE, RULES_FILE, load_yaml


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    """deploy/docker-compose.yml, parsed (YAML anchors and merge keys resolved)."""
    return load_yaml(KUBE.parent / "docker-compose.yml")


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    """The Compose Specification's JSON schema (vendored by check-jsonschema, Apache-2.0)."""
    return json.loads((FIXTURES / "compose-spec.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def operator_schema() -> dict[str, Any]:
    """The ServiceMonitor / PrometheusRule subset of the prometheus-operator CRD schemas."""
    return json.loads((FIXTURES / "deploy" / "prometheus-operator.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def manifests() -> dict[str, dict[str, Any]]:
    """Every Kubernetes manifest in deploy/kubernetes by file name (kustomization.yaml excluded)."""
    out = {}
    for path in sorted(KUBE.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            out[path.name] = load_yaml(path)
    return out


@pytest.fixture(scope="session")
def rule_groups() -> list[dict[str, Any]]:
    """The groups of deploy/prometheus/benchd-rules.yml, the one source of benchd's alert rules."""
    doc = load_yaml(RULES_FILE)
    assert isinstance(doc, dict) and doc.get("groups"), f"{RULES_FILE} has no rule groups"
    return doc["groups"]
