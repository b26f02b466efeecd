"""The persisted run queue: enqueue with dedupe, atomic claims with leases, finish/fail, crash recovery.

Written once for both backends: ``?`` placeholders (translated on PostgreSQL); ``self._db.skip_locked``
appends ``FOR UPDATE SKIP LOCKED`` to claim queries and ``self._db.for_update`` ``FOR UPDATE`` to the
read-before-write of a run where rows can be locked (PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` already
serialises writers, so both are empty there); ``self._db.lock`` serialises enqueues of one dedupe key.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchd.history.base import (
    HistoryStoreError,
    LeaseLostError,
    RunRecord,
    decode_json,
    scenario_names,
    spec_key,
)
from benchd.history.database import Database, SQLConnection
from benchd.history.recovery import fail_interrupted
from benchd.history.results import insert_results, load_latencies
from benchd.records import (
    OUTCOMES,
    QUEUED,
    RUN_STATES,
    RUNNING,
    TERMINAL_RUN_STATES,
    RunResult,
    RunSpec,
    to_dict,
)

logger = logging.getLogger(__name__)

_RUN_COLUMNS = (
    "id, model, version, device, state, priority, reason, spec_json, attempts, enqueued_unix_s, "
    "started_unix_s, ended_unix_s, error_kind, error, result_json, hardware_class, host, lease_owner, "
    "lease_expires_unix_s"
)


def _run_from_row(row: tuple[Any, ...]) -> RunRecord:
    spec = decode_json(RunSpec, row[7])
    result = decode_json(RunResult, row[14]) if row[14] else None
    return RunRecord(
        id=row[0],
        model=row[1],
        version=row[2],
        device=row[3],
        state=row[4],
        priority=row[5],
        reason=row[6],
        spec=spec,
        attempts=row[8],
        enqueued_unix_s=row[9],
        started_unix_s=row[10],
        ended_unix_s=row[11],
        error_kind=row[12],
        error=row[13],
        result=result,
        hardware_class=row[15],
        host=row[16],
        lease_owner=row[17],
        lease_expires_unix_s=row[18],
    )


class RunQueueMixin:
    """Run-queue methods of the SQL stores (needs ``_db``, ``_clock``, ``lease_s`` and ``host``)."""

    _db: Database
    _clock: Callable[[], float]
    lease_s: float
    host: str | None

    def enqueue_run(
        self,
        spec: RunSpec,
        *,
        priority: int = 0,
        reason: str = "",
        force: bool = False,
        hardware_class: str | None = None,
    ) -> int | None:
        """Queue a run of ``spec``; returns its id, or None when it is a duplicate.

        The dedupe key is (model, version, :func:`spec_key`, device), or with ``hardware_class`` (fleet
        queues) (model, version, spec_key, hardware class), whichever device of the class runs it. A run
        with the same key that is queued or running always makes this a duplicate; one that already
        finished does too unless ``force`` (cron re-runs, explicit API requests). Higher ``priority`` runs
        are claimed first. Concurrent enqueues from many hosts collapse into one run (a per-key lock,
        and the schema's unique indexes).
        """
        key = spec_key(spec)
        target_col, target = ("hardware_class", hardware_class) if hardware_class else ("device", spec.device)
        with self._db.write() as conn:
            self._db.lock(conn, f"enqueue:{spec.model}:{spec.version}:{key}:{target_col}:{target}")
            states = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT state FROM runs WHERE model = ? AND version = ? AND spec_key = ? AND "
                    + ("hardware_class = ?" if hardware_class else "device = ? AND hardware_class IS NULL"),
                    (spec.model, spec.version, key, target),
                )
            ]
            if QUEUED in states or RUNNING in states or (states and not force):
                logger.debug("run of %s %s on %s not queued: duplicate", spec.model, spec.version, target)
                return None
            run_id = self._db.insert(
                conn,
                "INSERT INTO runs (model, version, device, spec_key, scenarios, state, priority, reason, "
                "spec_json, attempts, enqueued_unix_s, hardware_class) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?) ON CONFLICT DO NOTHING",
                (
                    spec.model,
                    spec.version,
                    spec.device,
                    key,
                    scenario_names(spec.scenarios),
                    QUEUED,
                    int(priority),
                    reason,
                    json.dumps(to_dict(spec)),
                    self._clock(),
                    hardware_class,
                ),
            )
        if run_id is None:
            logger.debug("run of %s %s on %s not queued: duplicate (raced)", spec.model, spec.version, target)
            return None
        logger.info("queued run %d: %s %s on %s (%s)", run_id, spec.model, spec.version, target, reason)
        return run_id

    def claim_next_run(
        self,
        device: str,
        *,
        hardware_class: str | None = None,
        owner: str | None = None,
        max_attempts: int = 2,
    ) -> RunRecord | None:
        """Take the highest-priority, oldest queued run: mark it running, count the attempt.

        Without ``hardware_class`` the runs queued for ``device`` are claimed; with it, the runs queued
        for that class (fleet queues), and the claimed run's device becomes ``device``. With ``owner`` the
        claim holds a lease of :attr:`lease_s` seconds (see :meth:`heartbeat`), and a running run of the
        same queue whose lease expired is taken over first (its host died); one that already used
        ``max_attempts`` claims is failed (``interrupted``) instead. Each claim records :attr:`host`.
        """
        where, target = ("hardware_class = ?", hardware_class) if hardware_class else ("device = ?", device)
        if not hardware_class:
            where += " AND hardware_class IS NULL"
        now = self._clock()
        with self._db.write() as conn:
            row = None
            if owner is not None:
                while True:
                    row = conn.execute(
                        f"SELECT id, attempts FROM runs WHERE state = ? AND {where} AND "
                        "lease_expires_unix_s < ? ORDER BY priority DESC, id ASC LIMIT 1"
                        + self._db.skip_locked,
                        (RUNNING, target, now),
                    ).fetchone()
                    if row is None or row[1] < max_attempts:
                        break
                    fail_interrupted(conn, row[0], row[1], now, "its host stopped renewing the lease")
                if row is not None:
                    logger.warning("taking over run %d (lease expired, attempt %d)", row[0], row[1] + 1)
            if row is None:
                row = conn.execute(
                    f"SELECT id FROM runs WHERE state = ? AND {where} ORDER BY priority DESC, id ASC LIMIT 1"
                    + self._db.skip_locked,
                    (QUEUED, target),
                ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE runs SET state = ?, attempts = attempts + 1, started_unix_s = ?, device = ?, "
                "host = ?, lease_owner = ?, lease_expires_unix_s = ? WHERE id = ?",
                (
                    RUNNING,
                    now,
                    device,
                    self.host,
                    owner,
                    None if owner is None else now + self.lease_s,
                    row[0],
                ),
            )
            return self._get_run(conn, row[0])

    def heartbeat(self, run_id: int, owner: str) -> bool:
        """Extend ``owner``'s lease on a running run by :attr:`lease_s` from now.

        Returns False when the run is no longer running under that owner (the lease expired and another
        host took it over, or it ended): the caller should stop and drop its result.
        """
        with self._db.write() as conn:
            cur = conn.execute(
                "UPDATE runs SET lease_expires_unix_s = ? WHERE id = ? AND state = ? AND lease_owner = ?",
                (self._clock() + self.lease_s, run_id, RUNNING, owner),
            )
            return cur.rowcount == 1

    def finish_run(
        self,
        run_id: int,
        result: RunResult,
        latencies: Mapping[int, np.ndarray] | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """Record a finished run: its state (``result.outcome``), each scenario result and raw latencies.

        Latencies come from ``latencies`` (keyed by index in ``result.results``) or else from each
        result's ``latencies_file`` (.npy); they are copied into the store. Everything commits together.

        Raises:
            LeaseLostError: ``owner`` was given and no longer holds the run's lease (another host took
                it over): nothing is recorded.
            HistoryStoreError: no such run, it already ended, or the outcome is unknown.
        """
        if result.outcome not in OUTCOMES:
            raise HistoryStoreError(self._db.path, f"run {run_id}: unknown outcome {result.outcome!r}")
        blobs = load_latencies(result, latencies)
        with self._db.write() as conn:
            self._require_unfinished(conn, run_id, owner)
            conn.execute(
                "UPDATE runs SET state = ?, ended_unix_s = ?, error_kind = ?, error = ?, result_json = ?, "
                "lease_expires_unix_s = NULL WHERE id = ?",
                (
                    result.outcome,
                    self._clock(),
                    result.error_kind,
                    result.error,
                    json.dumps(to_dict(result)),
                    run_id,
                ),
            )
            row = conn.execute("SELECT model, version FROM runs WHERE id = ?", (run_id,)).fetchone()
            insert_results(self._db, conn, run_id, row[0], row[1], result, blobs, self._clock())
        logger.debug("run %d finished: %s (%d results)", run_id, result.outcome, len(result.results))

    def fail_run(
        self, run_id: int, kind: str, message: str, state: str = "failed", *, owner: str | None = None
    ) -> None:
        """Record a run that ended without a result (worker crash, timeout, bad artifact...).

        Raises:
            LeaseLostError: ``owner`` was given and no longer holds the run's lease.
            HistoryStoreError: no such run, it already ended, or ``state`` is not terminal.
        """
        if state not in TERMINAL_RUN_STATES:
            raise HistoryStoreError(self._db.path, f"run {run_id}: {state!r} is not a terminal state")
        with self._db.write() as conn:
            self._require_unfinished(conn, run_id, owner)
            conn.execute(
                "UPDATE runs SET state = ?, ended_unix_s = ?, error_kind = ?, error = ?, "
                "lease_expires_unix_s = NULL WHERE id = ?",
                (state, self._clock(), kind, message, run_id),
            )
        logger.info("run %d %s: %s: %s", run_id, state, kind, message)

    def promote_queued_run(self, run_id: int, priority: int, baseline: str | None = None) -> bool:
        """Raise a run that is still queued to ``priority`` and give it ``baseline``; False when not queued.

        An explicit request (the API) for a version a poll queued a moment before is deduplicated into that
        run: this makes the run what was asked for (its priority, its baseline) instead of dropping it.
        """
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT state, spec_json, priority FROM runs WHERE id = ?" + self._db.for_update, (run_id,)
            ).fetchone()
            if row is None or row[0] != QUEUED:
                return False
            spec = decode_json(RunSpec, row[1])
            if baseline is not None:
                spec = dataclasses.replace(spec, baseline=baseline)
            conn.execute(
                "UPDATE runs SET priority = ?, spec_json = ? WHERE id = ?",
                (max(int(priority), int(row[2])), json.dumps(to_dict(spec)), run_id),
            )
        return True

    def requeue_run(self, run_id: int, *, owner: str | None = None) -> None:
        """Put a running run back in the queue (its host stops: another host of the class takes it).

        Raises:
            LeaseLostError: ``owner`` was given and no longer holds the run's lease.
            HistoryStoreError: no such run, or it already ended.
        """
        with self._db.write() as conn:
            self._require_unfinished(conn, run_id, owner)
            conn.execute(
                "UPDATE runs SET state = ?, started_unix_s = NULL, lease_owner = NULL, "
                "lease_expires_unix_s = NULL WHERE id = ?",
                (QUEUED, run_id),
            )
        logger.info("run %d re-queued", run_id)

    def get_run(self, run_id: int) -> RunRecord | None:
        """Return the run with this id, or None."""
        with self._db.read() as conn:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_from_row(row) if row else None

    def list_runs(
        self, model: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Return runs, newest first, optionally of one model and/or in one state."""
        where, args = _filters(model=model, state=state)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs {where} ORDER BY id DESC LIMIT ?", (*args, int(limit))
            ).fetchall()
        return [_run_from_row(r) for r in rows]

    def queue_depth(self, device: str | None = None, hardware_class: str | None = None) -> int:
        """Return the number of queued (not yet running) runs, for one device, hardware class or all."""
        where, args = _filters(state=QUEUED, device=device, hardware_class=hardware_class)
        with self._db.read() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0])

    def run_counts(self, host: str | None = None) -> dict[tuple[str, str, str], int]:
        """Return finished-run counts keyed by (model, scenario, outcome), one count per spec scenario.

        Only the outcomes ``ok``, ``failed``, ``timeout`` and ``invalid`` are counted (runs_total); with
        ``host``, only the runs that host ran (a fleet host exports its own).
        """
        counts: dict[tuple[str, str, str], int] = {}
        marks = ", ".join("?" for _ in OUTCOMES)
        by_host = " AND host = ?" if host is not None else ""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT model, scenarios, state, COUNT(*) FROM runs WHERE state IN ({marks}){by_host} "
                "GROUP BY model, scenarios, state",
                (*OUTCOMES, *(() if host is None else (host,))),
            ).fetchall()
        for model, scenarios, state, n in rows:
            for scenario in scenarios.split(","):
                key = (model, scenario, state)
                counts[key] = counts.get(key, 0) + int(n)
        return counts

    def run_state_counts(self) -> dict[str, int]:
        """Return the number of runs in each state (every state of :data:`RUN_STATES`, 0 when none)."""
        counts = dict.fromkeys(RUN_STATES, 0)
        with self._db.read() as conn:
            for state, n in conn.execute("SELECT state, COUNT(*) FROM runs GROUP BY state").fetchall():
                counts[state] = int(n)
        return counts

    def _get_run(self, conn: SQLConnection, run_id: int) -> RunRecord:
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_from_row(row)

    def _require_unfinished(self, conn: SQLConnection, run_id: int, owner: str | None = None) -> None:
        row = conn.execute(
            "SELECT state, lease_owner FROM runs WHERE id = ?" + self._db.for_update,
            (run_id,),
        ).fetchone()
        if row is None:
            raise HistoryStoreError(self._db.path, f"no run {run_id}")
        if owner is not None and row[1] != owner:
            raise LeaseLostError(
                self._db.path, f"run {run_id}: lease lost to {row[1] or 'nobody'} (state {row[0]})"
            )
        if row[0] in TERMINAL_RUN_STATES:
            raise HistoryStoreError(self._db.path, f"run {run_id} already ended ({row[0]})")


def _filters(**columns: Any) -> tuple[str, tuple[Any, ...]]:
    """Return a WHERE clause and its arguments for the columns whose value is not None."""
    used = {k: v for k, v in columns.items() if v is not None}
    if not used:
        return "", ()
    return "WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())
