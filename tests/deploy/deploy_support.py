"""Paths and small helpers shared by the deploy-file tests (imported by name: tests/deploy is on sys.path)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from tests.system_tools import require_tool

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
FIXTURES = REPO / "tests" / "fixtures"
RULES_FILE = DEPLOY / "prometheus" / "benchd-rules.yml"


def load_yaml(path: Path) -> Any:
    """Parse one YAML document, failing the test with the path when the file is missing."""
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tool(name: str) -> str:
    """Path of a command-line validator (see :func:`tests.system_tools.require_tool`): fails when absent."""
    return require_tool(name)
