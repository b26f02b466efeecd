"""The persisted run queue: enqueue with dedupe, atomic claim, finish/fail, crash recovery."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchd.history.base import (
    QUEUED,
    RUNNING,
    TERMINAL_STATES,
    HistoryStoreError,
    RunRecord,
    decode_json,
    scenario_names,
    spec_key,
)
from benchd.history.connection import Connections
from benchd.history.results import insert_results, load_latencies
from benchd.records import OUTCOMES, RunResult, RunSpec, to_dict

logger = logging.getLogger(__name__)

_RUN_COLUMNS = (
    "id, model, version, device, state, priority, reason, spec_json, attempts, enqueued_unix_s, "
    "started_unix_s, ended_unix_s, error_kind, error, result_json"
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
    )


class RunQueueMixin:
    """Run-queue methods of the SQLite store (needs ``_db`` and ``_clock``)."""

    _db: Connections
    _clock: Callable[[], float]

    def enqueue_run(
        self, spec: RunSpec, *, priority: int = 0, reason: str = "", force: bool = False
    ) -> int | None:
        """Queue a run of ``spec``; returns its id, or None when it is a duplicate.

        The dedupe key is (model, version, :func:`spec_key`, device). A run with the same key that is
        queued or running always makes this a duplicate; one that already finished does too unless
        ``force`` (cron re-runs, explicit API requests). Higher ``priority`` runs are claimed first.
        """
        key = spec_key(spec)
        with self._db.write() as conn:
            states = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT state FROM runs "
                    "WHERE model = ? AND version = ? AND spec_key = ? AND device = ?",
                    (spec.model, spec.version, key, spec.device),
                )
            ]
            if QUEUED in states or RUNNING in states or (states and not force):
                logger.debug(
                    "run of %s %s on %s not queued: duplicate", spec.model, spec.version, spec.device
                )
                return None
            cur = conn.execute(
                "INSERT INTO runs (model, version, device, spec_key, scenarios, state, priority, reason, "
                "spec_json, attempts, enqueued_unix_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?)",
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
                ),
            )
            run_id = int(cur.lastrowid or 0)
        logger.info("queued run %d: %s %s on %s (%s)", run_id, spec.model, spec.version, spec.device, reason)
        return run_id

    def claim_next_run(self, device: str) -> RunRecord | None:
        """Take the highest-priority, oldest queued run for ``device``: mark it running, count the attempt."""
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT id FROM runs WHERE state = ? AND device = ? ORDER BY priority DESC, id ASC LIMIT 1",
                (QUEUED, device),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE runs SET state = ?, attempts = attempts + 1, started_unix_s = ? WHERE id = ?",
                (RUNNING, self._clock(), row[0]),
            )
            return self._get_run(conn, row[0])

    def finish_run(
        self, run_id: int, result: RunResult, latencies: Mapping[int, np.ndarray] | None = None
    ) -> None:
        """Record a finished run: its state (``result.outcome``), each scenario result and raw latencies.

        Latencies come from ``latencies`` (keyed by index in ``result.results``) or else from each
        result's ``latencies_file`` (.npy); they are copied into the store. Everything commits together.
        """
        if result.outcome not in OUTCOMES:
            raise HistoryStoreError(self._db.path, f"run {run_id}: unknown outcome {result.outcome!r}")
        blobs = load_latencies(result, latencies)
        with self._db.write() as conn:
            self._require_unfinished(conn, run_id)
            conn.execute(
                "UPDATE runs SET state = ?, ended_unix_s = ?, error_kind = ?, error = ?, result_json = ? "
                "WHERE id = ?",
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
            insert_results(conn, run_id, row[0], row[1], result, blobs, self._clock())
        logger.info("run %d finished: %s (%d results)", run_id, result.outcome, len(result.results))

    def fail_run(self, run_id: int, kind: str, message: str, state: str = "failed") -> None:
        """Record a run that ended without a result (worker crash, timeout, bad artifact...)."""
        if state not in TERMINAL_STATES:
            raise HistoryStoreError(self._db.path, f"run {run_id}: {state!r} is not a terminal state")
        with self._db.write() as conn:
            self._require_unfinished(conn, run_id)
            conn.execute(
                "UPDATE runs SET state = ?, ended_unix_s = ?, error_kind = ?, error = ? WHERE id = ?",
                (state, self._clock(), kind, message, run_id),
            )
        logger.info("run %d %s: %s: %s", run_id, state, kind, message)

    def recover_interrupted(self, max_attempts: int = 2) -> list[RunRecord]:
        """Deal with runs a crash left ``running``: re-queue those with attempts left, fail the rest.

        A run that used ``max_attempts`` claims ends ``failed`` with ``error_kind`` ``interrupted``.
        Call once at start-up, before any worker claims a run. Returns the changed runs.
        """
        now = self._clock()
        with self._db.write() as conn:
            rows = conn.execute(
                "SELECT id, attempts FROM runs WHERE state = ? ORDER BY id", (RUNNING,)
            ).fetchall()
            for run_id, attempts in rows:
                if attempts < max_attempts:
                    conn.execute(
                        "UPDATE runs SET state = ?, started_unix_s = NULL WHERE id = ?", (QUEUED, run_id)
                    )
                else:
                    conn.execute(
                        "UPDATE runs SET state = 'failed', ended_unix_s = ?, error_kind = 'interrupted', "
                        "error = ? WHERE id = ?",
                        (now, f"interrupted {attempts} times (the daemon stopped mid-run)", run_id),
                    )
            recovered = [self._get_run(conn, run_id) for run_id, _ in rows]
        for run in recovered:
            logger.warning("run %d was interrupted; now %s (attempts %d)", run.id, run.state, run.attempts)
        return recovered

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

    def queue_depth(self, device: str | None = None) -> int:
        """Return the number of queued (not yet running) runs, for one device or all."""
        where, args = _filters(state=QUEUED, device=device)
        with self._db.read() as conn:
            return int(conn.execute(f"SELECT COUNT(*) FROM runs {where}", args).fetchone()[0])

    def run_counts(self) -> dict[tuple[str, str, str], int]:
        """Return finished-run counts keyed by (model, scenario, outcome), one count per spec scenario.

        Only the outcomes ``ok``, ``failed``, ``timeout`` and ``invalid`` are counted (runs_total).
        """
        counts: dict[tuple[str, str, str], int] = {}
        marks = ", ".join("?" for _ in OUTCOMES)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT model, scenarios, state, COUNT(*) FROM runs WHERE state IN ({marks}) "
                "GROUP BY model, scenarios, state",
                OUTCOMES,
            ).fetchall()
        for model, scenarios, state, n in rows:
            for scenario in scenarios.split(","):
                key = (model, scenario, state)
                counts[key] = counts.get(key, 0) + int(n)
        return counts

    def _get_run(self, conn: sqlite3.Connection, run_id: int) -> RunRecord:
        row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _run_from_row(row)

    def _require_unfinished(self, conn: sqlite3.Connection, run_id: int) -> None:
        row = conn.execute("SELECT state FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise HistoryStoreError(self._db.path, f"no run {run_id}")
        if row[0] in TERMINAL_STATES:
            raise HistoryStoreError(self._db.path, f"run {run_id} already ended ({row[0]})")


def _filters(**columns: Any) -> tuple[str, tuple[Any, ...]]:
    """Return a WHERE clause and its arguments for the columns whose value is not None."""
    used = {k: v for k, v in columns.items() if v is not None}
    if not used:
        return "", ()
    return "WHERE " + " AND ".join(f"{k} = ?" for k in used), tuple(used.values())
