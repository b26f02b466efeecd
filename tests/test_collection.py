"""The suite collects without the optional test packages, so ``pytest -m gpu`` runs on a ``.[dev]`` install.

A test module that imports an optional package (MLflow, psycopg, the deploy validators, the Grafana SDK) at
module level stops the whole collection where that package is missing. Such imports belong inside the
fixtures and tests that need them; those tests then fail (never skip) where the package is missing.
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO, SLOW_TESTS

#: Import names of what the ``test`` and ``postgres`` extras add to ``dev``.
OPTIONAL_MODULES = (
    "mlflow",
    "grafana_foundation_sdk",
    "check_jsonschema",
    "kubernetes_validate",
    "hadolint",
    "psycopg",
    "psycopg_pool",
)

#: Modules known to import an optional package at module level, with who must fix it. Keep it empty:
#: each entry is a defect, listed so that a new offender still fails this test while the old one waits.
KNOWN_OFFENDERS: dict[str, str] = {}

_COLLECT = f"""
import importlib.abc, sys
BLOCKED = {OPTIONAL_MODULES!r}

class Missing(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: not in .[dev])", name=name)
        return None

sys.meta_path.insert(0, Missing())
import pytest
sys.exit(pytest.main(["--collect-only", "-q", "-p", "no:cacheprovider", "-m", "gpu"]))
"""


def test_collection_needs_no_optional_package() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _COLLECT], cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )
    out = proc.stdout + proc.stderr
    errors = {
        line.split()[1].split("::")[0]
        for line in out.splitlines()
        if line.startswith("ERROR ") and len(line.split()) > 1
    }
    assert errors == set(KNOWN_OFFENDERS), f"collection errors without the optional packages:\n{out[-6000:]}"
    assert "test_gpu_devices.py" in out, out[-3000:]  # and the gpu tests are collected


def test_every_test_listed_as_slow_exists_and_is_marked() -> None:
    """A renamed test would silently leave SLOW_TESTS and run in the fast subset."""
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-m", "slow"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    collected = {line.split("[")[0] for line in proc.stdout.splitlines() if "::" in line}
    assert not SLOW_TESTS - collected, (
        f"listed as slow but not collected as slow: {sorted(SLOW_TESTS - collected)}"
    )
