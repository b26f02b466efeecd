"""The PostgreSQL history store: one database shared by a fleet of hosts, each (version, class) run once.

Selected by a ``postgresql://`` store URL. Same schema, migrations and code as the SQLite store (see
:mod:`benchd.history.pg_connection` for the dialect layer); ``shared`` is True, so the daemon queues runs per
hardware class and claims them with leases that a heartbeat renews. benchd options ride in the URL's
query and are removed before it reaches libpq::

    postgresql://benchd:secret@db:5432/benchd?lease_s=60&pool_max=4&connect_timeout_s=30
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from benchd.history.base import HistoryStoreError
from benchd.history.pg_connection import PostgresConnections
from benchd.history.schema import MIGRATIONS, Migration
from benchd.history.store import DEFAULT_LEASE_S, SQLHistoryStore
from benchd.redaction import redact_url

#: benchd's own URL query options and their types (everything else is passed to libpq).
URL_OPTIONS: Mapping[str, type] = {
    "lease_s": float,
    "pool_min": int,
    "pool_max": int,
    "connect_timeout_s": float,
}


def split_url_options(url: str) -> tuple[str, dict[str, float | int]]:
    """Return (the URL without benchd's query options, those options typed).

    Raises:
        HistoryStoreError: an option's value is not a number.
    """
    parts = urlsplit(url)
    kept, options = [], {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in URL_OPTIONS:
            try:
                options[key] = URL_OPTIONS[key](value)
            except ValueError as exc:
                raise HistoryStoreError(
                    redact_url(url), f"store URL option {key}={value!r} is not a number"
                ) from exc
        else:
            kept.append((key, value))
    return urlunsplit(parts._replace(query=urlencode(kept))), options


class PostgresHistoryStore(SQLHistoryStore):
    """The history store in a PostgreSQL database (see :class:`benchd.history.HistoryStore`).

    Args:
        url: ``postgresql://...``; benchd options in its query (``lease_s``, ``pool_min``, ``pool_max``,
            ``connect_timeout_s``) override the keyword arguments below.
        clock: wall-clock seconds since the epoch; leases compare the hosts' clocks, so keep them in NTP
            sync (skew well below ``lease_s``).
        lease_s: how long a claim made with an owner holds without a heartbeat.
        host: this host's name, recorded on its claims and verdicts (a fleet host exports its own).
        pool_min, pool_max: connection pool bounds.
        connect_timeout_s: how long to wait for the server or a free pooled connection.
        migrations: the schema migrations (tests inject extra ones).

    Raises:
        HistoryStoreError: the server cannot be reached or the schema migrated, or it is from a newer benchd.
    """

    shared = True

    def __init__(
        self,
        url: str,
        *,
        clock: Callable[[], float] = time.time,
        lease_s: float = DEFAULT_LEASE_S,
        host: str | None = None,
        pool_min: int = 1,
        pool_max: int = 4,
        connect_timeout_s: float = 30.0,
        migrations: tuple[Migration, ...] = MIGRATIONS,
    ) -> None:
        dsn, options = split_url_options(url)
        super().__init__(
            PostgresConnections(
                dsn,
                min_size=int(options.get("pool_min", pool_min)),
                max_size=int(options.get("pool_max", pool_max)),
                timeout_s=float(options.get("connect_timeout_s", connect_timeout_s)),
                migrations=migrations,
            ),
            clock=clock,
            lease_s=float(options.get("lease_s", lease_s)),
            host=host,
        )

    def __enter__(self) -> PostgresHistoryStore:
        return self
