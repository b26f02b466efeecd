"""benchd's one HTTP server: /metrics, health, the JSON API and webhook receivers on one port.

A small routing table maps (method, path or path prefix) to a handler ``handler(Request) -> Response``.
Bodies are read only up to ``max_body_bytes`` (larger ones get 413 without being read); every error is
a JSON body ``{"error": "<code>", "reason": "<text>"}``. Handlers may raise :class:`HTTPError` for a
4xx/5xx answer; any other exception becomes a 500 and is logged, never reaching the client as a trace.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from benchd.errors import BenchdError

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
            HTTPError: 400 when the body is not valid UTF-8 JSON.
        """
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise HTTPError(400, "invalid_json", f"request body is not valid JSON: {e}") from e


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
    """A threaded HTTP/1.1 server with a routing table, bound only where asked.

    Args:
        host: address to bind (``127.0.0.1`` in tests, ``0.0.0.0`` in a container).
        port: port to bind; 0 picks a free one (read it back from :attr:`port` after :meth:`start`).
        routes: the routing table; more can be added with :meth:`add_route` before :meth:`start`.
        max_body_bytes: larger request bodies are refused with 413 without being read.
        request_timeout_s: socket timeout per connection (idle keep-alive connections close after it).
    """

    def __init__(
        self,
        host: str,
        port: int,
        routes: Iterable[Route] = (),
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        request_timeout_s: float = 30.0,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._routes: list[Route] = list(routes)
        self.max_body_bytes = max_body_bytes
        self.request_timeout_s = request_timeout_s
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def add_route(self, route: Route) -> None:
        """Add a route (exact paths win over prefixes; the longest prefix wins among prefixes)."""
        self._routes.append(route)

    @property
    def port(self) -> int:
        """The bound port (the requested one before :meth:`start`)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:9777``."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Bind and serve in a background thread.

        Raises:
            OSError: the address cannot be bound (port in use, no permission).
        """
        if self._server is not None:
            raise RuntimeError("HTTPService already started")
        handler_class = type("BenchdRequestHandler", (_RequestHandler,), {"service": self})
        server = _Server((self.host, self._requested_port), handler_class)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="benchd-http", daemon=True
        )
        self._thread.start()
        logger.info("HTTP server listening on %s:%d", self.host, self.port)

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

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
            return route.handler(request)
        except HTTPError as e:
            return error_response(e.status, e.error, e.reason, e.headers)
        except Exception:
            logger.exception("handler for %s %s failed", request.method, request.path)
            return error_response(500, "internal_error", "the handler failed; see the daemon log")


class _Server(ThreadingHTTPServer):
    """Threaded server with a listen backlog for many concurrent scrapers (the default of 5 drops SYNs)."""

    daemon_threads = True
    request_queue_size = 128


class _RequestHandler(BaseHTTPRequestHandler):
    """Turns http.server callbacks into :class:`Request` objects for :meth:`HTTPService.dispatch`."""

    service: HTTPService
    protocol_version = "HTTP/1.1"
    server_version = "benchd"

    def setup(self) -> None:
        self.timeout = self.service.request_timeout_s
        super().setup()

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._handle()

    def do_HEAD(self) -> None:  # noqa: N802
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def do_PUT(self) -> None:  # noqa: N802
        self._handle()

    def do_DELETE(self) -> None:  # noqa: N802
        self._handle()

    def _handle(self) -> None:
        body, refusal = self._read_body()
        if refusal is not None:
            self.close_connection = True
            self._send(refusal)
            return
        split = urlsplit(self.path)
        request = Request(
            method=self.command,
            path=split.path or "/",
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_host=str(self.client_address[0]),
        )
        self._send(self.service.dispatch(request))

    def _read_body(self) -> tuple[bytes, Response | None]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return b"", error_response(411, "length_required", "chunked request bodies are not accepted")
        raw_length = self.headers.get("Content-Length")
        if raw_length is None:
            return b"", None
        try:
            length = int(raw_length)
            if length < 0:
                raise ValueError(raw_length)
        except ValueError:
            return b"", error_response(400, "bad_request", f"invalid Content-Length {raw_length!r}")
        limit = self.service.max_body_bytes
        if length > limit:
            return b"", error_response(
                413, "payload_too_large", f"body of {length} bytes exceeds the limit of {limit} bytes"
            )
        return self.rfile.read(length), None

    def _send(self, response: Response) -> None:
        self.send_response(response.status)
        headers = {k.lower(): (k, v) for k, v in response.headers.items()}
        for key, value in headers.values():
            self.send_header(key, value)
        if "content-type" not in headers:
            self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(response.body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and response.body:
            self.wfile.write(response.body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s - %s", self.address_string(), format % args)
