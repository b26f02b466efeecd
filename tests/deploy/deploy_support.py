"""Paths and small helpers shared by the deploy-file tests (imported by name: tests/deploy is on sys.path)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
KUBE = DEPLOY / "kubernetes"
FIXTURES = REPO / "tests" / "fixtures"
RULES_FILE = DEPLOY / "prometheus" / "benchd-rules.yml"


def load_yaml(path: Path) -> Any:
    """Parse one YAML document, failing the test with the path when the file is missing."""
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tool(name: str, install_hint: str) -> str:
    """Path of a command-line validator: the virtualenv's bin first, then PATH. Fails when absent.

    A missing validator fails the test rather than skipping it: a skipped check is not a pass.
    """
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` not found; install it: {install_hint}")
    return found
