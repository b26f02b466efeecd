"""The one HTTP server, for real on 127.0.0.1:0: routing, limits, errors, /metrics negotiation."""

from __future__ import annotations

import gzip
import http.client
import json
import logging
import os
import resource
import socket
import threading
import time
from collections.abc import Callable, Iterator

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


@pytest.fixture
def service_factory(live_registry) -> Iterator[Callable[..., HTTPService]]:
    """Factory: a started service with /healthz, /metrics and the given routes; stopped afterwards."""
    made: list[HTTPService] = []

    def make(routes: list[Route], **kwargs: object) -> HTTPService:
        registry, _, _ = live_registry()
        cache = ResultsCache()
        cache.update(small_snapshot())
        exporter = MetricsExporter(cache, registry)
        base = [
            Route("GET", "/metrics", exporter.handle),
            Route("GET", "/healthz", lambda r: json_response({"status": "ok"})),
        ]
        svc = HTTPService("127.0.0.1", 0, [*base, *routes], **kwargs)  # type: ignore[arg-type]
        svc.start()
        made.append(svc)
        return svc

    yield make
    for svc in made:
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


# -- bounds: connections, deadlines, pools ------------------------------------------------------------


def _threads() -> int:
    """Threads of this process (the server runs in it), as the kernel counts them."""
    return len(os.listdir("/proc/self/task"))


