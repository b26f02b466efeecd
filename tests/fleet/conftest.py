"""Fixtures for fleet tests: a PostgreSQL cluster, a no-op model, daemons of two fake hardware classes.

Every daemon is a real ``benchd run`` process (tests/daemon/conftest.py's harness) on one shared
PostgreSQL store, watching one shared local registry folder; fake GPUs named ``A100`` and ``H100`` give
the two hardware classes ``fake-a100-drv550`` and ``fake-h100-drv550``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_model
from tests.daemon.conftest import DaemonProcess
from tests.pg_server import PGServer, running_pg_server

#: Tiny runs: the fleet test is about coordination, not measurement.
TINY_BENCHMARK = {
    "device": "auto",
    "scenarios": {"single_stream": {}},
    "defaults": {
        "warmup": "0.02s",
        "warmup_queries": 2,
        "min_duration": "0.1s",
        "max_duration": "1s",
        "min_query_count": 10,
    },
    "timeout": "60s",
}
CLASSES = {"A100": "fake-a100-drv550", "H100": "fake-h100-drv550"}


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PGServer]:
    """A PostgreSQL cluster for the whole session (fails, never skips, when it cannot start)."""
    with running_pg_server() as server:
        yield server


@pytest.fixture(scope="session")
def noop_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model version folder whose forward sleeps 0.5 ms (pickled: the registry allows it)."""
    return write_model(tmp_path_factory.mktemp("noop") / "noop", "sleep", sleep_s=0.0005)


@pytest.fixture
def fleet_db(pg_server: PGServer) -> Iterator[str]:
    """A fresh PostgreSQL database for one fleet, dropped afterwards."""
    url = pg_server.create_database("fleet")
    yield url
    pg_server.drop_database(url)


class Fleet:
    """Daemons sharing one store and one registry folder; :meth:`publish` adds a model version."""

    def __init__(self, root: Path, store_url: str) -> None:
        self.root = root
        self.store_url = store_url
        self.registry = root / "registry"
        self.registry.mkdir(parents=True, exist_ok=True)
        self.daemons: dict[str, DaemonProcess] = {}

    def add(self, host: str, gpu_name: str, lease_s: float = 3.0) -> DaemonProcess:
        """Configure (not start) a daemon named ``host`` with one fake GPU called ``gpu_name``."""
        extra: dict[str, Any] = {
            "store": {"url": f"{self.store_url}?lease_s={lease_s}&pool_max=4"},
            "devices": {"mode": "fake", "fake": {"power_w": 200, "name": gpu_name}},
            "registries": [
                {
                    "name": "local",
                    "type": "local",
                    "root": str(self.registry),
                    "poll_interval": "0.5s",
                    "settle": "0.3s",
                    "allow_pickle": True,
                }
            ],
            "benchmark": TINY_BENCHMARK,
            "verdict": {"mode": "off"},
            "shutdown_grace": "5s",
        }
        daemon = DaemonProcess(self.root / host, extra, env={"BENCHD_HOST": host})
        self.daemons[host] = daemon
        return daemon

    def publish(self, model_folder: Path, model: str, version: str) -> None:
        """Copy a version into the shared registry folder (complete before it becomes visible)."""
        staging = self.root / "staging" / model / version
        shutil.copytree(model_folder, staging)
        (self.registry / model).mkdir(parents=True, exist_ok=True)
        staging.rename(self.registry / model / version)

    def close(self) -> None:
        for daemon in self.daemons.values():
            daemon.close()


@pytest.fixture
def fleet_factory(tmp_path: Path) -> Iterator[Callable[[str], Fleet]]:
    made: list[Fleet] = []

    def make(store_url: str) -> Fleet:
        fleet = Fleet(tmp_path, store_url)
        made.append(fleet)
        return fleet

    yield make
    for fleet in made:
        fleet.close()
