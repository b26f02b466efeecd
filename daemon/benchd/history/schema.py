"""The schema as an ordered list of migrations, and the function that applies them to SQLite.

Each migration moves the database from version ``i`` to ``i + 1`` (the list index plus one) inside one
transaction, together with the ``schema_version`` row, so a crash mid-migration leaves the previous
version intact. Never edit a released migration: append a new one.

Migrations are written once, in SQLite's dialect, and shared by both backends: on PostgreSQL the
connection adapter (:mod:`benchd.history.pg_connection`) translates types (``REAL``, ``BLOB``,
``AUTOINCREMENT``) and placeholders, and :func:`benchd.history.pg_connection.migrate_postgres` applies them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, Protocol


class SQLConnection(Protocol):
    """What migrations and the shared store code use of a connection: ``execute`` with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any:
        """Run one statement; return a cursor (``fetchone``, ``fetchall``, iteration, ``rowcount``)."""


logger = logging.getLogger(__name__)

Migration = Callable[[Any], None]


def _v1_initial(conn: SQLConnection) -> None:
    """Create the first schema: versions, cursors, runs, results, latencies, verdicts."""
    _run_script(
        conn,
        """
        CREATE TABLE versions (
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            registry TEXT NOT NULL,
            path TEXT NOT NULL DEFAULT '',
            source_uri TEXT NOT NULL DEFAULT '',
            created_unix_s REAL,
            aliases_json TEXT NOT NULL DEFAULT '[]',
            tags_json TEXT NOT NULL DEFAULT '[]',
            first_seen_unix_s REAL NOT NULL,
            PRIMARY KEY (model, version)
        );
        CREATE TABLE cursors (
            registry TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            updated_unix_s REAL NOT NULL,
            PRIMARY KEY (registry, key)
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            device TEXT NOT NULL,
            spec_key TEXT NOT NULL,
            scenarios TEXT NOT NULL,
            state TEXT NOT NULL,
            priority INTEGER NOT NULL DEFAULT 0,
            reason TEXT NOT NULL DEFAULT '',
            spec_json TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0,
            enqueued_unix_s REAL NOT NULL,
            started_unix_s REAL,
            ended_unix_s REAL,
            error_kind TEXT,
            error TEXT,
            result_json TEXT
        );
        CREATE INDEX runs_queue ON runs (state, device, priority DESC, id);
        CREATE INDEX runs_dedupe ON runs (model, version, spec_key, device);
        CREATE INDEX runs_model ON runs (model, id);
        CREATE TABLE results (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            run_id INTEGER NOT NULL REFERENCES runs (id),
            idx INTEGER NOT NULL,
            model TEXT NOT NULL,
            version TEXT NOT NULL,
            scenario TEXT NOT NULL,
            batch_size INTEGER NOT NULL,
            device TEXT NOT NULL,
            hardware_class TEXT,
            p50_s REAL, p90_s REAL, p95_s REAL, p99_s REAL, p999_s REAL,
            throughput_qps REAL, throughput_sps REAL,
            energy_per_sample_j REAL,
            valid INTEGER NOT NULL,
            throttled INTEGER NOT NULL,
            ended_unix_s REAL NOT NULL,
            result_json TEXT NOT NULL,
            UNIQUE (run_id, idx)
        );
        CREATE INDEX results_series ON results (model, version, scenario, batch_size, device);
        CREATE TABLE latencies (
            result_id INTEGER PRIMARY KEY REFERENCES results (id),
            count INTEGER NOT NULL,
            codec TEXT NOT NULL,
            data BLOB NOT NULL
        );
        CREATE TABLE verdicts (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            candidate_version TEXT NOT NULL,
            baseline_version TEXT NOT NULL,
            scenario TEXT NOT NULL,
            batch_size INTEGER NOT NULL,
            device TEXT NOT NULL,
            state TEXT NOT NULL,
            decided_unix_s REAL NOT NULL,
            verdict_json TEXT NOT NULL,
            inputs_json TEXT NOT NULL
        );
        CREATE INDEX verdicts_series ON verdicts (model, scenario, batch_size, device, id);
        """,
    )


