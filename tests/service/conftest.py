"""Fixtures for direct tests of the daemon's parts (no daemon subprocess).

Each part is built from real pieces: a SQLite history store in ``tmp_path``, a local-folder registry
watcher on a tmp folder (its cursor in that store), fake devices for the hardware, and a config parsed
from YAML the way ``benchd run`` parses it. Only time is injected where a test needs to move it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchd.config import DaemonConfig, load_daemon_config
from benchd.history import SQLiteHistoryStore
from benchd.registry import LocalFolderWatcher
from tests.service.api_support import Served, serve_api
from tests.service.parts import BASE_CONFIG, FakeClock, Registry


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteHistoryStore]:
    s = SQLiteHistoryStore(str(tmp_path / "state" / "benchd.sqlite"))
    yield s
    s.close()


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models")


@pytest.fixture
def watcher(registry: Registry, store: SQLiteHistoryStore) -> LocalFolderWatcher:
    return LocalFolderWatcher("local", registry.root, cursor_store=store, settle_s=0.0)


@pytest.fixture
def make_config(tmp_path: Path, registry: Registry) -> Callable[..., DaemonConfig]:
    """Write a daemon config (BASE_CONFIG, the local registry, ``overrides``); load it as benchd run does."""

    def make(**overrides: Any) -> DaemonConfig:
        doc: dict[str, Any] = {
            **BASE_CONFIG,
            "data_dir": str(tmp_path / "data"),
            "registries": [
                {
                    "name": "local",
                    "type": "local",
                    "root": str(registry.root),
                    "settle": "0s",
                    "allow_pickle": True,
                }
            ],
        }
        doc.update(overrides)
        path = tmp_path / "benchd.yaml"
        path.write_text(yaml.safe_dump(doc))
        return load_daemon_config(path)

    return make


@pytest.fixture
def served(
    tmp_path: Path,
    make_config: Callable[..., DaemonConfig],
    store: SQLiteHistoryStore,
    registry: Registry,
    watcher: LocalFolderWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    """The API served on 127.0.0.1 (see api_support.py)."""
    with serve_api(tmp_path, make_config, store, registry, watcher, monkeypatch) as api:
        yield api
