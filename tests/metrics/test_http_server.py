"""The one HTTP server, for real on 127.0.0.1:0: routing, limits, errors, /metrics negotiation."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
from collections.abc import Iterator

import pytest
from metrics_fixtures import small_snapshot
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from benchd.metrics.cache import MetricsExporter, ResultsCache
from benchd.metrics.server import (
    HTTPError,
    HTTPService,
    Request,
    Response,
    Route,
    error_response,
    json_response,
)


def _echo(request: Request) -> Response:
    return json_response(
        {"method": request.method, "path": request.path, "query": dict(request.query),
         "body": request.body.decode(), "token": request.header("X-Token")}
    )  # fmt: skip


def _teapot(request: Request) -> Response:
    raise HTTPError(418, "teapot", "short and stout")


def _crash(request: Request) -> Response:
    raise RuntimeError("secret internal detail")


@pytest.fixture
def service(live_registry) -> Iterator[HTTPService]:
    registry, _, _ = live_registry()
    cache = ResultsCache()
    cache.update(small_snapshot())
    exporter = MetricsExporter(cache, registry)
    svc = HTTPService(
        "127.0.0.1",
        0,
        [
            Route("GET", "/metrics", exporter.handle),
            Route("GET", "/healthz", lambda r: json_response({"status": "ok"})),
            Route("POST", "/api/v1/", _echo, prefix=True),
            Route("GET", "/api/v1/", _echo, prefix=True),
            Route("GET", "/api/v1/teapot", _teapot),
            Route("GET", "/crash", _crash),
        ],
        max_body_bytes=1024,
    )
    svc.start()
    yield svc
    svc.stop()


def _get(svc: HTTPService, path: str, headers: dict[str, str] | None = None, method: str = "GET",
         body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:  # fmt: skip
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_ephemeral_port_and_loopback_only(service: HTTPService) -> None:
    assert service.port != 0
    assert service.url == f"http://127.0.0.1:{service.port}"
    status, _, body = _get(service, "/healthz")
    assert status == 200 and json.loads(body) == {"status": "ok"}


def test_metrics_default_is_text_format(service: HTTPService) -> None:
    status, headers, body = _get(service, "/metrics")
    assert status == 200
    assert headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {f.name for f in parse_text(body.decode())}
    assert {"benchd_query_latency_seconds", "benchd_queue_runs", "benchd_runs"} <= families
    assert b"# EOF" not in body


def test_metrics_negotiates_openmetrics_like_prometheus_asks(service: HTTPService) -> None:
    accept = (
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
        "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
    )
    status, headers, body = _get(service, "/metrics", {"Accept": accept, "Accept-Encoding": "gzip"})
    assert status == 200
    assert headers["content-type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    assert headers["content-encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n") and text.count("# EOF") == 1
    families = {f.name: f.type for f in parse_openmetrics(text)}
    assert families["benchd_runs"] == "counter" and families["benchd_build"] == "info"


def test_openmetrics_with_q_zero_is_not_chosen(service: HTTPService) -> None:
    _, headers, _ = _get(service, "/metrics", {"Accept": "application/openmetrics-text;q=0, text/plain"})
    assert headers["content-type"].startswith("text/plain")


def test_keep_alive_serves_several_requests_on_one_connection(service: HTTPService) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=10)
    try:
        for _ in range(3):
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            assert resp.status == 200 and len(resp.read()) > 1000
    finally:
        conn.close()


def test_head_has_headers_and_no_body(service: HTTPService) -> None:
    status, headers, body = _get(service, "/metrics", method="HEAD")
    assert status == 200 and int(headers["content-length"]) > 1000 and body == b""


def test_prefix_route_with_query_headers_and_body(service: HTTPService) -> None:
    status, _, body = _get(
        service, "/api/v1/runs?model=resnet50&limit=5", {"X-Token": "t0"}, method="POST", body=b"hello"
    )
    assert status == 200
    assert json.loads(body) == {
        "method": "POST", "path": "/api/v1/runs", "query": {"model": "resnet50", "limit": "5"},
        "body": "hello", "token": "t0",
    }  # fmt: skip


def test_exact_route_wins_over_prefix_and_http_error_becomes_json(service: HTTPService) -> None:
    status, headers, body = _get(service, "/api/v1/teapot")
    assert status == 418 and headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": "teapot", "reason": "short and stout"}


def test_oversized_body_is_refused_with_413_without_reading_it(service: HTTPService) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        # Announce 10 MB but send none of it: the answer must come without the server waiting for it.
        sock.sendall(b"POST /api/v1/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):  # the server answers and closes the connection
            chunks.append(chunk)
        reply = b"".join(chunks).decode()
    assert reply.startswith("HTTP/1.1 413")
    body = json.loads(reply.split("\r\n\r\n", 1)[1])
    assert body["error"] == "payload_too_large" and "1024" in body["reason"]


def test_body_at_the_limit_is_accepted(service: HTTPService) -> None:
    status, _, body = _get(service, "/api/v1/x", method="POST", body=b"a" * 1024)
    assert status == 200 and len(json.loads(body)["body"]) == 1024


def test_chunked_and_bad_lengths_are_refused(service: HTTPService) -> None:
    chunked = {"Transfer-Encoding": "chunked"}
    status, _, body = _get(service, "/api/v1/x", chunked, method="POST", body=b"0\r\n\r\n")
    assert status == 411 and json.loads(body)["error"] == "length_required"
    status, _, body = _get(service, "/api/v1/x", {"Content-Length": "-3"}, method="POST")
    assert status == 400


def test_unknown_path_404_and_wrong_method_405(service: HTTPService) -> None:
    status, _, body = _get(service, "/nope")
    assert status == 404 and json.loads(body)["error"] == "not_found"
    status, headers, body = _get(service, "/metrics", method="POST", body=b"")
    assert status == 405 and headers["allow"] == "GET" and json.loads(body)["error"] == "method_not_allowed"


def test_handler_crash_is_a_json_500_without_details(service: HTTPService, caplog) -> None:
    status, _, body = _get(service, "/crash")
    assert status == 500
    assert json.loads(body)["error"] == "internal_error" and b"secret" not in body
    assert "secret internal detail" in caplog.text


def test_stop_releases_the_port() -> None:
    svc = HTTPService("127.0.0.1", 0, [Route("GET", "/healthz", lambda r: json_response({}))])
    svc.start()
    port = svc.port
    svc.stop()
    svc.stop()  # idempotent
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_error_response_shape() -> None:
    response = error_response(409, "conflict", "already queued")
    assert response.status == 409
    assert json.loads(response.body) == {"error": "conflict", "reason": "already queued"}
