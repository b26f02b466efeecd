"""What the shared SQL store code needs from a backend: transactions, inserts, locks, dialect hooks.

:class:`benchd.history.connection.Connections` (SQLite) and
:class:`benchd.history.pg_connection.PostgresConnections` implement :class:`Database`; the store mixins
(:mod:`~benchd.history.runs`, :mod:`~benchd.history.results`, :mod:`~benchd.history.store`) are written
once against it, with ``?`` placeholders and SQLite-dialect DDL that the PostgreSQL adapter translates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any, Protocol

from benchd.history.schema import SQLConnection

__all__ = ["Database", "SQLConnection"]


class Database(Protocol):
    """A backend's connections (see the module docstring)."""

    #: Where the data lives, for messages: a file path, or a URL without its password.
    path: str
    #: ``sqlite`` or ``postgresql``.
    dialect: str
    #: Suffix that row-locks a read-before-write (`` FOR UPDATE``), or ``""`` where writers are serialised.
    for_update: str
    #: Suffix for claim queries that skip rows other transactions hold (`` FOR UPDATE SKIP LOCKED``).
    skip_locked: str

    def write(self) -> contextlib.AbstractContextManager[SQLConnection]:
        """Run the body in one write transaction, committed on success, rolled back on error."""

    def read(self) -> contextlib.AbstractContextManager[SQLConnection]:
        """Run the body in one read transaction that sees one snapshot."""

    def errors(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Translate the driver's errors raised in the body into ``HistoryStoreError``."""

    def insert(self, conn: Any, sql: str, args: Sequence[Any]) -> int | None:
        """Run an INSERT into a table with an ``id`` column; return the id, None when skipped."""

    def lock(self, conn: Any, key: str) -> None:
        """Serialise write transactions that name ``key`` until this one ends."""

    def close(self) -> None:
        """Close every connection."""
