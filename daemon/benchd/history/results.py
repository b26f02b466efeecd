"""Scenario results, their raw latency samples (zlib-compressed int64 ns) and regression verdicts."""

from __future__ import annotations

import json
import logging
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchd.history.base import HistoryStoreError, ResultRow, VerdictRow, decode_json
from benchd.history.database import Database, SQLConnection
from benchd.records import RunResult, ScenarioResult, Verdict, to_dict

logger = logging.getLogger(__name__)

CODEC = "zlib-int64le"
_RESULT_COLUMNS = "id, run_id, model, version, device, hardware_class, ended_unix_s, result_json"
_ROW_FILTERS = ("model", "version", "scenario", "hardware_class")


def encode_latencies(values: np.ndarray) -> bytes:
    """Compress latencies (ns) as zlib over little-endian int64 bytes."""
    return zlib.compress(np.ascontiguousarray(values, dtype="<i8").tobytes(), 6)


def decode_latencies(blob: bytes, count: int) -> np.ndarray:
    """Return the int64 ns array :func:`encode_latencies` compressed."""
    values = np.frombuffer(zlib.decompress(blob), dtype="<i8").astype(np.int64)
    if values.size != count:
        raise ValueError(f"expected {count} latencies, found {values.size}")
    return values


def load_latencies(result: RunResult, given: Mapping[int, np.ndarray] | None) -> dict[int, tuple[int, bytes]]:
    """Return ``{index: (count, blob)}`` for each scenario result with latencies.

    ``given`` (keyed by index in ``result.results``) wins; otherwise each result's ``latencies_file``
    (.npy) is read. A missing or unreadable file is logged and skipped: the summary still gets stored.
    """
    blobs: dict[int, tuple[int, bytes]] = {}
    for i, sr in enumerate(result.results):
        values: np.ndarray | None = None
        if given is not None and i in given:
            values = np.asarray(given[i])
        elif sr.latencies_file:
            try:
                values = np.load(sr.latencies_file, allow_pickle=False)
            except (OSError, ValueError) as exc:
                logger.warning(
                    "latencies of %s %s %s not stored: %s", result.model, result.version, sr.scenario, exc
                )
        if values is not None:
            flat = np.asarray(values).reshape(-1)
            if flat.dtype.kind not in "iu":
                raise ValueError(f"latencies of result {i} must be integer ns, not {flat.dtype}")
            blobs[i] = (int(flat.size), encode_latencies(flat))
    return blobs


def insert_results(
    db: Database,
    conn: SQLConnection,
    run_id: int,
    model: str,
    version: str,
    result: RunResult,
    blobs: Mapping[int, tuple[int, bytes]],
    now_unix_s: float,
) -> None:
    """Insert one results row per scenario result (and its latencies) inside the caller's transaction."""
    hardware_class = result.fingerprint.get("hardware_class") if result.fingerprint else None
    ended = result.ended_unix_s or now_unix_s
    for i, sr in enumerate(result.results):
        lat = sr.latency
        throttled = bool(sr.telemetry.throttled) if sr.telemetry else False
        eps = sr.energy.energy_per_sample_j if sr.energy else None
        joules = sr.energy.energy_j if sr.energy is not None and sr.energy.measured else None
        result_id = db.insert(
            conn,
            "INSERT INTO results (run_id, idx, model, version, scenario, batch_size, device, hardware_class, "
            "p50_s, p90_s, p95_s, p99_s, p999_s, throughput_qps, throughput_sps, energy_per_sample_j, valid, "
            "throttled, ended_unix_s, result_json, energy_j) "
            f"VALUES ({', '.join('?' * 21)})",
            (
                run_id,
                i,
                model,
                version,
                sr.scenario,
                sr.batch_size,
                sr.device,
                None if hardware_class is None else str(hardware_class),
                lat.p50_s,
                lat.p90_s,
                lat.p95_s,
                lat.p99_s,
                lat.p999_s,
                sr.throughput_qps,
                sr.throughput_sps,
                eps,
                int(sr.valid),
                int(throttled),
                ended,
                json.dumps(to_dict(sr)),
                joules,
            ),
        )
        if i in blobs:
            count, blob = blobs[i]
            conn.execute(
                "INSERT INTO latencies (result_id, count, codec, data) VALUES (?, ?, ?, ?)",
                (result_id, count, CODEC, blob),
            )