def _settled_threads(quiet_s: float = 0.5, limit_s: float = 10.0) -> int:
    """The thread count once it has held still for ``quiet_s``: threads ended by earlier tests are reaped."""
    deadline = time.monotonic() + limit_s
    count, since = _threads(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = _threads()
        if now != count:
            count, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            break
    return count


def _raise_fd_limit(needed: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
    assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= needed, "this host allows too few open files"


def _raw(port: int, request: bytes, timeout_s: float = 10.0) -> bytes:
    """Send ``request`` on a new connection; return everything the server sends until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _is_closed_by_server(sock: socket.socket) -> bool:
    """True when the server closed ``sock`` (EOF, reset, or a final answer followed by EOF)."""
    try:
        data = sock.recv(65536)
    except BlockingIOError:
        return False
    except OSError:
        return True
    if not data:
        return True
    return data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.1 503")


@pytest.mark.slow  # 2,900 sockets and a few seconds of dribbling
def test_slowloris_and_idle_floods_keep_threads_bounded_and_healthz_answers(caplog) -> None:
    _raise_fd_limit(8192)
    svc = HTTPService(
        "127.0.0.1",
        0,
        [Route("GET", "/healthz", lambda r: json_response({"status": "ok"}))],
        header_timeout_s=2.0,
        max_connections=4096,  # all 2,900 are held: the deadline, not eviction, must end the slow ones
    )
    svc.start()
    threads_before = _threads()
    slow: list[socket.socket] = []
    idle: list[socket.socket] = []
    try:
        for _ in range(400):  # slowloris: a request head that never ends, one byte at a time
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-a: ")
            s.setblocking(False)
            slow.append(s)
        for _ in range(2500):  # idle: connected, nothing sent
            s = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
            s.setblocking(False)
            idle.append(s)
        peak_threads = _threads()
        status, _, body = _get(svc, "/healthz")
        assert status == 200 and json.loads(body) == {"status": "ok"}
        assert svc.open_connections() > 2000  # the flood is really held open
        # keep dribbling: a per-read timeout would never end these; the whole-request deadline does
        open_slow = list(slow)
        for _ in range(40):  # up to 20 s of dribbling against a 2 s deadline
            still_open = []
            for s in open_slow:
                if _is_closed_by_server(s):
                    continue
                try:
                    s.send(b"a")
                    still_open.append(s)
                except OSError:
                    pass
            open_slow = still_open
            if not open_slow:
                break
            time.sleep(0.5)
        assert open_slow == [], f"{len(open_slow)} slowloris connections were still open"
        status, _, _ = _get(svc, "/healthz")
        assert status == 200
    finally:
        for s in slow + idle:
            s.close()
        svc.stop()
    assert peak_threads - threads_before <= 2, (
        f"{peak_threads - threads_before} threads appeared for 2,900 clients"
    )
    assert _wait_for(lambda: _threads() <= threads_before)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_threads_are_fixed_by_the_pools_not_the_clients() -> None:
    before = _settled_threads()
    svc = HTTPService("127.0.0.1", 0, [Route("GET", "/healthz", lambda r: json_response({}))], workers=3)
    svc.start()
    try:
        assert _threads() - before == 1 + 3 + 2  # the loop, 3 workers, 2 probe workers
        conns = [socket.create_connection(("127.0.0.1", svc.port), timeout=10) for _ in range(50)]
        for c in conns:
            c.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        for c in conns:
            assert c.recv(65536).startswith(b"HTTP/1.1 200")
            c.close()
        assert _threads() - before == 6
    finally:
        svc.stop()
    assert _wait_for(lambda: _threads() == before)  # the kernel reaps ended threads a moment later


def test_api_flood_gets_fast_503_while_probes_and_metrics_still_answer(service_factory) -> None:
    release = threading.Event()
    entered = threading.Semaphore(0)

    def slow(request: Request) -> Response:
        entered.release()
        release.wait(30)
        return json_response({"slow": True})

    svc = service_factory([Route("GET", "/api/slow", slow)], workers=2, max_queued=2)
    results: list[int] = []
    lock = threading.Lock()

    def call() -> None:
        status, _, _ = _get(svc, "/api/slow")
        with lock:
            results.append(status)

    callers = [threading.Thread(target=call) for _ in range(10)]
    try:
        for t in callers[:2]:
            t.start()
        assert entered.acquire(timeout=10) and entered.acquire(timeout=10)  # both API workers are busy
        for t in callers[2:]:
            t.start()
        # 2 requests wait in the queue; the 6 others are refused at once, without waiting for a worker
        refused = _wait_for(lambda: results.count(503) == 6)
        assert refused, f"answers so far: {results}"
        assert _get(svc, "/healthz")[0] == 200
        status, _, body = _get(svc, "/metrics")
        assert status == 200 and b"benchd_queue_runs" in body
    finally:
        release.set()
        for t in callers:
            t.join(timeout=30)
    assert sorted(results) == [200] * 4 + [503] * 6


def _wait_for(predicate, limit_s: float = 20.0) -> bool:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_deeply_nested_json_is_a_400_without_a_traceback(service_factory, caplog) -> None:
    def parse(request: Request) -> Response:
        return json_response({"type": type(request.json()).__name__})

    svc = service_factory([Route("POST", "/api/parse", parse)], max_body_bytes=1 << 20)
    status, _, body = _get(svc, "/api/parse", method="POST", body=b"[" * 200_000 + b"]" * 200_000)
    assert status == 400 and json.loads(body)["error"] == "invalid_json"
    assert "nested too deeply" in json.loads(body)["reason"]
    status, _, body = _get(svc, "/api/parse", method="POST", body=b"\xff{")
    assert status == 400 and json.loads(body)["error"] == "invalid_json"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


def test_malformed_requests_get_json_errors_and_the_server_carries_on(service: HTTPService) -> None:
    reply = _raw(service.port, b"NOT A REQUEST\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400") and b'"error":"bad_request"' in reply
    reply = _raw(service.port, b"GET /healthz HTTP/1.1\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 431")
    reply = _raw(service.port, b"POST /api/v1/x HTTP/1.1\r\nContent-Length: 1e3\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 400") and b"Content-Length" in reply
    assert _get(service, "/healthz")[0] == 200


def test_pipelined_requests_and_http10_close(service: HTTPService) -> None:
    two = (
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /api/v1/p HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    reply = _raw(service.port, two)
    assert reply.count(b"HTTP/1.1 200") == 2 and reply.rstrip().endswith(b'"token":""}')
    reply = _raw(service.port, b"GET /healthz HTTP/1.0\r\n\r\n")  # closes after one answer
    assert reply.startswith(b"HTTP/1.1 200") and b"Connection: close" in reply


def test_expect_100_continue_is_answered_before_the_body(service: HTTPService) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/e HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            b"Connection: close\r\n\r\n"
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 200") and b'"body":"hello"' in reply


def test_idle_keep_alive_connection_is_closed_after_the_idle_timeout(service_factory) -> None:
    svc = service_factory([], request_timeout_s=0.5)
    with socket.create_connection(("127.0.0.1", svc.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert sock.recv(65536) == b""  # closed by the server once idle; no answer needed


def test_connections_beyond_the_cap_evict_the_oldest_idle_one(service_factory) -> None:
    svc = service_factory([], max_connections=5)
    idle = [socket.create_connection(("127.0.0.1", svc.port), timeout=10) for _ in range(20)]
    try:
        assert _get(svc, "/healthz")[0] == 200
        assert _wait_for(lambda: svc.open_connections() <= 5)
        assert idle[0].recv(65536) == b""  # the oldest idle connection was closed to make room
    finally:
        for s in idle:
            s.close()


def test_answered_connections_are_released_so_the_cap_is_never_reached_by_clients_that_go(
    service_factory,
) -> None:
    svc = service_factory([], max_connections=8)
    for _ in range(40):  # five times the cap, one after another, each closed after its answer
        reply = _raw(svc.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 200")
    for _ in range(40):  # keep-alive clients that hang up after their answer
        assert _get(svc, "/healthz")[0] == 200
    assert _wait_for(lambda: svc.open_connections() == 0)
