"""The HTTP server's connection handling: one selector thread reads requests, fixed pools answer them.

Why not a thread per connection (``ThreadingHTTPServer``): 400 slowloris clients and 2,500 idle ones made
2,507 threads, and a per-read timeout never ends a client that sends one byte every few seconds. Here:

- One thread (:class:`ConnectionLoop`) accepts and reads every connection without blocking. A request
  (head and body) must arrive whole within ``header_timeout_s`` of its first byte (of the accept, for a new
  connection), however it is dribbled; an idle keep-alive connection closes after ``idle_timeout_s``.
- At most ``max_connections`` are open. A new connection beyond that evicts the oldest one still waiting
  for its request (a slowloris or an idle keep-alive), so a fresh client (a liveness probe, a scrape)
  always gets in; when every open connection is being answered, the newcomer gets a fast 503.
- Complete requests go to fixed worker pools: ``priority_paths`` (``/healthz``, ``/readyz``, ``/metrics``)
  have their own small pool, so a flood of API requests never starves probes and scrapes. A full queue
  answers 503 at once. The thread count is fixed: 1 + workers + priority workers.
- Workers write the response with a socket timeout; a keep-alive connection then returns to the loop.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import logging
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable

from benchd.metrics.http_wire import (
    BadRequestError,
    Connection,
    Limits,
    ParsedRequest,
    busy_bytes,
    error_bytes,
    take_request,
)

logger = logging.getLogger(__name__)

_ACCEPTS_PER_TURN = 64
_RECV_BYTES = 65536


class WorkerPool:
    """A fixed number of threads answering queued requests; a full queue refuses at once."""

    def __init__(
        self, name: str, threads: int, max_queued: int, work: Callable[[Connection, ParsedRequest], None]
    ):
        self._queue: queue.Queue[tuple[Connection, ParsedRequest] | None] = queue.Queue(max_queued)
        self._work = work
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for t in self._threads:
            t.start()

    def submit(self, conn: Connection, request: ParsedRequest) -> bool:
        """Queue a request; False when the queue is full."""
        try:
            self._queue.put_nowait((conn, request))
        except queue.Full:
            return False
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Let the threads finish what they hold, then end them."""
        deadline = time.monotonic() + timeout_s
        for _ in self._threads:
            try:
                self._queue.put(None, timeout=max(0.01, deadline - time.monotonic()))
            except queue.Full:  # workers stuck on slow clients: they are daemon threads
                break
        deadline = time.monotonic() + timeout_s
        for t in self._threads:
            t.join(timeout=max(0.0, deadline - time.monotonic()))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            self._work(*item)


def close_quietly(sock: socket.socket) -> None:
    """Close a socket, ignoring errors (the peer may be gone)."""
    with contextlib.suppress(OSError):
        sock.close()


def send_and_close(sock: socket.socket, data: bytes) -> None:
    """Best-effort write of a short answer from the loop thread (non-blocking), then close."""
    with contextlib.suppress(OSError):
        sock.send(data)
    close_quietly(sock)


