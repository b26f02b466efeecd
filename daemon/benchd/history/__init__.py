"""benchd's history store: versions seen, the run queue, results, raw latencies and verdicts.

Use :func:`open_store` (or :class:`SQLiteHistoryStore` directly); program against :class:`HistoryStore`.
``postgresql://`` URLs open a :class:`~benchd.history.postgres.PostgresHistoryStore` shared by a fleet
(psycopg is imported only then: it is an optional dependency).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from benchd.history.base import (
    CursorStore,
    HistoryStore,
    HistoryStoreError,
    LeaseLostError,
    ResultRow,
    RunRecord,
    VerdictRow,
    spec_key,
)
from benchd.history.fleet import HostView, LeaseKeeper, ScopedCursorStore, host_name, lease_owner
from benchd.history.sqlite import SQLiteHistoryStore
from benchd.history.store import SQLHistoryStore
from benchd.records import QUEUED, RUN_STATES, RUNNING, TERMINAL_RUN_STATES

__all__ = [
    "QUEUED",
    "RUNNING",
    "RUN_STATES",
    "TERMINAL_RUN_STATES",
    "CursorStore",
    "HistoryStore",
    "HistoryStoreError",
    "HostView",
    "LeaseKeeper",
    "LeaseLostError",
    "ResultRow",
    "RunRecord",
    "SQLHistoryStore",
    "SQLiteHistoryStore",
    "ScopedCursorStore",
    "VerdictRow",
    "host_name",
    "lease_owner",
    "open_store",
    "spec_key",
]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str, *, env: Mapping[str, str] | None = None, **options: Any) -> SQLHistoryStore:
    """Open the store a config URL names.

    ``sqlite:////abs/path.sqlite``, ``sqlite:///rel.sqlite`` or a bare path open the embedded SQLite
    store; ``postgresql://user:pw@host:5432/db?lease_s=60`` the fleet's PostgreSQL store, whose host name
    defaults to :func:`host_name` (``$BENCHD_HOST`` from ``env``, else the hostname). ``options`` go to
    the store's constructor (``clock``, ``lease_s``, ``migrations``...).

    Raises:
        HistoryStoreError: the URL's scheme is not supported, or the store cannot be opened.
    """
    if url.startswith("sqlite:///"):
        return SQLiteHistoryStore(url[len("sqlite:///") :], **options)
    if url.startswith(_POSTGRES_SCHEMES):
        from benchd.history.postgres import PostgresHistoryStore

        options.setdefault("host", host_name(env))
        return PostgresHistoryStore(url, **options)
    if "://" in url:
        raise HistoryStoreError(
            url.split("://", 1)[0] + "://...", "only sqlite:/// and postgresql:// store URLs are supported"
        )
    return SQLiteHistoryStore(url, **options)
