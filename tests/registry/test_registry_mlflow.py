"""The MLflow watcher against a real MLflow 3.17 tracking server on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.mlflow_server import MLflowSeeder, free_port

from benchd.errors import RegistryError
from benchd.history import SQLiteHistoryStore
from benchd.registry import (
    MLflowAPIError,
    MLflowAuth,
    MLflowWatcher,
    parse_mlflow_event,
    verify_mlflow_signature,
)
from benchd.registry.mlflow import cache_folder_name

pytestmark = pytest.mark.slow  # starts a real MLflow server (once per session)

FILES = {"model.pt2": b"\x01" * 1000, "benchd.yaml": b"inputs: [{shape: [1, 3], dtype: float32}]\n"}


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _watcher(url: str, tmp_path: Path, store, **kw) -> MLflowWatcher:
    kw.setdefault("auth", MLflowAuth())
    return MLflowWatcher("prod", url, cache_dir=tmp_path / "cache", cursor_store=store, **kw)


class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 500
    body = b'{"error_code": "INTERNAL_ERROR", "message": "database is on fire"}'
    requests: list[tuple[str, dict[str, str], bytes]] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        type(self).requests.append((self.path, dict(self.headers), self.rfile.read(length)))
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = _answer  # noqa: N815 - http.server names

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("Recorder", (_Recorder,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_poll_reports_each_version_once_and_the_cursor_survives_restarts(
    mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path
) -> None:
    model = _name("resnet")
    seeder.create_model(model)
    v1 = seeder.create_version(model, FILES, tags={"git_sha": "abc1"})
    db = str(tmp_path / "benchd.sqlite")
    store = SQLiteHistoryStore(db)
    watcher = _watcher(mlflow_url, tmp_path, store, models=[model])
    [mv] = watcher.poll()
    assert (mv.model, mv.version, mv.registry) == (model, v1, "prod")
    assert mv.source_uri.startswith("mlflow-artifacts:/") and mv.created_unix_s > 1e9
    assert ("git_sha", "abc1") in mv.tags and mv.path == ""
    assert watcher.poll() == []
    v2 = seeder.create_version(model, FILES)
    v3 = seeder.create_version(model, FILES)
    store.close()

    store = SQLiteHistoryStore(db)  # the daemon restarts
    restarted = _watcher(mlflow_url, tmp_path, store, models=[model])
    assert [mv.version for mv in restarted.poll()] == [v2, v3]
    assert restarted.poll() == []
    assert store.get_cursor("prod", model) == v3
    store.close()


def test_paging_returns_every_version_in_order(
    mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path, cursor_store
) -> None:
    model = _name("paged")
    seeder.create_model(model)
    versions = [seeder.create_version(model, {"benchd.yaml": b"x"}) for _ in range(5)]
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, models=[model], page_size=2)
    assert [mv.version for mv in watcher.poll()] == versions
    assert watcher.poll() == []


def test_all_registered_models_are_watched_when_none_are_named(
    mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path, cursor_store
) -> None:
    a, b = _name("all-a"), _name("all-b")
    for m in (a, b):
        seeder.create_model(m)
        seeder.create_version(m, {"benchd.yaml": b"x"})
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, page_size=2)
    assert {a, b} <= set(watcher.registered_models())
    found = {(mv.model, mv.version) for mv in watcher.poll()}
    assert {(a, "1"), (b, "1")} <= found
    assert not {(a, "1"), (b, "1")} & {(mv.model, mv.version) for mv in watcher.poll()}


def test_a_pending_version_holds_the_cursor_until_ready(
    mlflow_url: str, mlflow_db: Path, seeder: MLflowSeeder, tmp_path: Path, cursor_store
) -> None:
    model = _name("pending")
    seeder.create_model(model)
    v1, v2, v3 = (seeder.create_version(model, {"benchd.yaml": b"x"}) for _ in range(3))

    def set_status(version: str, status: str) -> None:
        with sqlite3.connect(mlflow_db) as conn:
            n = conn.execute(
                "UPDATE model_versions SET status = ? WHERE name = ? AND version = ?",
                (status, model, int(version)),
            ).rowcount
        assert n == 1

    set_status(v2, "PENDING_REGISTRATION")
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, models=[model])
    assert [mv.version for mv in watcher.poll()] == [v1]  # v3 waits behind the pending v2
    assert watcher.poll() == []
    set_status(v2, "READY")
    assert [mv.version for mv in watcher.poll()] == [v2, v3]
    set_status(v3, "FAILED_REGISTRATION")
    v4 = seeder.create_version(model, {"benchd.yaml": b"x"})
    assert [mv.version for mv in watcher.poll()] == [v4]


def test_champion_alias(mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path, cursor_store) -> None:
    model = _name("champ")
    seeder.create_model(model)
    v1 = seeder.create_version(model, FILES)
    seeder.create_version(model, FILES)
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, models=[model])
    assert watcher.champion(model) is None
    seeder.set_alias(model, "champion", v1)
    assert watcher.champion(model) == v1
    assert _watcher(mlflow_url, tmp_path, cursor_store, champion_alias="prod").champion(model) is None
    assert watcher.champion(_name("no-such-model")) is None


def test_fetch_downloads_every_file_into_the_cache(
    mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path, cursor_store
) -> None:
    model = _name("fetch")
    seeder.create_model(model)
    files = {**FILES, "extra/weights.bin": bytes(range(256)) * 40}
    seeder.create_version(model, files)
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, models=[model])
    [mv] = watcher.poll()
    local = watcher.fetch(mv)
    folder = Path(local.path)
    assert folder == tmp_path / "cache" / cache_folder_name(model) / mv.version
    assert cache_folder_name(model).startswith(f"{model}-")  # readable, then a hash of the exact name
    assert {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files
    assert watcher.fetch(mv).path == local.path  # cached
    assert [p.name for p in folder.parent.iterdir()] == [mv.version]  # no temp folders left


def test_fetch_over_the_size_limit_leaves_nothing_behind(
    mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path, cursor_store
) -> None:
    model = _name("huge")
    seeder.create_model(model)
    seeder.create_version(model, FILES)
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, models=[model], max_artifact_bytes=500)
    [mv] = watcher.poll()
    with pytest.raises(RegistryError, match=rf"{mlflow_url}.*{model}.*500-byte limit"):
        watcher.fetch(mv)
    assert list((tmp_path / "cache" / cache_folder_name(model)).iterdir()) == []


def test_unreachable_server_raises_registry_error_without_credentials(tmp_path: Path, cursor_store) -> None:
    url = f"http://bench:hunter2@127.0.0.1:{free_port()}"
    watcher = MLflowWatcher(
        "prod", url, cache_dir=tmp_path, cursor_store=cursor_store, models=["m"], timeout_s=2
    )
    with pytest.raises(RegistryError, match="unreachable") as info:
        watcher.poll()
    assert "hunter2" not in str(info.value) and "bench:" not in str(info.value)
    assert f"127.0.0.1:{url.rsplit(':', 1)[1]}" in str(info.value) and "'m'" in str(info.value)
    assert "hunter2" not in repr(watcher.client.auth)
    with pytest.raises(RegistryError):
        watcher.champion("m")


def test_http_500_raises_registry_error_and_auth_headers_are_sent(
    recorder, tmp_path: Path, cursor_store
) -> None:
    url, handler = recorder
    watcher = MLflowWatcher(
        "prod",
        url,
        cache_dir=tmp_path,
        cursor_store=cursor_store,
        models=["m"],
        auth=MLflowAuth(token="tok-123"),
        headers={"X-Team": "ml"},
    )
    with pytest.raises(MLflowAPIError, match="HTTP 500 INTERNAL_ERROR: database is on fire") as info:
        watcher.poll()
    assert isinstance(info.value, RegistryError) and info.value.status == 500
    path, headers, _ = handler.requests[0]
    assert path.startswith("/api/2.0/mlflow/model-versions/search")
    assert headers["Authorization"] == "Bearer tok-123" and headers["X-Team"] == "ml"
    assert cursor_store.get_cursor("prod", "m") is None
    handler.status, handler.body = 200, b"<html>not json</html>"
    with pytest.raises(RegistryError, match="not JSON"):
        watcher.poll()


def test_basic_auth_from_env_and_from_the_url(recorder, tmp_path: Path, monkeypatch) -> None:
    url, handler = recorder
    handler.status, handler.body = 200, b'{"model_versions": []}'
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "alice")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "pw")
    MLflowWatcher("prod", url, cache_dir=tmp_path, models=["m"]).poll()
    with_creds = url.replace("http://", "http://bob:s%3Acret@")
    MLflowWatcher("prod", with_creds, cache_dir=tmp_path, models=["m"]).poll()
    assert [h["Authorization"] for _, h, _ in handler.requests] == [
        "Basic YWxpY2U6cHc=",
        "Basic Ym9iOnM6Y3JldA==",
    ]


def test_a_real_mlflow_webhook_delivery_verifies_and_parses(mlflow_url: str, recorder) -> None:
    url, handler = recorder
    handler.status, handler.body = 200, b"{}"
    secret = "hook-secret-" + uuid.uuid4().hex
    created = requests.post(
        f"{mlflow_url}/api/2.0/mlflow/webhooks",
        timeout=30,
        json={
            "name": _name("benchd"),
            "url": f"{url}/hooks/mlflow",
            "secret": secret,
            "events": [{"entity": "MODEL_VERSION", "action": "CREATED"}],
        },
    )
    assert created.status_code == 200, created.text
    webhook_id = created.json()["webhook"]["webhook_id"]
    tested = requests.post(f"{mlflow_url}/api/2.0/mlflow/webhooks/{webhook_id}/test", json={}, timeout=60)
    assert tested.status_code == 200 and tested.json()["result"]["success"] is True, tested.text
    path, headers, body = handler.requests[-1]
    assert path == "/hooks/mlflow"
    verify_mlflow_signature(
        secret.encode(),
        headers["X-MLflow-Delivery-Id"],
        headers["X-MLflow-Timestamp"],
        body,
        headers["X-MLflow-Signature"],
        now_s=time.time(),
    )
    event = parse_mlflow_event(body)
    assert event is not None and event.is_new_version and event.model and event.version
    assert json.loads(body)["entity"] == "model_version"


def test_models_whose_names_slug_alike_get_their_own_cache_folders(
    mlflow_url: str, seeder: MLflowSeeder, tmp_path: Path, cursor_store
) -> None:
    suffix = uuid.uuid4().hex[:8]
    # one slug (team_<suffix>); MLflow 3.17 refuses "/" and ":" in names but takes "!"
    first, second = f"team!{suffix}", f"team_{suffix}"
    artifacts = {}
    for name in (first, second):
        seeder.create_model(name)
        artifacts[name] = {**FILES, "model.pt2": name.encode()}
        seeder.create_version(name, artifacts[name])
    watcher = _watcher(mlflow_url, tmp_path, cursor_store, models=[first, second])
    fetched = {mv.model: Path(watcher.fetch(mv).path) for mv in watcher.poll()}
    assert fetched[first] != fetched[second]
    for name, folder in fetched.items():
        assert (folder / "model.pt2").read_bytes() == name.encode()  # each model runs its own artifact
