"""Crash recovery and the stuck-run check: runs left ``running`` by a daemon that died or lost track.

A mixin of the SQL stores beside :class:`~benchd.history.runs.RunQueueMixin` (it uses that mixin's
``_get_run``), written once for both backends.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from benchd.history.base import RunRecord
from benchd.history.database import Database, SQLConnection
from benchd.records import QUEUED, RUNNING

logger = logging.getLogger(__name__)


class RecoveryMixin:
    """Recovery methods of the SQL stores (needs ``_db``, ``_clock`` and ``_get_run``)."""

    _db: Database
    _clock: Callable[[], float]
    _get_run: Callable[[SQLConnection, int], RunRecord]  # RunQueueMixin's

    def recover_interrupted(self, max_attempts: int = 2) -> list[RunRecord]:
        """Deal with runs a crash left ``running``: re-queue those with attempts left, fail the rest.

        A run that used ``max_attempts`` claims ends ``failed`` with ``error_kind`` ``interrupted``.
        Call once at start-up, before any worker claims a run. Runs held under a lease that has not
        expired belong to a live host of the fleet and are left alone. Returns the changed runs.
        """
        now = self._clock()
        with self._db.write() as conn:
            rows = conn.execute(
                "SELECT id, attempts FROM runs WHERE state = ? AND "
                "(lease_expires_unix_s IS NULL OR lease_expires_unix_s < ?) ORDER BY id"
                + self._db.skip_locked,
                (RUNNING, now),
            ).fetchall()
            for run_id, attempts in rows:
                if attempts < max_attempts:
                    conn.execute(
                        "UPDATE runs SET state = ?, started_unix_s = NULL, lease_owner = NULL, "
                        "lease_expires_unix_s = NULL WHERE id = ?",
                        (QUEUED, run_id),
                    )
                else:
                    fail_interrupted(conn, run_id, attempts, now, "the daemon stopped mid-run")
            recovered = [self._get_run(conn, run_id) for run_id, _ in rows]
        for run in recovered:
            logger.warning("run %d was interrupted; now %s (attempts %d)", run.id, run.state, run.attempts)
        return recovered

    def fail_stuck_runs(self, grace_s: float, host: str | None = None) -> list[RunRecord]:
        """Fail the runs still ``running`` ``grace_s`` seconds past their timeout; return them.

        A run whose worker was killed at its timeout ends within seconds, so one still running long after
        it was lost (a slot hung, or every write of its end failed): failing it makes it visible in
        ``benchd_runs_total``. Only the runs ``host`` claimed are considered (a fleet host never fails
        another's); with ``host`` None, every running run.
        """
        now = self._clock()
        failed = []
        with self._db.write() as conn:
            rows = conn.execute(
                "SELECT id, started_unix_s, spec_json, host FROM runs WHERE state = ?" + self._db.skip_locked,
                (RUNNING,),
            ).fetchall()
            for run_id, started, spec_json, run_host in rows:
                if host is not None and run_host != host:
                    continue
                timeout_s = float(json.loads(spec_json).get("timeout_s") or 0.0)
                if started is None or now < started + timeout_s + grace_s:
                    continue
                message = (
                    f"still running {now - started:.0f} s after it started, past its timeout of "
                    f"{timeout_s:g} s plus {grace_s:g} s: benchd lost track of it (its slot hung, or "
                    "recording its end failed)"
                )
                conn.execute(
                    "UPDATE runs SET state = 'failed', ended_unix_s = ?, error_kind = 'internal', error = ?, "
                    "lease_expires_unix_s = NULL WHERE id = ?",
                    (now, message, run_id),
                )
                failed.append(run_id)
            records = [self._get_run(conn, run_id) for run_id in failed]
        for run in records:
            logger.error("run %d (%s %s) failed: %s", run.id, run.model, run.version, run.error)
        return records


def fail_interrupted(conn: SQLConnection, run_id: int, attempts: int, now: float, why: str) -> None:
    """Mark a run that used up its attempts ``failed`` (``error_kind`` ``interrupted``), saying why."""
    conn.execute(
        "UPDATE runs SET state = 'failed', ended_unix_s = ?, error_kind = 'interrupted', error = ?, "
        "lease_expires_unix_s = NULL WHERE id = ?",
        (now, f"interrupted {attempts} times ({why})", run_id),
    )