def _v2_fleet(conn: SQLConnection) -> None:
    """Fleet queues: hardware class, host and lease columns on runs; hardware class and host on verdicts.

    The partial unique indexes are the store's dedupe keys for runs that are queued or running: per
    hardware class for fleet runs, per device otherwise, so concurrent enqueues from many hosts collapse.
    """
    _run_script(
        conn,
        """
        ALTER TABLE runs ADD COLUMN hardware_class TEXT;
        ALTER TABLE runs ADD COLUMN host TEXT;
        ALTER TABLE runs ADD COLUMN lease_owner TEXT;
        ALTER TABLE runs ADD COLUMN lease_expires_unix_s REAL;
        CREATE INDEX runs_class_queue ON runs (state, hardware_class, priority DESC, id);
        CREATE INDEX runs_host ON runs (host, id);
        CREATE UNIQUE INDEX runs_active_per_class ON runs (model, version, spec_key, hardware_class)
            WHERE state IN ('queued', 'running') AND hardware_class IS NOT NULL;
        CREATE UNIQUE INDEX runs_active_per_device ON runs (model, version, spec_key, device)
            WHERE state IN ('queued', 'running') AND hardware_class IS NULL;
        ALTER TABLE verdicts ADD COLUMN hardware_class TEXT;
        ALTER TABLE verdicts ADD COLUMN host TEXT;
        CREATE INDEX verdicts_class ON verdicts (model, scenario, batch_size, device, hardware_class, id);
        """,
    )


def _v3_noise_floors(conn: SQLConnection) -> None:
    """Noise floors measured by A/A batches, per model and hardware class (newest row wins)."""
    _run_script(
        conn,
        """
        CREATE TABLE noise_floors (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            model TEXT NOT NULL,
            hardware_class TEXT NOT NULL,
            device TEXT NOT NULL,
            scenario TEXT NOT NULL,
            p99_ratio REAL NOT NULL,
            p50_ratio REAL NOT NULL,
            measured_unix_s REAL NOT NULL,
            floor_json TEXT NOT NULL,
            host TEXT
        );
        CREATE INDEX noise_floors_key ON noise_floors (model, hardware_class, id);
        """,
    )


def _v4_result_energy(conn: SQLConnection) -> None:
    """``results.energy_j``: the joules of a measured window (NULL otherwise), filled in from the JSON.

    The exporter's energy counter is then one ``SUM`` instead of a read of every stored result.
    """
    conn.execute("ALTER TABLE results ADD COLUMN energy_j REAL")
    last_id = 0
    while True:  # in chunks: a store of 100,000 results is never held in memory at once
        rows = conn.execute(
            "SELECT id, result_json FROM results WHERE id > ? ORDER BY id LIMIT 1000", (last_id,)
        ).fetchall()
        if not rows:
            return
        for result_id, text in rows:
            joules = _measured_energy_j(json.loads(text).get("energy"))
            if joules is not None:
                conn.execute("UPDATE results SET energy_j = ? WHERE id = ?", (joules, result_id))
        last_id = rows[-1][0]


def _measured_energy_j(energy: Any) -> float | None:
    """The joules of a stored result's ``energy`` (a mapping), or None when its window was not measured."""
    if isinstance(energy, dict) and energy.get("measured") and energy.get("energy_j") is not None:
        return float(energy["energy_j"])
    return None


def _run_script(conn: SQLConnection, script: str) -> None:
    """Run ';'-separated statements inside the caller's transaction (``executescript`` would commit)."""
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


#: The migrations in order; ``MIGRATIONS[i]`` upgrades schema version ``i`` to ``i + 1``.
MIGRATIONS: tuple[Migration, ...] = (_v1_initial, _v2_fleet, _v3_noise_floors, _v4_result_energy)


def current_version(conn: sqlite3.Connection) -> int:
    """Return the schema version of an open database (0 for an empty one)."""
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if row is None:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, migrations: Sequence[Migration] = MIGRATIONS) -> int:
    """Bring the database up to ``len(migrations)``; returns the version it started at.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Raises ``RuntimeError`` when the
    database was written by a newer benchd (its version is above the last migration known here).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_unix_s REAL)"
        )
        start = current_version(conn)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    if start > len(migrations):
        raise RuntimeError(
            f"schema version {start} is newer than this benchd understands ({len(migrations)}); "
            "upgrade benchd or point it at another store"
        )
    for target in range(start + 1, len(migrations) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            if current_version(conn) >= target:  # another process migrated meanwhile
                conn.execute("ROLLBACK")
                continue
            migrations[target - 1](conn)
            conn.execute(
                "INSERT INTO schema_version (version, applied_unix_s) VALUES (?, strftime('%s', 'now'))",
                (target,),
            )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        logger.info("history store migrated to schema version %d", target)
    return start
