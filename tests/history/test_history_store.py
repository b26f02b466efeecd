"""Schema migrations, versions and registry cursors of the history store (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from tests.history.conftest import raw_rows
from tests.mlflow_server import free_port

from benchd.errors import StoreError
from benchd.history import HistoryStore, HistoryStoreError, SQLHistoryStore, SQLiteHistoryStore, open_store
from benchd.history.schema import MIGRATIONS, current_version
from benchd.records import ModelVersion

TABLES = ("schema_version", "versions", "cursors", "runs", "results", "latencies", "verdicts")


def _has_table(store: SQLHistoryStore, name: str) -> bool:
    """Whether the store's database has table ``name``, read from its catalog.

    A store that cannot be read raises: an error is never taken for "no such table".
    """
    if isinstance(store, SQLiteHistoryStore):
        sql = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?"
    else:
        sql = (
            "SELECT COUNT(*) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name = ?"
        )
    return int(raw_rows(store, sql, (name,))[0][0]) == 1


def _schema_version(store: SQLHistoryStore) -> int:
    return int(raw_rows(store, "SELECT MAX(version) FROM schema_version")[0][0])


def test_empty_database_is_migrated_to_the_latest_schema_and_reopens(open_test_store) -> None:
    store = open_test_store()
    assert isinstance(store, HistoryStore)
    store.record_version(ModelVersion("resnet", "1", "local"))
    assert all(_has_table(store, t) for t in TABLES)
    assert _schema_version(store) == len(MIGRATIONS)
    assert raw_rows(store, "SELECT COUNT(*) FROM schema_version")[0][0] == len(MIGRATIONS)
    store.close()
    reopened = open_test_store()  # no migration runs twice
    assert reopened.get_version("resnet", "1") is not None
    assert raw_rows(reopened, "SELECT COUNT(*) FROM schema_version")[0][0] == len(MIGRATIONS)


def test_sqlite_store_uses_wal(db_path: Path, clock) -> None:
    SQLiteHistoryStore(str(db_path), clock=clock).close()
    with sqlite3.connect(db_path) as conn:
        assert current_version(conn) == len(MIGRATIONS)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_later_migration_applies_once_to_an_existing_store(open_test_store) -> None:
    open_test_store().close()
    calls = []

    def v_next(conn) -> None:
        calls.append(1)
        conn.execute("ALTER TABLE runs ADD COLUMN note REAL")

    migrations = (*MIGRATIONS, v_next)
    open_test_store(migrations=migrations).close()
    store = open_test_store(migrations=migrations)
    assert calls == [1]
    assert raw_rows(store, "SELECT COUNT(note) FROM runs") == [(0,)]
    assert _schema_version(store) == len(MIGRATIONS) + 1


def test_results_stored_before_the_energy_column_get_their_joules(open_test_store, make_spec) -> None:
    """Schema 4 added ``results.energy_j`` (the exporter sums it); older results are filled in from JSON."""
    import json

    from tests.history.conftest import _scenario_result

    from benchd.records import EnergyReport, to_dict

    old = open_test_store(migrations=MIGRATIONS[:3])
    run_id = old.enqueue_run(make_spec())
    measured = _scenario_result()  # 5 J measured
    unmeasured = dataclasses.replace(measured, energy=EnergyReport(measured=False, reason="too short"))
    with old._db.write() as conn:
        for idx, result in enumerate((measured, unmeasured, dataclasses.replace(measured, energy=None))):
            conn.execute(
                "INSERT INTO results (run_id, idx, model, version, scenario, batch_size, device, valid, "
                "throttled, ended_unix_s, result_json) "
                "VALUES (?, ?, 'resnet', '1', ?, 1, 'cpu', 1, 0, 1.0, ?)",
                (run_id, idx, f"s{idx}", json.dumps(to_dict(result))),
            )
    old.close()
    store = open_test_store()
    assert _schema_version(store) == len(MIGRATIONS) == 4
    assert raw_rows(store, "SELECT idx, energy_j FROM results ORDER BY idx") == [
        (0, 5.0),
        (1, None),
        (2, None),
    ]
    assert store.energy_totals() == {"cpu": 5.0}


def test_a_failing_migration_leaves_the_previous_version_intact(open_test_store) -> None:
    open_test_store().close()

    def broken(conn) -> None:
        conn.execute("CREATE TABLE half_done (x INTEGER)")
        conn.execute("THIS IS NOT SQL")

    with pytest.raises(HistoryStoreError, match="migrate"):
        open_test_store(migrations=(*MIGRATIONS, broken))
    store = open_test_store()
    assert not _has_table(store, "half_done")
    assert _schema_version(store) == len(MIGRATIONS)


def test_a_store_from_a_newer_benchd_is_refused_with_the_path(open_test_store) -> None:
    store = open_test_store()
    with store._db.write() as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (?)", (len(MIGRATIONS) + 5,))
    store.close()
    with pytest.raises(StoreError, match="newer") as info:
        open_test_store()
    assert info.value.path == store.path
    assert store.path in str(info.value)


def test_a_file_that_is_not_sqlite_raises_store_error(tmp_path: Path) -> None:
    bad = tmp_path / "garbage.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(HistoryStoreError, match="garbage.sqlite"):
        SQLiteHistoryStore(str(bad))


def test_record_version_is_true_only_the_first_time_and_refreshes_path(store: SQLHistoryStore) -> None:
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


def test_list_versions_and_models(store: SQLHistoryStore, clock, make_spec) -> None:
    for model, version in [("b-model", "1"), ("a-model", "2"), ("a-model", "1")]:
        store.record_version(ModelVersion(model, version, "local"))
        clock.advance(1)
    store.record_version(ModelVersion("a-model", "0", "local"))  # same instant: insertion order breaks ties
    store.enqueue_run(make_spec(model="c-model"))  # a model known only from a run
    assert [v.version for v in store.list_versions("a-model")] == ["2", "1", "0"]  # first seen first
    assert [(v.model, v.version) for v in store.list_versions()] == [
        ("b-model", "1"),
        ("a-model", "2"),
        ("a-model", "1"),
        ("a-model", "0"),
    ]
    assert store.list_models() == ["a-model", "b-model", "c-model"]


def test_cursors_persist_across_reopen(open_test_store) -> None:
    with open_test_store() as store:
        assert store.get_cursor("prod", "resnet") is None
        store.set_cursor("prod", "resnet", "3")
        store.set_cursor("prod", "resnet", "4")
        store.set_cursor("other", "resnet", "1")
    with open_test_store() as store:
        assert store.get_cursor("prod", "resnet") == "4"
        assert store.get_cursor("other", "resnet") == "1"


def test_open_store_picks_the_backend_by_url_and_refuses_others(tmp_path: Path, pg_server) -> None:
    path = tmp_path / "x" / "b.sqlite"
    store = open_store(f"sqlite:///{path}")  # sqlite:////abs/path
    assert store.path == str(path) and store.shared is False
    store.close()
    url = pg_server.create_database()
    pg = open_store(url + "?lease_s=7.5&pool_max=2", env={"BENCHD_HOST": "node-7"})
    assert pg.shared is True and pg.lease_s == 7.5 and pg.host == "node-7"
    assert type(pg).__name__ == "PostgresHistoryStore" and "lease_s" not in pg.path
    pg.close()
    with pytest.raises(HistoryStoreError, match="sqlite"):
        open_store("mysql://user:secret@db/benchd")


def test_an_unreachable_postgresql_fails_fast_without_the_password() -> None:
    url = f"postgresql://benchd:secret-pw@127.0.0.1:{free_port()}/benchd?connect_timeout_s=2"
    with pytest.raises(HistoryStoreError, match="cannot connect") as info:
        open_store(url)
    assert "secret-pw" not in str(info.value) and "127.0.0.1" in info.value.path


def test_a_closed_store_raises(store: SQLHistoryStore) -> None:
    store.close()
    with pytest.raises(HistoryStoreError, match="closed"):
        store.list_models()
