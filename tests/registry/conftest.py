"""Fixtures for registry tests: one real MLflow server per session, a real SQLite cursor store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.mlflow_server import MLflowSeeder, start_mlflow_server

from benchd.history import SQLiteHistoryStore


@pytest.fixture(scope="session")
def mlflow_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def mlflow_url(mlflow_data_dir: Path) -> Iterator[str]:
    """A real MLflow 3.x tracking server on 127.0.0.1 (fails, never skips, when it cannot start)."""
    base_url, stop = start_mlflow_server(mlflow_data_dir)
    try:
        yield base_url
    finally:
        stop()


@pytest.fixture(scope="session")
def mlflow_db(mlflow_url: str, mlflow_data_dir: Path) -> Path:
    """The SQLite backend file of the session's MLflow server."""
    return mlflow_data_dir / "mlflow.db"


@pytest.fixture
def seeder(mlflow_url: str) -> MLflowSeeder:
    return MLflowSeeder(mlflow_url)


@pytest.fixture
def cursor_store(tmp_path: Path) -> Iterator[SQLiteHistoryStore]:
    store = SQLiteHistoryStore(str(tmp_path / "benchd.sqlite"))
    yield store
    store.close()
