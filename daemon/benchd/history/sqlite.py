"""The SQLite history store: one file, WAL mode, safe for several threads and reader processes."""

from __future__ import annotations

import time
from collections.abc import Callable

from benchd.history.connection import Connections
from benchd.history.schema import MIGRATIONS, Migration
from benchd.history.store import DEFAULT_LEASE_S, SQLHistoryStore


class SQLiteHistoryStore(SQLHistoryStore):
    """The history store in one SQLite file (see :class:`benchd.history.HistoryStore` for the contract).

    Args:
        path: the database file; its folder is created. The schema is created or migrated on open.
        clock: wall-clock seconds since the epoch (injected by tests).
        busy_timeout_s: how long a statement waits for another writer's lock before failing.
        migrations: the schema migrations (tests inject extra ones).
        lease_s: how long a claim made with an owner holds without a heartbeat.
        host: recorded on each claim made through this object (None on a single host).

    Raises:
        HistoryStoreError: the file cannot be opened or migrated, or was written by a newer benchd.
    """

    shared = False

    def __init__(
        self,
        path: str,
        *,
        clock: Callable[[], float] = time.time,
        busy_timeout_s: float = 30.0,
        migrations: tuple[Migration, ...] = MIGRATIONS,
        lease_s: float = DEFAULT_LEASE_S,
        host: str | None = None,
    ) -> None:
        super().__init__(
            Connections(str(path), busy_timeout_s=busy_timeout_s, migrations=migrations),
            clock=clock,
            lease_s=lease_s,
            host=host,
        )

    def __enter__(self) -> SQLiteHistoryStore:
        return self
