"""Schema migrations, versions and registry cursors of the SQLite history store."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from benchd.errors import StoreError
from benchd.history import HistoryStore, HistoryStoreError, SQLiteHistoryStore, open_store
from benchd.history.schema import MIGRATIONS, current_version
from benchd.records import ModelVersion


def _tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_empty_file_is_migrated_to_the_latest_schema_and_reopens(db_path: Path, clock) -> None:
    store = SQLiteHistoryStore(str(db_path), clock=clock)
    assert isinstance(store, HistoryStore)
    store.record_version(ModelVersion("resnet", "1", "local"))
    store.close()
    assert {"schema_version", "versions", "cursors", "runs", "results", "latencies", "verdicts"} <= _tables(
        db_path
    )
    with sqlite3.connect(db_path) as conn:
        assert current_version(conn) == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    reopened = SQLiteHistoryStore(str(db_path), clock=clock)  # no migration runs twice
    assert reopened.get_version("resnet", "1") is not None
    reopened.close()
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)


def test_a_later_migration_applies_once_to_an_existing_store(db_path: Path, clock) -> None:
    SQLiteHistoryStore(str(db_path), clock=clock).close()
    calls = []

    def v_next(conn: sqlite3.Connection) -> None:
        calls.append(1)
        conn.execute("ALTER TABLE runs ADD COLUMN note TEXT")

    migrations = (*MIGRATIONS, v_next)
    SQLiteHistoryStore(str(db_path), clock=clock, migrations=migrations).close()
    SQLiteHistoryStore(str(db_path), clock=clock, migrations=migrations).close()
    assert calls == [1]
    with sqlite3.connect(db_path) as conn:
        assert "note" in {r[1] for r in conn.execute("PRAGMA table_info(runs)")}
        assert current_version(conn) == len(MIGRATIONS) + 1


def test_a_failing_migration_leaves_the_previous_version_intact(db_path: Path, clock) -> None:
    SQLiteHistoryStore(str(db_path), clock=clock).close()

    def broken(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("THIS IS NOT SQL")

    with pytest.raises(HistoryStoreError, match="migrate"):
        SQLiteHistoryStore(str(db_path), clock=clock, migrations=(*MIGRATIONS, broken))
    assert "half_done" not in _tables(db_path)
    with sqlite3.connect(db_path) as conn:
        assert current_version(conn) == len(MIGRATIONS)


def test_a_store_from_a_newer_benchd_is_refused_with_the_path(db_path: Path, clock) -> None:
    SQLiteHistoryStore(str(db_path), clock=clock).close()
    with sqlite3.connect(db_path) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 5,))
    with pytest.raises(StoreError, match="newer") as info:
        SQLiteHistoryStore(str(db_path), clock=clock)
    assert info.value.path == str(db_path)
    assert str(db_path) in str(info.value)


def test_a_file_that_is_not_sqlite_raises_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryStoreError, match="garbage.sqlite"):
        SQLiteHistoryStore(str(bad))


def test_record_version_is_true_only_the_first_time_and_refreshes_path(
    store: SQLiteHistoryStore, clock
) -> None:
    mv = ModelVersion(
        "resnet",
        "1",
        "prod",
        source_uri="mlflow-artifacts:/x",
        created_unix_s=5.0,
        aliases=("champion",),
        tags=(("team", "vision"),),
    )
    assert store.record_version(mv) is True
    assert store.record_version(mv) is False
    assert store.get_version("resnet", "1") == mv
    fetched = ModelVersion(
        "resnet", "1", "prod", path="/cache/resnet/1", source_uri="mlflow-artifacts:/x", created_unix_s=5.0
    )
    assert store.record_version(fetched) is False
    assert store.get_version("resnet", "1").path == "/cache/resnet/1"
    assert store.get_version("resnet", "9") is None


def test_list_versions_and_models(store: SQLiteHistoryStore, clock, make_spec) -> None:
    for model, version in [("b-model", "1"), ("a-model", "2"), ("a-model", "1")]:
        store.record_version(ModelVersion(model, version, "local"))
        clock.advance(1)
    store.enqueue_run(make_spec(model="c-model"))  # a model known only from a run
    assert [v.version for v in store.list_versions("a-model")] == ["2", "1"]  # first seen first
    assert [(v.model, v.version) for v in store.list_versions()] == [
        ("b-model", "1"),
        ("a-model", "2"),
        ("a-model", "1"),
    ]
    assert store.list_models() == ["a-model", "b-model", "c-model"]


def test_cursors_persist_across_reopen(db_path: Path, clock) -> None:
    with SQLiteHistoryStore(str(db_path), clock=clock) as store:
        assert store.get_cursor("prod", "resnet") is None
        store.set_cursor("prod", "resnet", "3")
        store.set_cursor("prod", "resnet", "4")
        store.set_cursor("other", "resnet", "1")
    with SQLiteHistoryStore(str(db_path), clock=clock) as store:
        assert store.get_cursor("prod", "resnet") == "4"
        assert store.get_cursor("other", "resnet") == "1"


def test_open_store_accepts_sqlite_urls_and_refuses_others(tmp_path: Path) -> None:
    path = tmp_path / "x" / "b.sqlite"
    store = open_store(f"sqlite:///{path}")  # sqlite:////abs/path
    assert store.path == str(path)
    store.close()
    with pytest.raises(HistoryStoreError, match="sqlite"):
        open_store("postgresql://user:secret@db/benchd")


def test_a_closed_store_raises(store: SQLiteHistoryStore) -> None:
    store.close()
    with pytest.raises(HistoryStoreError, match="closed"):
        store.list_models()