class ConnectionLoop:
    """Accepts and reads connections on one thread; hands complete requests to ``handle``.

    Args:
        listener: a bound, listening socket (made non-blocking here).
        limits: the bounds.
        handle: ``handle(conn, request)``, called on a worker thread; it writes the answer and then calls
            :meth:`release` (which keeps the connection or closes it).
    """

    def __init__(
        self, listener: socket.socket, limits: Limits, handle: Callable[[Connection, ParsedRequest], None]
    ) -> None:
        self.limits = limits
        self._listener = listener
        listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(listener, selectors.EVENT_READ, "listener")
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._reading: collections.OrderedDict[Connection, None] = collections.OrderedDict()
        self._handling: set[Connection] = set()
        self._returned: collections.deque[Connection] = collections.deque()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._handle = handle
        self._pool = WorkerPool("benchd-http", limits.workers, limits.max_queued, self._answer)
        self._priority = WorkerPool(
            "benchd-http-probe", limits.priority_workers, limits.max_queued, self._answer
        )
        self._thread = threading.Thread(target=self._run, name="benchd-http", daemon=True)
        self._next_accept_warning_s = 0.0

    def start(self) -> None:
        """Start the loop thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close every connection and end the threads."""
        with self._lock:
            self._stopping.set()
        self._wake()
        self._thread.join(timeout=5.0)
        self._pool.stop()
        self._priority.stop()

    def open_connections(self) -> int:
        """Connections open now (waiting for a request or being answered)."""
        with self._lock:
            return len(self._reading) + len(self._handling)

    def _answer(self, conn: Connection, request: ParsedRequest) -> None:
        """Run ``handle`` on a worker thread; a crash closes the connection, never the worker."""
        try:
            self._handle(conn, request)
        except Exception:
            logger.exception("HTTP worker failed")
            self.release(conn, keep_alive=False)

    def release(self, conn: Connection, keep_alive: bool) -> None:
        """A worker is done with ``conn``: return it to the loop (keep-alive) or close it."""
        with self._lock:
            if keep_alive and not self._stopping.is_set():
                self._returned.append(conn)
            else:
                self._handling.discard(conn)
                close_quietly(conn.sock)
                return
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # a full pipe: the loop is awake anyway
            self._wake_w.send(b"x")

    # -- the loop thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        next_sweep_s = 0.0
        while not self._stopping.is_set():
            for key, _ in self._selector.select(timeout=0.25):
                if key.data == "listener":
                    self._accept()
                elif key.data == "wake":
                    self._drain_wake()
                else:
                    self._read(key.data)
            now_s = time.monotonic()
            if now_s >= next_sweep_s:
                self._expire(now_s)
                next_sweep_s = now_s + 0.1
        self._close_all()

    def _accept(self) -> None:
        for _ in range(_ACCEPTS_PER_TURN):
            try:
                sock, addr = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # out of file descriptors, aborted handshake: try again next turn
                self._accept_failed(e)
                return
            sock.setblocking(False)
            if len(self._reading) + len(self._handling) >= self.limits.max_connections and not self._evict():
                send_and_close(sock, busy_bytes("too many connections"))
                continue
            conn = Connection(sock, str(addr[0]), time.monotonic() + self.limits.header_timeout_s)
            self._reading[conn] = None
            self._selector.register(sock, selectors.EVENT_READ, conn)

    def _accept_failed(self, error: OSError) -> None:
        """Out of file descriptors: free one by closing the oldest waiting connection, log once a minute."""
        now_s = time.monotonic()
        if now_s >= self._next_accept_warning_s:
            self._next_accept_warning_s = now_s + 60.0
            logger.warning("HTTP accept failed (%d connections open): %s", self.open_connections(), error)
        if error.errno in (errno.EMFILE, errno.ENFILE) and not self._evict():
            time.sleep(0.05)  # nothing to free: don't spin on a listener that stays readable

    def _evict(self) -> bool:
        """Close the connection that has waited longest for its request; False when none is waiting."""
        if not self._reading:
            return False
        oldest = next(iter(self._reading))
        logger.debug(
            "HTTP: %d connections open; closing the oldest idle one (%s)", len(self._reading), oldest.peer
        )
        self._close(oldest, busy_bytes("too many connections") if oldest.buffer or oldest.head else b"")
        return True

    def _read(self, conn: Connection) -> None:
        try:
            data = conn.sock.recv(_RECV_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._close(conn)
            return
        if not data:
            self._close(conn)
            return
        if conn.idle:  # a new request begins on a kept-alive connection: its deadline starts now
            conn.idle = False
            conn.deadline_s = time.monotonic() + self.limits.header_timeout_s
        conn.buffer += data
        self._advance(conn)

    def _advance(self, conn: Connection) -> None:
        """Dispatch the request in ``conn``'s buffer once it is complete."""
        try:
            request = take_request(conn, self.limits)
        except BadRequestError as e:
            logger.debug("HTTP %s: %s", conn.peer, e)
            self._close(conn, error_bytes(e.status, e.error, e.reason))
            return
        if request is None:
            self._maybe_continue(conn)
            return
        path = request.target.split("?", 1)[0]
        pool = self._priority if path in self.limits.priority_paths else self._pool
        self._selector.unregister(conn.sock)
        del self._reading[conn]
        with self._lock:
            self._handling.add(conn)
        if not pool.submit(conn, request):
            with self._lock:
                self._handling.discard(conn)
            logger.debug("HTTP %s: request queue full; answered 503", conn.peer)
            send_and_close(conn.sock, busy_bytes("the server is busy; retry shortly"))

    def _maybe_continue(self, conn: Connection) -> None:
        if (
            conn.head is None
            or conn.continue_sent
            or "100-continue" not in conn.head[3].get("expect", "").lower()
        ):
            return
        conn.continue_sent = True
        try:
            conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
        except OSError:
            self._close(conn)

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except (BlockingIOError, InterruptedError):
            pass
        with self._lock:
            returned, self._returned = list(self._returned), collections.deque()
            self._handling.difference_update(returned)
        for conn in returned:
            if self._stopping.is_set():
                close_quietly(conn.sock)
                continue
            conn.sock.setblocking(False)
            conn.idle = not conn.buffer
            timeout_s = self.limits.idle_timeout_s if conn.idle else self.limits.header_timeout_s
            conn.deadline_s = time.monotonic() + timeout_s
            self._reading[conn] = None
            self._selector.register(conn.sock, selectors.EVENT_READ, conn)
            if conn.buffer:  # a pipelined request is already here
                self._advance(conn)

    def _expire(self, now_s: float) -> None:
        for conn in [c for c in self._reading if c.deadline_s <= now_s]:
            if conn.idle or not (conn.buffer or conn.head):
                self._close(conn)
            else:
                logger.debug(
                    "HTTP %s: request not complete within %.0f s; closed",
                    conn.peer,
                    self.limits.header_timeout_s,
                )
                self._close(conn, error_bytes(408, "request_timeout", "the request did not arrive in time"))

    def _close(self, conn: Connection, answer: bytes = b"") -> None:
        if conn in self._reading:
            del self._reading[conn]
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(conn.sock)
        if answer:
            send_and_close(conn.sock, answer)
        else:
            close_quietly(conn.sock)

    def _close_all(self) -> None:
        for conn in list(self._reading):
            self._close(conn)
        with self._lock:
            returned, self._returned = list(self._returned), collections.deque()
        for conn in returned:
            close_quietly(conn.sock)
        for sock in (self._wake_r, self._wake_w):
            close_quietly(sock)
        self._selector.close()
