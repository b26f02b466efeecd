"""Noise floors: the smallest change a comparison batch can decide, per model and hardware class.

Measured by A/A batches (:class:`~benchd.records.NoiseFloor`); the newest measurement of a key wins.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from benchd.history.base import decode_json
from benchd.history.database import Database
from benchd.records import NoiseFloor, to_dict


class FloorsMixin:
    """Store and read noise floors (the newest measurement of a model and hardware class wins)."""

    _db: Database
    _clock: Callable[[], float]
    host: str | None

    def save_noise_floor(self, floor: NoiseFloor) -> int:
        """Store a measured floor; return its id."""
        measured = floor.measured_unix_s or self._clock()
        with self._db.write() as conn:
            return int(
                self._db.insert(
                    conn,
                    "INSERT INTO noise_floors (model, hardware_class, device, scenario, p99_ratio, "
                    "p50_ratio, measured_unix_s, floor_json, host) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        floor.model,
                        floor.hardware_class,
                        floor.device,
                        floor.scenario,
                        floor.p99_ratio,
                        floor.p50_ratio,
                        measured,
                        json.dumps(to_dict(floor)),
                        self.host,
                    ),
                )
                or 0
            )

    def noise_floor(self, model: str, hardware_class: str) -> NoiseFloor | None:
        """The newest floor of ``model`` on ``hardware_class``, or None when none was measured."""
        with self._db.read() as conn:
            row = conn.execute(
                "SELECT floor_json FROM noise_floors WHERE model = ? AND hardware_class = ? "
                "ORDER BY id DESC LIMIT 1",
                (model, hardware_class),
            ).fetchone()
        return decode_json(NoiseFloor, row[0]) if row else None

    def noise_floors(self, *, host: str | None = None) -> list[NoiseFloor]:
        """The newest floor of every (model, hardware class), sorted (only ``host``'s with ``host``)."""
        where, args = ("WHERE host = ?", (host,)) if host is not None else ("", ())
        with self._db.read() as conn:
            rows = conn.execute(
                "SELECT floor_json FROM noise_floors WHERE id IN (SELECT MAX(id) FROM noise_floors "
                f"{where} GROUP BY model, hardware_class) ORDER BY model, hardware_class",
                args,
            ).fetchall()
        return [decode_json(NoiseFloor, r[0]) for r in rows]
