"""Scenario loops: warm-up, closed loop (single/multi-stream, offline), Poisson server, concurrency.

A *query function* ``query(i)`` runs query ``i`` to completion (the runner builds it around a model,
including host-to-device copy and device synchronisation). These loops only time it: two
``perf_counter_ns`` reads per query, the difference stored in a preallocated ``array('q')`` that grows by
doubling if a run outlives its estimate. No per-query Python objects are kept, so a no-op query costs a
few hundred nanoseconds and memory is 8 bytes per query.
"""

from __future__ import annotations

import array
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

QueryFn = Callable[[int], object]

#: A server query waits by sleeping until this close to its scheduled time, then spins: sleep alone wakes
#: 50-100 us late, spinning the whole gap would take a core from the model's own threads.
SPIN_NS = 150_000
_SCHEDULE_CHUNK = 65_536
_MAX_PREALLOC = 4_000_000
#: A server run knows its query count in advance (rate x duration): it preallocates up to this many, since
#: growing a buffer mid-run stalls the schedule and every query queued behind the stall counts it.
_MAX_SERVER_PREALLOC = 32_000_000


@dataclass(frozen=True)
class StopRule:
    """When a measured phase ends: both minimums met, or either maximum reached."""

    min_duration_ns: int
    max_duration_ns: int
    min_queries: int
    max_queries: int

    @classmethod
    def from_seconds(cls, min_s: float, max_s: float, min_queries: int, max_queries: int) -> StopRule:
        """Build a rule from durations in seconds."""
        return cls(int(min_s * 1e9), int(max_s * 1e9), min_queries, max_queries)


@dataclass
class Measurement:
    """Raw outcome of one measured phase.

    ``latencies_ns`` holds one int64 per query. Window edges are given both as ``perf_counter_ns`` and as
    CLOCK_MONOTONIC seconds, so the parent process can line them up with its energy samples.
    """

    latencies_ns: np.ndarray
    window_start_ns: int
    window_end_ns: int
    window_start_mono_s: float
    window_end_mono_s: float
    issue_lag_ns: np.ndarray | None = None

    @property
    def queries(self) -> int:
        """Number of measured queries."""
        return int(len(self.latencies_ns))

    @property
    def duration_s(self) -> float:
        """Length of the measured window in seconds."""
        return max(0, self.window_end_ns - self.window_start_ns) * 1e-9


def _buffer(capacity: int, limit: int = _MAX_PREALLOC) -> array.array[int]:
    return array.array("q", bytes(8 * max(16, min(capacity, limit))))


def _grow(buf: array.array[int]) -> None:
    buf.extend(array.array("q", bytes(8 * len(buf))))


def _finish(buf: array.array[int], n: int) -> np.ndarray:
    # A view, not a copy: the buffer is never written again, and a copy would double peak memory.
    return np.frombuffer(buf, dtype=np.int64, count=n)


def estimate_capacity(rule: StopRule, typical_latency_ns: float, concurrency: int = 1) -> int:
    """Queries a phase will likely need, from a typical latency (e.g. the warm-up median)."""
    per_s = 1e9 / max(typical_latency_ns, 50.0) * concurrency
    expected = int(per_s * rule.max_duration_ns * 1e-9 * 1.1) + 16
    return max(rule.min_queries, min(expected, rule.max_queries))


def run_warmup(query: QueryFn, min_queries: int, min_s: float, max_s: float | None = None) -> np.ndarray:
    """Run warm-up queries until both ``min_queries`` and ``min_s`` are reached; return their latencies.

    ``max_s`` (default: 10x ``min_s``, at least 30 s) bounds a warm-up whose queries are very slow.
    """
    if min_queries <= 0 and min_s <= 0:
        return np.empty(0, dtype=np.int64)
    rule = StopRule.from_seconds(min_s, max(max_s or 10 * min_s, min_s, 30.0), min_queries, 1 << 62)
    return run_closed_loop(query, rule, capacity=max(min_queries, 64)).latencies_ns


def run_closed_loop(query: QueryFn, rule: StopRule, capacity: int = 4096) -> Measurement:
    """Issue queries back to back (the next when the last completes) and time each one.

    Used for single-stream, multi-stream (a query carries N samples) and offline (a query is a batch).
    """
    pc = time.perf_counter_ns
    buf = _buffer(capacity)
    i = 0
    max_q = rule.max_queries
    mono0 = time.monotonic()
    t_start = pc()
    t1 = t_start
    min_deadline = t_start + rule.min_duration_ns
    max_deadline = t_start + rule.max_duration_ns
    while t1 < min_deadline and i < max_q:
        t0 = pc()
        query(i)
        t1 = pc()
        try:
            buf[i] = t1 - t0
        except IndexError:
            _grow(buf)
            buf[i] = t1 - t0
        i += 1
    min_q = min(rule.min_queries, max_q)
    while i < min_q and t1 < max_deadline:
        t0 = pc()
        query(i)
        t1 = pc()
        try:
            buf[i] = t1 - t0
        except IndexError:
            _grow(buf)
            buf[i] = t1 - t0
        i += 1
    mono1 = time.monotonic()
    return Measurement(_finish(buf, i), t_start, t1, mono0, mono1)


