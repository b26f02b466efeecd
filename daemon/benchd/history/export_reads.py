"""The exporter's reads that stay cheap however many results the store holds.

The exporter shows the latest few versions of each model (``export.latest_versions``) and the champion,
but a few of its figures span every stored result: the energy counter, the per-run P99 history that the
change-point search reads, and which versions are the latest. These are answered from indexed columns (no
result JSON is decoded), so a build costs what it exports, not what the store has kept.
"""

from __future__ import annotations

from typing import Any

from benchd.history.database import Database

#: (model, scenario, device, batch_size): one series of the change-point search.
P99Series = tuple[str, str, str, int]


class ExportReadsMixin:
    """Aggregate reads of the results table for the exporter (needs ``_db``)."""

    _db: Database

    def result_versions(self, *, host: str | None = None) -> dict[tuple[str, str], float]:
        """Every (model, version) with stored results, and when its newest result ended (unix s).

        ``host``: only results of runs that host ran.
        """
        where, args = _host_clause(host)
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT model, version, MAX(ended_unix_s) FROM results {where} GROUP BY model, version",
                args,
            ).fetchall()
        return {(r[0], r[1]): float(r[2]) for r in rows}

    def energy_totals(self, *, host: str | None = None) -> dict[str, float]:
        """Joules of every measured window, per device (``host``: of that host's runs)."""
        where, args = _host_clause(host, "energy_j IS NOT NULL")
        with self._db.read() as conn:
            rows = conn.execute(
                f"SELECT device, SUM(energy_j) FROM results {where} GROUP BY device ORDER BY device", args
            ).fetchall()
        return {r[0]: float(r[1]) for r in rows}

    def p99_history(
        self, runs: int, *, host: str | None = None
    ) -> dict[P99Series, list[tuple[int, str, float]]]:
        """The newest ``runs`` valid, unthrottled results of each series: ``(result id, version, p99 s)``.

        Newest first; a series is (model, scenario, device, batch size), across versions.
        """
        where, args = _host_clause(host, "valid = 1 AND throttled = 0")
        sql = (
            "SELECT id, model, scenario, device, batch_size, version, p99_s FROM ("
            "SELECT id, model, scenario, device, batch_size, version, p99_s, ROW_NUMBER() OVER ("
            "PARTITION BY model, scenario, device, batch_size ORDER BY id DESC) AS newest "
            f"FROM results {where}) AS ranked WHERE newest <= ? ORDER BY id DESC"
        )
        with self._db.read() as conn:
            rows = conn.execute(sql, (*args, int(runs))).fetchall()
        history: dict[P99Series, list[tuple[int, str, float]]] = {}
        for r in rows:
            history.setdefault((r[1], r[2], r[3], int(r[4])), []).append((int(r[0]), r[5], float(r[6])))
        return history


def _host_clause(host: str | None, condition: str = "") -> tuple[str, tuple[Any, ...]]:
    """``WHERE`` (condition and) the host's runs only, with its arguments."""
    clauses = [condition] if condition else []
    args: tuple[Any, ...] = ()
    if host is not None:
        clauses.append("run_id IN (SELECT id FROM runs WHERE host = ?)")
        args = (host,)
    return ("WHERE " + " AND ".join(clauses)) if clauses else "", args
