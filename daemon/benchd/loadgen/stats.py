"""Latency statistics: nearest-rank percentiles, order-statistic confidence intervals, early stopping."""

from __future__ import annotations

import math

import numpy as np

from benchd.records import LatencySummary

PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)
_EXACT_LIMIT = 200_000


def percentile_s(sorted_ns: np.ndarray, q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of sorted nanosecond latencies, in seconds.

    Nearest rank reports a latency that some query really had (no interpolation between two).
    """
    n = len(sorted_ns)
    if n == 0:
        return float("nan")
    rank = max(1, math.ceil(q / 100.0 * n))
    return float(sorted_ns[rank - 1]) * 1e-9


def min_queries_for_percentile(q: float, confidence: float = 0.99) -> int:
    """Fewest queries for which the largest observed latency bounds percentile ``q`` at ``confidence``.

    With n queries, P(every query is below the true q-quantile) = (q/100)^n; the claim needs that to be at
    most 1 - confidence. p90 needs 44 queries, p99 459, p99.9 4603 (at 99%).
    """
    p = q / 100.0
    return math.ceil(math.log(1.0 - confidence) / math.log(p))


def _binom_cdf(n: int, p: float) -> np.ndarray:
    k = np.arange(n + 1, dtype=np.float64)
    log_pmf = (
        math.lgamma(n + 1) - _lgamma(k + 1) - _lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
    )
    return np.cumsum(np.exp(log_pmf))


def _lgamma(x: np.ndarray) -> np.ndarray:
    return np.vectorize(math.lgamma, otypes=[np.float64])(x)


def percentile_ci_ranks(n: int, q: float, confidence: float = 0.95) -> tuple[int, int] | None:
    """1-based ranks (lo, hi) of order statistics bracketing percentile ``q`` with ``confidence``.

    Distribution-free: the number of samples below the true quantile is Binomial(n, q). Exact for
    n <= 200k, normal approximation above. None when n is too small for a two-sided interval.
    """
    if n <= 0:
        return None
    p = q / 100.0
    alpha = (1.0 - confidence) / 2.0
    if n <= _EXACT_LIMIT and n * p * (1 - p) < 1000:
        cdf = _binom_cdf(n, p)
        # P(X_(lo) <= quantile) = P(Binom >= lo) ; choose largest lo with P(Binom <= lo-1) <= alpha
        lo_candidates = np.nonzero(cdf <= alpha)[0]
        hi_candidates = np.nonzero(cdf >= 1.0 - alpha)[0]
        if len(lo_candidates) == 0 or len(hi_candidates) == 0:
            return None
        lo = int(lo_candidates[-1]) + 1
        hi = int(hi_candidates[0]) + 1
    else:
        half = _z(confidence) * math.sqrt(n * p * (1 - p))
        lo = math.floor(n * p - half)
        hi = math.ceil(n * p + half) + 1
    if lo < 1 or hi > n:
        return None
    return lo, hi


def _z(confidence: float) -> float:
    # Two-sided normal quantile by bisection on erf: plenty for a handful of calls, no scipy needed.
    target = 1.0 - (1.0 - confidence) / 2.0
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * (1 + math.erf(mid / math.sqrt(2))) < target:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def summarise_latencies(latencies_ns: np.ndarray) -> LatencySummary:
    """Summarise raw per-query latencies (int64 ns) into a :class:`LatencySummary` in seconds."""
    n = int(len(latencies_ns))
    if n == 0:
        nan = float("nan")
        return LatencySummary(0, nan, nan, nan, nan, nan, nan, nan, nan, nan)
    s = np.sort(latencies_ns)  # the one copy: raw order is kept for the .npy file
    ranks = percentile_ci_ranks(n, 99.0)
    return LatencySummary(
        n=n,
        min_s=float(s[0]) * 1e-9,
        mean_s=float(s.mean(dtype=np.float64)) * 1e-9,
        std_s=float(s.std(ddof=1, dtype=np.float64)) * 1e-9 if n > 1 else 0.0,
        p50_s=percentile_s(s, 50.0),
        p90_s=percentile_s(s, 90.0),
        p95_s=percentile_s(s, 95.0),
        p99_s=percentile_s(s, 99.0),
        p999_s=percentile_s(s, 99.9),
        max_s=float(s[-1]) * 1e-9,
        p99_ci_low_s=float(s[ranks[0] - 1]) * 1e-9 if ranks else None,
        p99_ci_high_s=float(s[ranks[1] - 1]) * 1e-9 if ranks else None,
    )
