"""Fixtures for registry tests: a real SQLite cursor store (the MLflow server is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from benchd.history import SQLiteHistoryStore


@pytest.fixture
def cursor_store(tmp_path: Path) -> Iterator[SQLiteHistoryStore]:
    store = SQLiteHistoryStore(str(tmp_path / "benchd.sqlite"))
    yield store
    store.close()
