"""The MLflow watcher against tiny misbehaving servers on 127.0.0.1: loops, endless pages, dribbles."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from benchd.errors import RegistryError
from benchd.metrics.health import DaemonStats
from benchd.records import ModelVersion
from benchd.registry import MLflowAuth, MLflowWatcher
from benchd.registry.base import PollCancelledError
from benchd.registry.mlflow_http import MLflowClient
from benchd.service.scheduler import PollJob, Scheduler

Answer = Callable[[str, dict[str, list[str]], int], bytes | None]


class _Handler(http.server.BaseHTTPRequestHandler):
    """Answers every GET with ``answer(path, query, n)`` (n counts requests); None dribbles forever."""

    answer: Answer
    hits: list[str]
    stop: threading.Event

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        split = urlsplit(self.path)
        self.hits.append(split.path)
        body = type(self).answer(split.path, parse_qs(split.query), len(self.hits))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        while not self.stop.is_set():  # a byte every 50 ms: each read succeeds, the answer never ends
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            time.sleep(0.05)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def bad_server() -> Iterator[Callable[[Answer], tuple[str, list[str]]]]:
    servers: list[tuple[http.server.ThreadingHTTPServer, threading.Event]] = []

    def start(answer: Answer) -> tuple[str, list[str]]:
        stop = threading.Event()
        handler = type("Bad", (_Handler,), {"answer": staticmethod(answer), "hits": [], "stop": stop})
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append((server, stop))
        return f"http://127.0.0.1:{server.server_address[1]}", handler.hits

    yield start
    for server, stop in servers:
        stop.set()
        server.shutdown()
        server.server_close()


def _watcher(url: str, tmp_path: Path, **kw: object) -> MLflowWatcher:
    return MLflowWatcher("prod", url, cache_dir=tmp_path, auth=MLflowAuth(), models=["m"], **kw)  # type: ignore[arg-type]


def _page(token: str | None, version: int | None = None) -> bytes:
    doc: dict[str, object] = {"model_versions": []}
    if version is not None:
        doc["model_versions"] = [{"name": "m", "version": str(version), "status": "READY"}]
    if token:
        doc["next_page_token"] = token
    return json.dumps(doc).encode()


def test_a_repeated_page_token_is_an_error_not_an_endless_poll(bad_server, tmp_path: Path) -> None:
    # the same token forever (this server gives up after 50 pages, so old code ends the test too)
    url, hits = bad_server(lambda path, q, n: _page("same" if n < 50 else None, n))
    with pytest.raises(RegistryError, match="repeated page token 'same' after 2 pages"):
        _watcher(url, tmp_path).poll()
    assert len(hits) == 2


def test_a_server_that_never_stops_paging_is_cut_off(bad_server, tmp_path: Path) -> None:
    url, hits = bad_server(lambda path, q, n: _page(f"t{n}" if n < 50 else None, n))
    with pytest.raises(RegistryError, match="more than 5 pages"):
        _watcher(url, tmp_path, max_pages=5).poll()
    assert len(hits) == 5


def test_a_failed_poll_still_makes_the_daemon_ready(bad_server, tmp_path: Path) -> None:
    url, _ = bad_server(lambda path, q, n: _page("same" if n < 50 else None, n))
    job = PollJob(_watcher(url, tmp_path), lambda mv: None, lambda *a: [], DaemonStats(), 30.0)
    assert job() == []
    assert job.polled_once.is_set() and "repeated page token" in (job.last_error or "")


def _recursive_listing(path: str, query: dict[str, list[str]], n: int) -> bytes:
    if path.endswith("/get-download-uri"):
        return json.dumps({"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}).encode()
    # every folder holds a folder "loop" (a listing that names itself), and one file
    return json.dumps({"files": [{"path": "loop", "is_dir": True}, {"path": "f", "file_size": 1}]}).encode()


def test_a_recursive_artifact_listing_is_an_error_not_a_recursion_error(bad_server, tmp_path: Path) -> None:
    url, hits = bad_server(_recursive_listing)
    watcher = _watcher(url, tmp_path / "cache")
    with pytest.raises(RegistryError, match="nest deeper than 16 levels"):
        watcher.fetch(ModelVersion(model="m", version="1", registry="prod"))
    assert len(hits) == 1 + 17  # the download URI, then one listing per level
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [
        p.name for p in (tmp_path / "cache").iterdir()
    ]
    assert not list((tmp_path / "cache").rglob("f"))  # nothing downloaded, no temp folder left


def test_too_many_artifact_files_is_an_error(bad_server, tmp_path: Path) -> None:
    def wide(path: str, query: dict[str, list[str]], n: int) -> bytes:
        if path.endswith("/get-download-uri"):
            return json.dumps({"artifact_uri": "mlflow-artifacts:/1/abc/artifacts/model"}).encode()
        return json.dumps({"files": [{"path": f"f{i}", "file_size": 1} for i in range(200)]}).encode()

    url, _ = bad_server(wide)
    watcher = _watcher(url, tmp_path, max_artifact_files=100)
    with pytest.raises(RegistryError, match="more than 100 artifact files"):
        watcher.fetch(ModelVersion(model="m", version="1", registry="prod"))


def test_an_answer_dribbled_forever_hits_the_answer_deadline(bad_server) -> None:
    url, _ = bad_server(lambda path, q, n: None)
    client = MLflowClient(url, auth=MLflowAuth(), timeout_s=5.0, answer_deadline_s=0.5)
    with pytest.raises(RegistryError, match="did not arrive within 0.5 s"):
        client.get_json("/registered-models/search", what="listing")


def test_stopping_the_scheduler_cancels_a_poll_stuck_on_a_dribbling_server(
    bad_server, tmp_path: Path
) -> None:
    url, hits = bad_server(lambda path, q, n: None)
    watcher = _watcher(url, tmp_path, timeout_s=30.0)  # each byte comes well within the read timeout
    job = PollJob(watcher, lambda mv: None, lambda *a: [], DaemonStats(), 3600.0)
    scheduler = Scheduler({"prod": job})
    scheduler.start()  # polls at once
    deadline = time.monotonic() + 30
    while not hits and time.monotonic() < deadline:
        time.sleep(0.05)
    assert hits, "the poll never reached the server"
    stopper = threading.Thread(target=scheduler.stop)
    stopper.start()
    stopper.join(timeout=60)  # a guard against a hang, not a measurement
    assert not stopper.is_alive(), "Scheduler.stop() is still waiting on the registry"
    assert job.failures == 0  # a cancelled poll is not counted as a registry failure
    with pytest.raises(PollCancelledError, match="cancelled"):
        watcher.poll()  # and the watcher refuses new calls