def poisson_schedule_ns(target_qps: float, count: int, rng: np.random.Generator) -> np.ndarray:
    """Cumulative arrival offsets (ns, int64) of ``count`` Poisson arrivals at ``target_qps``."""
    gaps = rng.exponential(1e9 / target_qps, size=count)
    return np.cumsum(gaps).astype(np.int64)


def run_server(
    query: QueryFn, rule: StopRule, target_qps: float, seed: int, capacity: int = 4096
) -> Measurement:
    """Issue queries at Poisson arrival times (seeded) and time each from its *scheduled* issue time.

    Queries run one at a time: when the model falls behind, later queries wait, and that wait counts in
    their latency (no coordinated omission). ``issue_lag_ns`` records how late each query really started,
    so a saturated load generator can be told apart from a slow model.
    """
    pc = time.perf_counter_ns
    sleep = time.sleep
    rng = np.random.default_rng(seed)
    expected = int(target_qps * rule.min_duration_ns * 1e-9 * 1.25) + 1024
    capacity = min(max(capacity, expected), rule.max_queries)
    lat = _buffer(capacity, _MAX_SERVER_PREALLOC)
    lag = _buffer(capacity, _MAX_SERVER_PREALLOC)
    max_q = rule.max_queries
    min_q = min(rule.min_queries, max_q)
    mono0 = time.monotonic()
    t_base = pc()
    min_deadline = t_base + rule.min_duration_ns
    max_deadline = t_base + rule.max_duration_ns
    last = 0
    i = 0
    t_done = t_base
    while True:
        offsets = poisson_schedule_ns(target_qps, _SCHEDULE_CHUNK, rng) + (t_base + last)
        last = int(offsets[-1]) - t_base
        for t_s in offsets.tolist():
            now = pc()
            if now < t_s:
                if t_s - now > SPIN_NS:
                    sleep((t_s - now - SPIN_NS) * 1e-9)
                while pc() < t_s:
                    pass
            t_issue = pc()
            query(i)
            t_done = pc()
            try:
                lat[i] = t_done - t_s
                lag[i] = t_issue - t_s
            except IndexError:
                _grow(lat)
                _grow(lag)
                lat[i] = t_done - t_s
                lag[i] = t_issue - t_s
            i += 1
            if (t_done >= min_deadline and i >= min_q) or t_done >= max_deadline or i >= max_q:
                mono1 = time.monotonic()
                return Measurement(_finish(lat, i), t_base, t_done, mono0, mono1, _finish(lag, i))


def run_concurrency(query: QueryFn, rule: StopRule, streams: int, capacity: int = 4096) -> Measurement:
    """Run ``streams`` closed loops in parallel threads (like perf_analyzer's concurrency mode).

    Each stream times its own queries into its own buffer; the phase stops once the minimum duration
    and total query count are met (checked by the calling thread), or at the maxima. An exception in any
    stream stops all streams and is re-raised here.
    """
    pc = time.perf_counter_ns
    counts = [0] * streams
    stop = [False]
    buffers = [_buffer(capacity // streams + 16) for _ in range(streams)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(streams + 1)

    def stream(k: int) -> None:
        buf = buffers[k]
        i = 0
        try:
            barrier.wait()
            while not stop[0]:
                t0 = pc()
                query(k + i * streams)
                t1 = pc()
                try:
                    buf[i] = t1 - t0
                except IndexError:
                    _grow(buf)
                    buf[i] = t1 - t0
                i += 1
                counts[k] = i
        except BaseException as e:  # noqa: BLE001 - handed to the caller below
            errors.append(e)
            stop[0] = True

    threads = [
        threading.Thread(target=stream, args=(k,), name=f"benchd-stream-{k}", daemon=True)
        for k in range(streams)
    ]
    for t in threads:
        t.start()
    mono0 = time.monotonic()
    t_start = pc()
    barrier.wait()
    min_deadline = t_start + rule.min_duration_ns
    max_deadline = t_start + rule.max_duration_ns
    while not stop[0]:
        now = pc()
        total = sum(counts)
        if (
            (now >= min_deadline and total >= rule.min_queries)
            or now >= max_deadline
            or total >= rule.max_queries
        ):
            break
        time.sleep(min(0.005, max(0.0, (min_deadline - now) * 1e-9)) or 0.001)
    stop[0] = True
    for t in threads:
        t.join()
    t_end = pc()
    mono1 = time.monotonic()
    if errors:
        raise errors[0]
    merged = np.concatenate([_finish(buffers[k], counts[k]) for k in range(streams)])
    return Measurement(merged, t_start, t_end, mono0, mono1)
