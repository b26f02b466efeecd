"""The HTTP/1.1 wire format benchd's server speaks: request parsing with limits, response rendering.

Pure functions over bytes (no sockets, no threads): :func:`take_request` cuts the next complete request
out of a connection's buffer or says "not yet", and raises :class:`BadRequestError` (with the status to
answer) for anything that cannot become an acceptable request; :func:`render_response` serialises an
answer. The connection loop (:mod:`benchd.metrics.http_connections`) feeds them.
"""

from __future__ import annotations

import http.client
import io
import json
import socket
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus


@dataclass(frozen=True)
class Limits:
    """The server's bounds (seconds, bytes, counts)."""

    max_body_bytes: int = 1 << 20
    max_header_bytes: int = 65536
    max_connections: int = 512
    header_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    write_timeout_s: float = 30.0
    workers: int = 8
    priority_workers: int = 2
    max_queued: int = 64
    priority_paths: tuple[str, ...] = ("/healthz", "/readyz", "/metrics")


@dataclass
class ParsedRequest:
    """A complete request as read off the wire."""

    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


@dataclass(eq=False)
class Connection:
    """One client connection and what has been read from it."""

    sock: socket.socket
    peer: str
    deadline_s: float
    buffer: bytearray = field(default_factory=bytearray)
    head: tuple[str, str, str, dict[str, str]] | None = None
    body_bytes: int = 0
    continue_sent: bool = False
    idle: bool = False


class BadRequestError(Exception):
    """The client sent something that is not an acceptable HTTP/1.x request."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        self.status = status
        self.error = error
        self.reason = reason
        super().__init__(f"{status} {error}: {reason}")


def render_response(
    status: int, headers: dict[str, str], body: bytes, *, close: bool, head_only: bool, keep_alive_10: bool
) -> bytes:
    """Serialise an HTTP/1.1 response (``Content-Length`` and ``Connection`` are added here)."""
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = ""
    lines = [f"HTTP/1.1 {status} {phrase}", "Server: benchd", f"Date: {formatdate(usegmt=True)}"]
    lowered = {k.lower() for k in headers}
    lines += [f"{k}: {v}" for k, v in headers.items() if k.lower() not in ("content-length", "connection")]
    if "content-type" not in lowered:
        lines.append("Content-Type: application/octet-stream")
    lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    elif keep_alive_10:
        lines.append("Connection: keep-alive")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace")
    return head if head_only else head + body


def _parse_head(raw: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Parse the request line and headers (``raw`` ends before the blank line)."""
    line, _, rest = raw.partition(b"\r\n")
    parts = line.decode("latin-1").split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequestError(400, "bad_request", f"malformed request line {line[:100]!r}")
    method, target, version = parts
    if not method.isalpha() or not method.isupper():
        raise BadRequestError(400, "bad_request", f"bad method {method[:20]!r}")
    try:
        message = http.client.parse_headers(io.BytesIO(rest + b"\r\n\r\n"))
    except (http.client.HTTPException, ValueError) as e:
        raise BadRequestError(431, "headers_too_large", f"request headers refused: {e}") from e
    return method, target, version, {k.lower(): v for k, v in message.items()}


def _body_length(headers: dict[str, str], limits: Limits) -> int:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        raise BadRequestError(411, "length_required", "chunked request bodies are not accepted")
    raw = headers.get("content-length")
    if raw is None:
        return 0
    if not raw.strip().isdigit() or not raw.strip().isascii() or len(raw.strip()) > 18:
        raise BadRequestError(400, "bad_request", f"invalid Content-Length {raw[:40]!r}")
    length = int(raw)
    if length > limits.max_body_bytes:
        raise BadRequestError(
            413,
            "payload_too_large",
            f"body of {length} bytes exceeds the limit of {limits.max_body_bytes} bytes",
        )
    return length


def take_request(conn: Connection, limits: Limits) -> ParsedRequest | None:
    """Return the next complete request in ``conn.buffer`` (and drop it from there), or None for "not yet".

    Raises:
        BadRequestError: the bytes so far cannot become an acceptable request.
    """
    if conn.head is None:
        while conn.buffer[:2] == b"\r\n":  # stray CRLFs between requests are allowed (RFC 9112 2.2)
            del conn.buffer[:2]
        end = conn.buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(conn.buffer) > limits.max_header_bytes:
                raise BadRequestError(
                    431, "headers_too_large", f"request head over {limits.max_header_bytes} bytes"
                )
            return None
        conn.head = _parse_head(bytes(conn.buffer[:end]))
        del conn.buffer[: end + 4]
        conn.body_bytes = _body_length(conn.head[3], limits)
    method, target, version, headers = conn.head
    if len(conn.buffer) < conn.body_bytes:
        return None
    body = bytes(conn.buffer[: conn.body_bytes])
    del conn.buffer[: conn.body_bytes]
    conn.head, conn.body_bytes, conn.continue_sent = None, 0, False
    tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "keep-alive" in tokens if version == "HTTP/1.0" else "close" not in tokens
    return ParsedRequest(method, target, version, headers, body, keep_alive)


def error_bytes(status: int, error: str, reason: str) -> bytes:
    """A complete JSON error answer that closes the connection."""
    body = json.dumps({"error": error, "reason": reason}, separators=(",", ":"), sort_keys=True).encode()
    return render_response(
        status, {"Content-Type": "application/json"}, body, close=True, head_only=False, keep_alive_10=False
    )


def busy_bytes(reason: str) -> bytes:
    """A complete 503 answer (``Retry-After: 1``) that closes the connection."""
    return render_response(
        503,
        {"Content-Type": "application/json", "Retry-After": "1"},
        b'{"error":"busy","reason":"' + reason.encode() + b'"}',
        close=True,
        head_only=False,
        keep_alive_10=False,
    )
