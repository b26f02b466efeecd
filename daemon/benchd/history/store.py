"""The SQL history store shared by both backends: versions and cursors here, the rest in mixins."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from benchd.history.database import Database
from benchd.history.export_reads import ExportReadsMixin
from benchd.history.floors import FloorsMixin
from benchd.history.recovery import RecoveryMixin
from benchd.history.results import ResultsMixin
from benchd.history.runs import RunQueueMixin
from benchd.records import ModelVersion

logger = logging.getLogger(__name__)

_VERSION_COLUMNS = "model, version, registry, path, source_uri, created_unix_s, aliases_json, tags_json"
#: How long a claim made with an owner holds without a heartbeat, by default. Units: s.
DEFAULT_LEASE_S = 60.0


def _version_from_row(row: tuple[Any, ...]) -> ModelVersion:
    return ModelVersion(
        model=row[0],
        version=row[1],
        registry=row[2],
        path=row[3],
        source_uri=row[4],
        created_unix_s=row[5],
        aliases=tuple(json.loads(row[6])),
        tags=tuple((str(k), str(v)) for k, v in json.loads(row[7])),
    )


class SQLHistoryStore(RunQueueMixin, RecoveryMixin, ResultsMixin, ExportReadsMixin, FloorsMixin):
    """The history store over a :class:`~benchd.history.database.Database` (SQLite or PostgreSQL).

    Subclasses open the backend; everything else is shared. ``shared`` says whether several hosts use
    the store at once; ``host`` is recorded on each claim (and verdict) made through this object;
    ``lease_s`` is how long a claim made with an owner holds without a heartbeat.
    """

    shared = False

    def __init__(
        self,
        db: Database,
        *,
        clock: Callable[[], float],
        lease_s: float = DEFAULT_LEASE_S,
        host: str | None = None,
    ) -> None:
        if lease_s <= 0:
            raise ValueError(f"lease_s must be positive, got {lease_s}")
        self._db = db
        self._clock = clock
        self.lease_s = float(lease_s)
        self.host = host
        self.path = db.path

    def __enter__(self) -> SQLHistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.path!r})"

    def close(self) -> None:
        """Close every connection."""
        self._db.close()

    # -- versions -----------------------------------------------------------------------------------
    def record_version(self, mv: ModelVersion) -> bool:
        """Remember a version a registry reported; True when it is new (to the whole fleet, if shared).

        For a known version the local ``path`` (when given), aliases and tags are refreshed.
        """
        with self._db.write() as conn:
            self._db.lock(conn, f"version:{mv.model}:{mv.version}")
            exists = conn.execute(
                "SELECT 1 FROM versions WHERE model = ? AND version = ?", (mv.model, mv.version)
            ).fetchone()
            aliases, tags = json.dumps(list(mv.aliases)), json.dumps([list(t) for t in mv.tags])
            if exists:
                conn.execute(
                    "UPDATE versions SET path = CASE WHEN ? != '' THEN ? ELSE path END, aliases_json = ?, "
                    "tags_json = ? WHERE model = ? AND version = ?",
                    (mv.path, mv.path, aliases, tags, mv.model, mv.version),
                )
                return False
            conn.execute(
                f"INSERT INTO versions ({_VERSION_COLUMNS}, first_seen_unix_s) VALUES ({', '.join('?' * 9)})",
                (
                    mv.model,
                    mv.version,
                    mv.registry,
                    mv.path,
                    mv.source_uri,
                    mv.created_unix_s,
                    aliases,
                    tags,
                    self._clock(),
                ),
            )
        logger.debug("new version %s %s from %s", mv.model, mv.version, mv.registry)  # the poll logs it
        return True

    def get_version(self, model: str, version: str) -> ModelVersion | None:
        """Return a known version, or None."""
        with self._db.read() as conn:
            row = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM versions WHERE model = ? AND version = ?", (model, version)
            ).fetchone()
        return _version_from_row(row) if row else None

    def list_versions(self, model: str | None = None) -> list[ModelVersion]:
        """Return known versions (of one model or all) in the order benchd first saw them."""
        where, args = ("WHERE model = ?", (model,)) if model is not None else ("", ())
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_VERSION_COLUMNS} FROM versions {where} ORDER BY first_seen_unix_s, rowid", args
            ).fetchall()
        return [_version_from_row(r) for r in rows]

    def list_models(self) -> list[str]:
        """Return the names of all models that have versions or runs, sorted."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT model FROM versions UNION SELECT model FROM runs ORDER BY 1"
            ).fetchall()
        return [r[0] for r in rows]

    # -- registry cursors ---------------------------------------------------------------------------
    def get_cursor(self, registry: str, key: str) -> str | None:
        """Return a registry watcher's cursor value, or None when never set."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT value FROM cursors WHERE registry = ? AND key = ?", (registry, key)
            ).fetchone()
        return row[0] if row else None

    def set_cursor(self, registry: str, key: str, value: str) -> None:
        """Store a registry watcher's cursor value (committed before returning)."""
        with self._db.write() as conn:
            conn.execute(
                "INSERT INTO cursors (registry, key, value, updated_unix_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (registry, key) DO UPDATE SET value = excluded.value, "
                "updated_unix_s = excluded.updated_unix_s",
                (registry, key, str(value), self._clock()),
            )
