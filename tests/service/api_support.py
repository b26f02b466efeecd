"""The API test harness: the real API and HTTPService on 127.0.0.1 (port 0), built from real parts.

The webhook registry ``ml`` is configured as an MLflow registry (as the API requires); its polling job
watches a local folder, since the API's part ends at asking the scheduler to poll the registry named.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from benchd.config import DaemonConfig
from benchd.history import SQLiteHistoryStore
from benchd.metrics.health import DaemonStats
from benchd.metrics.server import HTTPService
from benchd.records import ModelVersion
from benchd.registry import LocalFolderWatcher
from benchd.service.api import API
from benchd.service.scheduler import PollJob, Scheduler
from tests.service.parts import Registry, StoreQueue

TOKEN_ENV = "BENCHD_TEST_API_TOKEN"
SECRET_ENV = "BENCHD_TEST_HOOK_SECRET"
TOKEN = "t0ken"
SECRET = "s3cret"
HOOK = "/api/v1/hooks/mlflow"


class RecordingScheduler(Scheduler):
    """The real scheduler, remembering which registries a request asked it to poll (synchronously)."""

    def __init__(self, jobs: dict[str, PollJob]) -> None:
        super().__init__(jobs)
        self.asked: list[str | None] = []

    def poll_now(self, registry: str | None = None) -> None:
        self.asked.append(registry)
        super().poll_now(registry)


@dataclass
class Served:
    """The API on a real port, with the parts a test inspects."""

    url: str
    port: int
    api: API
    store: SQLiteHistoryStore
    scheduler: RecordingScheduler
    stats: DaemonStats
    registry: Registry
    hook_registry: Registry
    busy: set[int] = field(default_factory=set)

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any, dict[str, str]]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw, status, got = resp.read(), resp.status, dict(resp.headers)
        except urllib.error.HTTPError as e:
            raw, status, got = e.read(), e.code, dict(e.headers)
        return status, json.loads(raw), got

    def get(self, path: str) -> tuple[int, Any]:
        status, body, _ = self.request("GET", path)
        return status, body

    def post_run(self, body: Any, token: str | None = TOKEN, raw: bytes | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else json.dumps(body).encode()
        status, answer, _ = self.request("POST", "/api/v1/runs", data, headers)
        return status, answer


def _config(make_config, tmp_path: Path) -> DaemonConfig:
    return make_config(
        http={"host": "127.0.0.1", "port": 0, "api_token_env": TOKEN_ENV, "max_body_bytes": 4096},
        registries=[
            {"name": "local", "type": "local", "root": str(tmp_path / "models"), "settle": "0s"},
            {
                "name": "ml",
                "type": "mlflow",
                "tracking_uri": "http://127.0.0.1:9",
                "webhook_secret_env": SECRET_ENV,
                "poll_interval": "1h",
            },
        ],
    )


@contextmanager
def serve_api(
    tmp_path: Path,
    make_config: Callable[..., DaemonConfig],
    store: SQLiteHistoryStore,
    registry: Registry,
    watcher: LocalFolderWatcher,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Served]:
    """Serve the API with the token and webhook secret set; stop the server afterwards."""
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    monkeypatch.setenv(SECRET_ENV, SECRET)
    config = _config(make_config, tmp_path)
    hook_registry = Registry(tmp_path / "ml-models")
    stats = DaemonStats()
    queue = StoreQueue(store, config)
    jobs = {
        "local": PollJob(watcher, store.record_version, queue, stats, 3600.0),
        "ml": PollJob(
            LocalFolderWatcher("ml", hook_registry.root, cursor_store=store, settle_s=0.0),
            store.record_version,
            queue,
            stats,
            3600.0,
        ),
    }
    scheduler = RecordingScheduler(jobs)  # never started: polls happen only when a request asks

    def find_version(model: str, version: str) -> ModelVersion | None:  # as the daemon's app does
        mv = store.get_version(model, version)
        if mv is None:
            for job in jobs.values():
                job(force=True)
            mv = store.get_version(model, version)
        return mv

    busy: set[int] = set()
    api = API(config, store, scheduler, queue, find_version, scheduler.ready, lambda run_id: run_id in busy)
    service = HTTPService("127.0.0.1", 0, api.routes(), max_body_bytes=config.http.max_body_bytes)
    service.start()
    try:
        yield Served(service.url, service.port, api, store, scheduler, stats, registry, hook_registry, busy)
    finally:
        service.stop()
