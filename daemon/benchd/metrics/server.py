"""benchd's one HTTP server: /metrics, health, the JSON API and webhook receivers on one port.

A small routing table maps (method, path or path prefix) to a handler ``handler(Request) -> Response``.
Bodies are read only up to ``max_body_bytes`` (larger ones get 413 without being read); every error is
a JSON body ``{"error": "<code>", "reason": "<text>"}``. Handlers may raise :class:`HTTPError` for a
4xx/5xx answer; any other exception becomes a 500 and is logged, never reaching the client as a trace.
Client errors (bad JSON, bad ids, slow or oversized requests) are logged at DEBUG only.

The server is bounded (:mod:`benchd.metrics.http_connections`): a fixed number of threads, a cap on open
connections, a deadline for a whole request, and probes/scrapes answered by their own workers.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from benchd.errors import BenchdError
from benchd.metrics.http_connections import ConnectionLoop, close_quietly
from benchd.metrics.http_wire import Connection, Limits, ParsedRequest, render_response

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1 << 20
JSON_CONTENT_TYPE = "application/json"


@dataclass(frozen=True)
class Request:
    """One HTTP request as handlers see it.

    Attributes:
        method: upper-case method (``GET``, ``POST``; ``HEAD`` is routed as ``GET``).
        path: the URL path without the query string (``/api/v1/runs``).
        query: query parameters (the last value wins for repeated names).
        headers: header values by lower-case name.
        body: the request body (at most the server's ``max_body_bytes``).
        client_host: the peer's address.
    """

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    client_host: str = ""

    def header(self, name: str, default: str = "") -> str:
        """Return a header's value by case-insensitive name."""
        return self.headers.get(name.lower(), default)

    def json(self) -> Any:
        """Decode the body as JSON.

        Raises:
            HTTPError: 400 when the body is not valid UTF-8 JSON, or nested too deeply to decode.
        """
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise HTTPError(400, "invalid_json", f"request body is not valid JSON: {e}") from e
        except RecursionError as e:
            raise HTTPError(400, "invalid_json", "request body is nested too deeply to decode") from e


@dataclass(frozen=True)
class Response:
    """An HTTP response; ``Content-Length`` is added by the server."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


class HTTPError(BenchdError):
    """Raised by a handler to answer with a JSON error body."""

    def __init__(
        self, status: int, error: str, reason: str, headers: Mapping[str, str] | None = None
    ) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        self.headers = dict(headers or {})
        super().__init__(f"{status} {error}: {reason}")


def json_response(data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """Return a JSON response (UTF-8, compact)."""
    body = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
    return Response(status, body, {"Content-Type": JSON_CONTENT_TYPE, **(headers or {})})


def error_response(
    status: int, error: str, reason: str, headers: Mapping[str, str] | None = None
) -> Response:
    """Return ``{"error": error, "reason": reason}`` with ``status``."""
    return json_response({"error": error, "reason": reason}, status, headers)


Handler = Callable[[Request], Response]


@dataclass(frozen=True)
class Route:
    """Send ``method`` requests for ``path`` (or, with ``prefix``, any path under it) to ``handler``."""

    method: str
    path: str
    handler: Handler
    prefix: bool = False

    def matches_path(self, path: str) -> bool:
        """Whether ``path`` is this route's path (or lies under it, for a prefix route)."""
        if not self.prefix:
            return path == self.path
        return path.startswith(self.path)


class HTTPService:
    """A bounded HTTP/1.1 server with a routing table, bound only where asked.

    Args:
        host: address to bind (``127.0.0.1`` in tests, ``0.0.0.0`` in a container).
        port: port to bind; 0 picks a free one (read it back from :attr:`port` after :meth:`start`).
        routes: the routing table; more can be added with :meth:`add_route` before :meth:`start`.
        max_body_bytes: larger request bodies are refused with 413 without being read.
        request_timeout_s: an idle keep-alive connection closes after this long; also the time a
            worker waits on a client that does not read its answer.
        header_timeout_s: a request (head and body) must arrive whole within this long of its first byte,
            however slowly it is sent (slowloris clients are closed after it).
        max_connections: open connections at most; a new one beyond evicts the oldest waiting one.
        workers: threads answering requests (the API, webhooks).
        priority_workers: threads answering ``priority_paths`` only, so probes and scrapes stay answered
            while the API is flooded.
        max_queued: complete requests waiting for a worker, per pool; beyond it the answer is a fast 503.
        priority_paths: paths served by the priority workers.
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Iterable[Route] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout_s: float = 30.0,
        *,
        header_timeout_s: float = 10.0,
        max_connections: int = 512,
        workers: int = 8,
        priority_workers: int = 2,
        max_queued: int = 64,
        priority_paths: Iterable[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        if max_connections < 1 or workers < 1 or priority_workers < 1 or max_queued < 1:
            raise ValueError("max_connections, workers, priority_workers and max_queued must be at least 1")
        if header_timeout_s <= 0 or request_timeout_s <= 0:
            raise ValueError("header_timeout_s and request_timeout_s must be positive")
        self.host = host
        self._requested_port = port
        self._routes: list[Route] = list(routes)
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self.limits = Limits(
            max_body_bytes=max_body_bytes,
            max_connections=max_connections,
            header_timeout_s=header_timeout_s,
            idle_timeout_s=request_timeout_s,
            write_timeout_s=request_timeout_s,
            workers=workers,
            priority_workers=priority_workers,
            max_queued=max_queued,
            priority_paths=tuple(priority_paths),
        )
        self._listener: socket.socket | None = None
        self._loop: ConnectionLoop | None = None

    def add_route(self, route: Route) -> None:
        """Add a route (exact paths win over prefixes; the longest prefix wins among prefixes)."""
        self._routes.append(route)

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        if self._listener is None:
            return self._requested_port
        return int(self._listener.getsockname()[1])

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9777``."""
        return f"http://{self.host}:{self.port}"

    def open_connections(self) -> int:
        """Client connections open now (0 when stopped)."""
        return self._loop.open_connections() if self._loop is not None else 0

    def start(self) -> None:
        """Bind and serve in background threads (a fixed number of them).

        Raises:
            OSError: the address cannot be bound (port in use, no permission).
        """
        if self._listener is not None:
            raise RuntimeError("HTTPService already started")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self._requested_port))
            listener.listen(min(socket.SOMAXCONN, 1024))
        except OSError:
            listener.close()
            raise
        self._listener = listener
        self._loop = ConnectionLoop(listener, self.limits, self._answer)
        self._loop.start()
        logger.info("HTTP server listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop serving, close every connection and the listening socket (idempotent)."""
        loop, self._loop = self._loop, None
        listener, self._listener = self._listener, None
        if loop is not None:
            loop.stop()
        if listener is not None:
            close_quietly(listener)

    def dispatch(self, request: Request) -> Response:
        """Route a request to its handler and turn failures into JSON errors."""
        method = "GET" if request.method == "HEAD" else request.method
        candidates = [r for r in self._routes if r.matches_path(request.path)]
        if not candidates:
            return error_response(404, "not_found", f"no route for {request.path}")
        exact = [r for r in candidates if not r.prefix]
        best_path = exact[0].path if exact else max((r.path for r in candidates), key=len)
        on_path = [r for r in candidates if r.path == best_path and r.prefix == (not exact)]
        route = next((r for r in on_path if r.method == method), None)
        if route is None:
            allowed = ", ".join(sorted({r.method for r in on_path}))
            reason = f"{request.method} not allowed on {request.path}"
            return error_response(405, "method_not_allowed", reason, {"Allow": allowed})
        try:
            response = route.handler(request)
        except HTTPError as e:
            if e.status >= 500:
                logger.warning("%s %s answered %d: %s", request.method, request.path, e.status, e.reason)
            else:
                logger.debug("%s %s answered %d: %s", request.method, request.path, e.status, e.reason)
            return error_response(e.status, e.error, e.reason, e.headers)
        except Exception:
            logger.exception("handler for %s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "the handler failed; see the daemon log")
        return response

    def _answer(self, conn: Connection, parsed: ParsedRequest) -> None:
        """Answer one request on a worker thread, then keep the connection or close it."""
        split = urlsplit(parsed.target)
        request = Request(
            method=parsed.method,
            path=split.path or "/",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=parsed.headers,
            body=parsed.body,
            client_host=conn.peer,
        )
        response = self.dispatch(request)
        loop = self._loop
        close = not parsed.keep_alive or loop is None
        data = render_response(
            response.status,
            dict(response.headers),
            response.body,
            close=close,
            head_only=parsed.method == "HEAD",
            keep_alive_10=parsed.version == "HTTP/1.0",
        )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %s %s -> %d", conn.peer, parsed.method, parsed.target[:200], response.status)
        try:
            conn.sock.settimeout(self.limits.write_timeout_s)
            conn.sock.sendall(data)
        except OSError:
            close = True
        if loop is None:
            close_quietly(conn.sock)
        else:
            loop.release(conn, keep_alive=not close)
