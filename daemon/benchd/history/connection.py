"""SQLite connections for the history store: one per thread, WAL, busy timeout, typed errors.

Every thread gets its own connection (sqlite3 objects must not be shared across threads while in use),
all in autocommit mode; writes run in ``BEGIN IMMEDIATE`` transactions so two writers never deadlock on
a lock upgrade and a claim is atomic across threads and processes. ``synchronous=FULL`` makes every
commit durable, so nothing recorded is lost on ``kill -9`` (or a power cut).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import weakref
from collections.abc import Iterator, Sequence
from typing import Any

from benchd.history.base import HistoryStoreError
from benchd.history.schema import MIGRATIONS, Migration, migrate

logger = logging.getLogger(__name__)


class Connections:
    """A connection per thread to one SQLite file, created on first use and closed together.

    Connections of threads that have ended are closed the next time a new thread opens one, so a
    thread-per-request HTTP server does not leak file handles. ``BEGIN IMMEDIATE`` serialises writers, so
    :meth:`lock` and the row-lock suffixes (``for_update``, ``skip_locked``) are no-ops here.
    """

    dialect = "sqlite"
    for_update = ""
    skip_locked = ""

    def __init__(
        self, path: str, *, busy_timeout_s: float = 30.0, migrations: tuple[Migration, ...] = MIGRATIONS
    ) -> None:
        self.path = os.path.abspath(path)
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[tuple[weakref.ref[threading.Thread], sqlite3.Connection]] = []
        self._closed = False
        parent = os.path.dirname(self.path)
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise HistoryStoreError(self.path, f"cannot create folder {parent}: {exc}") from exc
        conn = self.get()
        try:
            start = migrate(conn, migrations)
        except RuntimeError as exc:
            raise HistoryStoreError(self.path, str(exc)) from exc
        except sqlite3.Error as exc:
            raise HistoryStoreError(self.path, f"cannot migrate the schema: {exc}") from exc
        if start != len(migrations):
            logger.info("history store %s at schema version %d (was %d)", self.path, len(migrations), start)

    def get(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if self._closed:
            raise HistoryStoreError(self.path, "the store is closed")
        try:
            conn = sqlite3.connect(
                self.path, timeout=self._busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                logger.warning("history store %s: journal_mode is %s, not wal", self.path, mode)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
        except sqlite3.Error as exc:
            raise HistoryStoreError(self.path, f"cannot open: {exc}") from exc
        self._local.conn = conn
        dead: list[sqlite3.Connection] = []
        with self._lock:
            kept = []
            for thread_ref, other in self._all:
                thread = thread_ref()
                if thread is None or not thread.is_alive():
                    dead.append(other)  # its thread ended (a per-request HTTP thread): free the handle
                else:
                    kept.append((thread_ref, other))
            self._all = [*kept, (weakref.ref(threading.current_thread()), conn)]
        for other in dead:
            with contextlib.suppress(sqlite3.Error):
                other.close()
        return conn

    def open_count(self) -> int:
        """Return how many connections are open (one per live thread that used the store)."""
        with self._lock:
            return len(self._all)

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """Run the body in one ``BEGIN IMMEDIATE`` transaction, committed on success, rolled back on error."""
        conn = self.get()
        with self.errors("write"):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """Run the body in one read transaction, so multi-statement reads see one snapshot."""
        conn = self.get()
        with self.errors("read"):
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    def insert(self, conn: sqlite3.Connection, sql: str, args: Sequence[Any]) -> int | None:
        """Run an INSERT (maybe ``ON CONFLICT DO NOTHING``); return the new row's id, None when skipped."""
        cur = conn.execute(sql, tuple(args))
        return int(cur.lastrowid) if cur.rowcount == 1 and cur.lastrowid else None

    def lock(self, conn: sqlite3.Connection, key: str) -> None:
        """Serialise writers on ``key`` until commit: nothing to do, ``BEGIN IMMEDIATE`` already does."""

    @contextlib.contextmanager
    def errors(self, what: str) -> Iterator[None]:
        """Translate ``sqlite3.Error`` raised in the body into :class:`HistoryStoreError`."""
        try:
            yield
        except sqlite3.Error as exc:
            raise HistoryStoreError(self.path, f"{what} failed: {exc}") from exc

    def close(self) -> None:
        """Close every thread's connection; later calls raise :class:`HistoryStoreError`."""
        with self._lock:
            self._closed = True
            conns, self._all = self._all, []
        for _, conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._local = threading.local()
