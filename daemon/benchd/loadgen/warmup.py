"""Warm-up that lasts until the latency settles, not a fixed count.

Caches, allocator pools, clocks and lazily built kernels take a model-dependent time to reach their steady
state. After the configured minimum (``warmup_queries`` and ``warmup``), warm-up goes on in short chunks
and ends once the medians of the last few chunks agree within a tolerance, or at a time limit (then the
result says it never settled, and the caller notes it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from benchd.loadgen.scenarios import QueryFn, StopRule, run_closed_loop, run_warmup

#: Seconds of one warm-up chunk (at least ``CHUNK_MIN_QUERIES`` queries).
CHUNK_S = 0.1
CHUNK_MIN_QUERIES = 20
#: Chunks whose medians must agree, and how closely (spread / median).
SETTLE_WINDOW = 3
SETTLE_TOLERANCE = 0.03


@dataclass(frozen=True)
class Warmup:
    """What a warm-up did.

    Attributes:
        latencies_ns: every warm-up query's latency (discarded from any measurement).
        settled: True when the last chunks' medians agreed before the time limit.
        duration_s: seconds the warm-up took.
        chunk_medians_s: the median latency of each chunk after the minimum (seconds).
    """

    latencies_ns: np.ndarray
    settled: bool
    duration_s: float
    chunk_medians_s: tuple[float, ...]

    @property
    def median_ns(self) -> float:
        """The median of the last chunk (or of everything when no chunk ran): the settled latency."""
        if self.chunk_medians_s:
            return self.chunk_medians_s[-1] * 1e9
        return float(np.median(self.latencies_ns)) if len(self.latencies_ns) else 1e6


def is_settled(
    medians: list[float], window: int = SETTLE_WINDOW, tolerance: float = SETTLE_TOLERANCE
) -> bool:
    """True when the last ``window`` medians lie within ``tolerance`` of their mean (relative spread)."""
    if len(medians) < window:
        return False
    last = medians[-window:]
    mean = sum(last) / window
    return mean > 0 and (max(last) - min(last)) / mean <= tolerance


def warm_until_settled(query: QueryFn, min_queries: int, min_s: float, max_s: float) -> Warmup:
    """Run the configured minimum warm-up, then chunks until the latency settles or ``max_s`` passes.

    Args:
        query: the query function.
        min_queries: warm-up queries that always run (the scenario's ``warmup_queries``).
        min_s: warm-up seconds that always pass (the scenario's ``warmup``).
        max_s: the most seconds the whole warm-up may take (the minimum is always run).
    """
    started = time.perf_counter()
    parts = [run_warmup(query, min_queries, min_s)]
    medians: list[float] = []
    chunk = StopRule.from_seconds(CHUNK_S, max(CHUNK_S * 5, 1.0), CHUNK_MIN_QUERIES, 1 << 62)
    settled = False
    while not settled and time.perf_counter() - started < max_s:
        latencies = run_closed_loop(query, chunk, capacity=CHUNK_MIN_QUERIES * 4).latencies_ns
        parts.append(np.array(latencies))
        medians.append(float(np.median(latencies)) * 1e-9)
        settled = is_settled(medians)
    return Warmup(
        latencies_ns=np.concatenate(parts) if parts else np.empty(0, dtype=np.int64),
        settled=settled,
        duration_s=time.perf_counter() - started,
        chunk_medians_s=tuple(medians),
    )
