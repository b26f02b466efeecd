"""A fixed-size ring of telemetry samples for one device, stored as columns of doubles.

The sampler thread appends a sample per device every ``interval_s`` for as long as the daemon lives, so
the history must be bounded: the ring keeps the newest ``capacity`` samples and drops the oldest. It is
stored column-wise in preallocated ``array('d')`` buffers (about 64 bytes a sample instead of the few
hundred a :class:`TelemetrySample` object costs), so the memory is taken once at construction and never
grows. Readers get :class:`TelemetrySample` objects only for the range they ask for (:meth:`between`,
:meth:`since`, :meth:`latest`), never a copy of the whole history.

Timestamps must not go backwards (a device stamps samples with ``time.monotonic()``); a sample older than
the newest one is refused, so the ring stays sorted and lookups are binary searches.
"""

from __future__ import annotations

import math
from array import array

from benchd.devices.base import TelemetrySample

_NAN = math.nan
_FIELDS = ("power_w", "energy_j", "utilization_ratio", "memory_used_bytes", "temperature_c", "sm_clock_hz")


class TelemetryRing:
    """The newest ``capacity`` samples of one device (not thread-safe: the caller locks).

    Args:
        capacity: the number of samples kept; the oldest is dropped when a new one arrives at capacity.

    Raises:
        ValueError: ``capacity`` is below 2.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be at least 2 samples, got {capacity}")
        self.capacity = capacity
        self._t = array("d", [_NAN]) * capacity
        self._columns = {name: array("d", [_NAN]) * capacity for name in _FIELDS}
        self._throttle: list[tuple[str, ...]] = [()] * capacity
        self._interned: dict[tuple[str, ...], tuple[str, ...]] = {(): ()}
        self._start = 0  # index of the oldest sample
        self._count = 0
        self.dropped = 0  # samples pushed out by newer ones since construction

    def __len__(self) -> int:
        return self._count

    @property
    def wrapped(self) -> bool:
        """True once samples have been dropped: older windows are no longer covered."""
        return self.dropped > 0

    def oldest_t_s(self) -> float | None:
        """Monotonic time of the oldest sample kept, or None when empty."""
        return self._t[self._start] if self._count else None

    def append(self, sample: TelemetrySample) -> bool:
        """Store ``sample``; False (nothing stored) when it is older than the newest sample kept."""
        if self._count and sample.t_mono_s < self._t[self._slot(self._count - 1)]:
            return False
        if self._count == self.capacity:
            slot = self._start
            self._start = (self._start + 1) % self.capacity
            self.dropped += 1
        else:
            slot = self._slot(self._count)
            self._count += 1
        self._t[slot] = sample.t_mono_s
        for name, column in self._columns.items():
            value = getattr(sample, name)
            column[slot] = _NAN if value is None else float(value)
        reasons = sample.throttle_reasons
        self._throttle[slot] = (
            self._interned.setdefault(reasons, reasons) if len(self._interned) < 256 else reasons
        )
        return True

    def latest(self) -> TelemetrySample | None:
        """The newest sample, or None when empty."""
        return self._sample(self._count - 1) if self._count else None

    def since(self, t_mono_s: float) -> list[TelemetrySample]:
        """Samples stamped at or after ``t_mono_s``, oldest first."""
        return [self._sample(i) for i in range(self._bisect_left(t_mono_s), self._count)]

    def between(self, start_s: float, end_s: float) -> list[TelemetrySample]:
        """Samples covering ``[start_s, end_s]``: last one at/before the start to first at/after the end."""
        lo = max(0, self._bisect_right(start_s) - 1)
        hi = min(self._count, self._bisect_left(end_s) + 1)
        return [self._sample(i) for i in range(lo, hi)]

    def all(self) -> list[TelemetrySample]:
        """Every sample kept, oldest first (at most ``capacity``)."""
        return [self._sample(i) for i in range(self._count)]

    # -- internals: logical index i (0 = oldest) -> slot in the arrays --------------------------------
    def _slot(self, i: int) -> int:
        return (self._start + i) % self.capacity

    def _time(self, i: int) -> float:
        return self._t[(self._start + i) % self.capacity]

    def _bisect_left(self, t_s: float) -> int:
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._time(mid) < t_s:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _bisect_right(self, t_s: float) -> int:
        lo, hi = 0, self._count
        while lo < hi:
            mid = (lo + hi) // 2
            if self._time(mid) <= t_s:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def _sample(self, i: int) -> TelemetrySample:
        slot = self._slot(i)
        values = {name: column[slot] for name, column in self._columns.items()}
        memory = values["memory_used_bytes"]
        return TelemetrySample(
            t_mono_s=self._t[slot],
            power_w=_value(values["power_w"]),
            energy_j=_value(values["energy_j"]),
            utilization_ratio=_value(values["utilization_ratio"]),
            memory_used_bytes=None if math.isnan(memory) else int(memory),
            temperature_c=_value(values["temperature_c"]),
            sm_clock_hz=_value(values["sm_clock_hz"]),
            throttle_reasons=self._throttle[slot],
        )


def _value(v: float) -> float | None:
    return None if math.isnan(v) else v
