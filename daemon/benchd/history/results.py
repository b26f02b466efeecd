"""Scenario results, their raw latency samples (zlib-compressed int64 ns) and regression verdicts."""

from __future__ import annotations

import json
import logging
import sqlite3
import zlib
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from benchd.history.base import HistoryStoreError, ResultRow, VerdictRow, decode_json
from benchd.history.connection import Connections
from benchd.records import RunResult, ScenarioResult, Verdict, to_dict

logger = logging.getLogger(__name__)

CODEC = "zlib-int64le"
_RESULT_COLUMNS = "id, run_id, model, version, device, hardware_class, ended_unix_s, result_json"


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
    conn: sqlite3.Connection,
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
        cur = conn.execute(
            "INSERT INTO results (run_id, idx, model, version, scenario, batch_size, device, hardware_class, "
            "p50_s, p90_s, p95_s, p99_s, p999_s, throughput_qps, throughput_sps, energy_per_sample_j, valid, "
            "throttled, ended_unix_s, result_json) "
            f"VALUES ({', '.join('?' * 20)})",
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
            ),
        )
        if i in blobs:
            count, blob = blobs[i]
            conn.execute(
                "INSERT INTO latencies (result_id, count, codec, data) VALUES (?, ?, ?, ?)",
                (cur.lastrowid, count, CODEC, blob),
            )


def _verdict_from_json(text: str) -> Verdict:
    return decode_json(Verdict, text)


class ResultsMixin:
    """Result, latency and verdict methods of the SQLite store (needs ``_db`` and ``_clock``)."""

    _db: Connections
    _clock: Callable[[], float]

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
    ) -> list[ResultRow]:
        """Return stored results, newest first, optionally filtered; ``limit`` None means all."""
        used = {
            k: v
            for k, v in {"model": model, "version": version, "scenario": scenario}.items()
            if v is not None
        }
        where = ("WHERE " + " AND ".join(f"{k} = ?" for k in used)) if used else ""
        sql = f"SELECT {_RESULT_COLUMNS} FROM results {where} ORDER BY id DESC"
        args: tuple[Any, ...] = tuple(used.values())
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
                "COALESCE(v.created_unix_s, v.first_seen_unix_s, MIN(r.ended_unix_s)) AS t "
                "FROM results r LEFT JOIN versions v ON v.model = r.model AND v.version = r.version "
                "WHERE r.model = ? GROUP BY r.version ORDER BY t DESC, MIN(r.id) DESC LIMIT ?",
                (model, int(k)),
            ).fetchall()
        return [r[0] for r in rows]

    def save_verdict(self, verdict: Verdict, inputs: Mapping[str, Any]) -> int:
        """Store a verdict and the inputs it was decided from (pairs, n, interval, m, t); return its id."""
        decided = verdict.decided_unix_s or self._clock()
        with self._db.write() as conn:
            cur = conn.execute(
                "INSERT INTO verdicts (model, candidate_version, baseline_version, scenario, batch_size, "
                "device, "
                "state, decided_unix_s, verdict_json, inputs_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
                ),
            )
            return int(cur.lastrowid or 0)

    def latest_verdicts(self, model: str | None = None) -> list[Verdict]:
        """Return the latest verdict per (model, scenario, batch size, device), sorted by those keys."""
        where = "WHERE model = ?" if model is not None else ""
        args: tuple[Any, ...] = (model,) if model is not None else ()
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT verdict_json FROM verdicts WHERE id IN (SELECT MAX(id) FROM verdicts {where} "
                "GROUP BY model, scenario, batch_size, device) ORDER BY model, scenario, batch_size, device",
                args,
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


def _json_default(value: Any) -> Any:
    """Make numpy scalars/arrays and tuples JSON-able in verdict inputs."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON-able: {type(value).__name__}")
