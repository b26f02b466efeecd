"""The daemon's HTTP API under abuse, on the real server on 127.0.0.1: ids, bad bodies, webhook replays."""

from __future__ import annotations

import http.client
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from benchd.config import DaemonConfig, load_daemon_config
from benchd.history import SQLiteHistoryStore
from benchd.metrics.server import HTTPError, HTTPService, Request
from benchd.registry.webhook import sign_mlflow_payload
from benchd.service.api import API
from benchd.service.scheduler import Scheduler

SECRET = "hook-secret"
BODY = json.dumps(
    {"entity": "model_version", "action": "created", "timestamp": "2025-06-15T12:00:00+00:00",
     "data": {"name": "resnet50", "version": "7"}}
).encode()  # fmt: skip


class FlakyScheduler(Scheduler):
    """A real scheduler without jobs whose ``poll_now`` fails the first ``failures`` times."""

    def __init__(self, failures: int = 0) -> None:
        super().__init__({})
        self.failures = failures
        self.polls: list[str | None] = []

    def poll_now(self, registry: str | None = None) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("can't start new thread")
        self.polls.append(registry)


def _config(tmp_path: Path) -> DaemonConfig:
    path = tmp_path / "benchd.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data_dir": str(tmp_path / "data"),
                "registries": [
                    {"name": "ml", "type": "mlflow", "tracking_uri": "http://127.0.0.1:9",
                     "webhook_secret_env": "BENCHD_TEST_HOOK_SECRET"}
                ],
            }
        )
    )  # fmt: skip
    return load_daemon_config(path)


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[HTTPService, FlakyScheduler]]:
    monkeypatch.setenv("BENCHD_TEST_HOOK_SECRET", SECRET)
    monkeypatch.setenv("BENCHD_API_TOKEN", "tok")
    store = SQLiteHistoryStore(str(tmp_path / "benchd.sqlite"))
    scheduler = FlakyScheduler()
    api = API(_config(tmp_path), store, scheduler, lambda *a: [], lambda m, v: None, lambda: True)
    svc = HTTPService("127.0.0.1", 0, api.routes())
    svc.start()
    yield svc, scheduler
    svc.stop()
    store.close()


def _call(svc: HTTPService, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, Any]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def _hook(svc: HTTPService, delivery: str, body: bytes = BODY) -> tuple[int, Any]:
    ts = str(int(time.time()))
    headers = {
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": ts,
        "X-MLflow-Signature": sign_mlflow_payload(SECRET.encode(), delivery, ts, body),
        "Content-Type": "application/json",
    }
    return _call(svc, "POST", "/api/v1/hooks/mlflow", body, headers)


@pytest.mark.parametrize("run_id", ["1" * 25, "9" * 19, "12abc", "-1", "%C2%B2"])
def test_bad_or_huge_run_ids_are_a_json_404_never_a_500(served, run_id: str, caplog) -> None:
    svc, _ = served
    status, body = _call(svc, "GET", f"/api/v1/runs/{run_id}")
    assert status == 404 and body["error"] == "not_found"
    assert "run ids" in body["reason"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize("run_id", ["１２", "²", "٣"])
def test_non_ascii_digits_are_not_run_ids(tmp_path: Path, run_id: str) -> None:
    store = SQLiteHistoryStore(str(tmp_path / "benchd.sqlite"))
    try:
        api = API(_config(tmp_path), store, FlakyScheduler(), lambda *a: [], lambda m, v: None, lambda: True)
        with pytest.raises(HTTPError) as raised:
            api.get_run(Request("GET", f"/api/v1/runs/{run_id}"))
        assert raised.value.status == 404 and "run ids are integers" in raised.value.reason
    finally:
        store.close()


def test_largest_possible_run_id_is_looked_up(served) -> None:
    svc, _ = served
    status, body = _call(svc, "GET", f"/api/v1/runs/{'9' * 18}")
    assert status == 404 and body == {"error": "not_found", "reason": f"no run {'9' * 18}"}


def test_deeply_nested_request_body_is_a_400(served, caplog) -> None:
    svc, _ = served
    nested = b'{"model":' * 100_000 + b"1" + b"}" * 100_000
    status, body = _call(svc, "POST", "/api/v1/runs", nested, {"Authorization": "Bearer tok"})
    assert status == 400 and body["error"] == "invalid_json"
    assert not [r for r in caplog.records if r.exc_info]


def test_a_failed_delivery_can_be_retried_and_a_replay_is_still_refused(served) -> None:
    svc, scheduler = served
    scheduler.failures = 1
    delivery = str(uuid.uuid4())
    status, body = _hook(svc, delivery)
    assert status == 500 and body["error"] == "internal_error"
    status, body = _hook(svc, delivery)  # MLflow's retry: same delivery id
    assert status == 202 and scheduler.polls == ["ml"]
    status, body = _hook(svc, delivery)  # now a replay of an accepted delivery
    assert status == 400 and "replay" in body["reason"]


def test_a_refused_delivery_does_not_use_up_its_id(served) -> None:
    svc, scheduler = served
    delivery = str(uuid.uuid4())
    status, body = _hook(svc, delivery, body=b'{"entity": "model_version"}')
    assert status == 400 and body["error"] == "bad_delivery"
    status, body = _hook(svc, delivery, body=b"[" * 100_000)
    assert status == 400 and "nested too deeply" in body["reason"]
    status, _ = _hook(svc, delivery)
    assert status == 202 and scheduler.polls == ["ml"]
