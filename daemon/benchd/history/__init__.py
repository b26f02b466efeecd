"""benchd's history store: versions seen, the run queue, results, raw latencies and verdicts.

Use :func:`open_store` (or :class:`SQLiteHistoryStore` directly); program against :class:`HistoryStore`.
"""

from __future__ import annotations

from benchd.history.base import (
    QUEUED,
    RUN_STATES,
    RUNNING,
    TERMINAL_STATES,
    CursorStore,
    HistoryStore,
    HistoryStoreError,
    ResultRow,
    RunRecord,
    VerdictRow,
    spec_key,
)
from benchd.history.sqlite import SQLiteHistoryStore

__all__ = [
    "QUEUED",
    "RUNNING",
    "RUN_STATES",
    "TERMINAL_STATES",
    "CursorStore",
    "HistoryStore",
    "HistoryStoreError",
    "ResultRow",
    "RunRecord",
    "SQLiteHistoryStore",
    "VerdictRow",
    "open_store",
    "spec_key",
]


def open_store(url: str) -> SQLiteHistoryStore:
    """Open the store a config URL names: ``sqlite:////abs/path.sqlite``, ``sqlite:///rel.sqlite`` or a path.

    Raises:
        HistoryStoreError: the URL's scheme is not supported (PostgreSQL is not implemented yet).
    """
    if url.startswith("sqlite:///"):
        return SQLiteHistoryStore(url[len("sqlite:///") :])
    if "://" in url:
        raise HistoryStoreError(url.split("://", 1)[0] + "://...", "only sqlite:/// store URLs are supported")
    return SQLiteHistoryStore(url)