def _verdict_from_json(text: str) -> Verdict:
    return decode_json(Verdict, text)


class ResultsMixin:
    """Result, latency and verdict methods of the SQL stores (needs ``_db``, ``_clock`` and ``host``)."""

    _db: Database
    _clock: Callable[[], float]
    host: str | None
    shared: bool

    def results_for_run(self, run_id: int) -> list[ScenarioResult]:
        """Return a run's scenario results in the order the run reported them."""
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT result_json FROM results WHERE run_id = ? ORDER BY idx", (run_id,)
            ).fetchall()
        return [decode_json(ScenarioResult, r[0]) for r in rows]

    def result_rows(
        self,
        model: str | None = None,
        version: str | None = None,
        scenario: str | None = None,
        limit: int | None = None,
        *,
        hardware_class: str | None = None,
        host: str | None = None,
    ) -> list[ResultRow]:
        """Return stored results, newest first, optionally filtered; ``limit`` None means all.

        ``hardware_class`` keeps the results measured on that class; ``host`` those of runs that host ran.
        """
        values = (model, version, scenario, hardware_class)
        used = {k: v for k, v in zip(_ROW_FILTERS, values, strict=True) if v is not None}
        clauses = [f"{k} = ?" for k in used]
        args: tuple[Any, ...] = tuple(used.values())
        if host is not None:
            clauses.append("run_id IN (SELECT id FROM runs WHERE host = ?)")
            args += (host,)
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        sql = f"SELECT {_RESULT_COLUMNS} FROM results {where} ORDER BY id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args += (int(limit),)
        with self._db.read() as conn:
            rows = conn.execute(sql, args).fetchall()
        return [
            ResultRow(
                id=r[0],
                run_id=r[1],
                model=r[2],
                version=r[3],
                device=r[4],
                hardware_class=r[5],
                ended_unix_s=r[6],
                result=decode_json(ScenarioResult, r[7]),
            )
            for r in rows
        ]

    def latencies(self, result_id: int) -> np.ndarray:
        """Return a result's raw latencies as int64 ns (empty when none were stored)."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT count, codec, data FROM latencies WHERE result_id = ?", (result_id,)
            ).fetchone()
        if row is None:
            return np.empty(0, dtype=np.int64)
        if row[1] != CODEC:
            raise HistoryStoreError(self._db.path, f"result {result_id}: unknown latency codec {row[1]!r}")
        try:
            return decode_latencies(row[2], row[0])
        except (zlib.error, ValueError) as exc:
            raise HistoryStoreError(self._db.path, f"result {result_id}: corrupt latencies: {exc}") from exc

    def latest_versions(self, model: str, k: int) -> list[str]:
        """Return the newest ``k`` versions of ``model`` that have results, newest first.

        Versions are ordered by the registry's creation time when known, else by when benchd first saw
        them, else by their first result.
        """
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT r.version, MIN(r.id), "
                "COALESCE(MAX(v.created_unix_s), MAX(v.first_seen_unix_s), MIN(r.ended_unix_s)) AS t "
                "FROM results r LEFT JOIN versions v ON v.model = r.model AND v.version = r.version "
                "WHERE r.model = ? GROUP BY r.version ORDER BY t DESC, MIN(r.id) DESC LIMIT ?",
                (model, int(k)),
            ).fetchall()
        return [r[0] for r in rows]

    def save_verdict(
        self,
        verdict: Verdict,
        inputs: Mapping[str, Any],
        *,
        hardware_class: str | None = None,
        host: str | None = None,
    ) -> int:
        """Store a verdict and the inputs it was decided from (pairs, n, interval, m, t); return its id.

        The verdict is filed under ``hardware_class`` (default: ``inputs["hardware_class"]``; in a shared
        store, else the class of the candidate's newest matching result on this host) and ``host``
        (default: this store's host), so fleet hosts keep one verdict series per hardware class.
        """
        decided = verdict.decided_unix_s or self._clock()
        host = host if host is not None else self.host
        with self._db.write() as conn:
            if hardware_class is None:
                hardware_class = inputs.get("hardware_class")
            if hardware_class is None and self.shared:
                hardware_class = _candidate_class(conn, verdict, host)
            return int(
                self._db.insert(
                    conn,
                    "INSERT INTO verdicts (model, candidate_version, baseline_version, scenario, batch_size, "
                    "device, state, decided_unix_s, verdict_json, inputs_json, hardware_class, host) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        verdict.model,
                        verdict.candidate_version,
                        verdict.baseline_version,
                        verdict.scenario,
                        verdict.batch_size,
                        verdict.device,
                        verdict.state,
                        decided,
                        json.dumps(to_dict(verdict)),
                        json.dumps(dict(inputs), default=_json_default),
                        hardware_class,
                        host,
                    ),
                )
                or 0
            )

    def latest_verdicts(
        self, model: str | None = None, *, host: str | None = None, per_version: bool = False
    ) -> list[Verdict]:
        """Return the latest verdict per (model, scenario, batch size, device, hardware class), sorted.

        With ``host``, only the verdicts that host decided (a fleet host exports its own). With
        ``per_version``, the latest per candidate version of each of those series.
        """
        used = {k: v for k, v in {"model": model, "host": host}.items() if v is not None}
        where = ("WHERE " + " AND ".join(f"{k} = ?" for k in used)) if used else ""
        version = "candidate_version, " if per_version else ""
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT verdict_json FROM verdicts WHERE id IN (SELECT MAX(id) FROM verdicts {where} "
                f"GROUP BY model, {version}scenario, batch_size, device, hardware_class) "
                f"ORDER BY model, {version}scenario, batch_size, device, hardware_class",
                tuple(used.values()),
            ).fetchall()
        return [_verdict_from_json(r[0]) for r in rows]

    def verdict_for(
        self,
        model: str,
        candidate_version: str,
        scenario: str | None = None,
        batch_size: int | None = None,
        device: str | None = None,
    ) -> Verdict | None:
        """Return the latest verdict for a candidate version (optionally one series), or None."""
        rows = self.verdict_rows(model, candidate_version, scenario, batch_size, device, limit=1)
        return rows[0].verdict if rows else None

    def verdict_rows(
        self,
        model: str,
        candidate_version: str | None = None,
        scenario: str | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        limit: int = 50,
    ) -> list[VerdictRow]:
        """Return stored verdicts with their ids and inputs, newest first."""
        filters = {
            "model": model,
            "candidate_version": candidate_version,
            "scenario": scenario,
            "batch_size": batch_size,
            "device": device,
        }
        used = {k: v for k, v in filters.items() if v is not None}
        where = " AND ".join(f"{k} = ?" for k in used)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT id, verdict_json, inputs_json FROM verdicts WHERE {where} ORDER BY id DESC LIMIT ?",
                (*used.values(), int(limit)),
            ).fetchall()
        return [VerdictRow(id=r[0], verdict=_verdict_from_json(r[1]), inputs=json.loads(r[2])) for r in rows]


def _candidate_class(conn: SQLConnection, verdict: Verdict, host: str | None) -> str | None:
    """Return the hardware class of the candidate's newest result in the verdict's series (on ``host``)."""
    sql = (
        "SELECT hardware_class FROM results WHERE model = ? AND version = ? AND scenario = ? AND "
        "batch_size = ? AND device = ?"
    )
    args: tuple[Any, ...] = (
        verdict.model,
        verdict.candidate_version,
        verdict.scenario,
        verdict.batch_size,
        verdict.device,
    )
    if host is not None:
        sql += " AND run_id IN (SELECT id FROM runs WHERE host = ?)"
        args += (host,)
    row = conn.execute(sql + " ORDER BY id DESC LIMIT 1", args).fetchone()
    return row[0] if row else None


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and tuples JSON-able in verdict inputs."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
