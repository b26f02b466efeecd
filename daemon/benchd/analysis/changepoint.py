"""Change points in a model's per-trial P99 history: slow creep that no single comparison flags.

E-Divisive means (Matteson & James, "A nonparametric approach for multiple change point analysis of
multivariate data", JASA 2014) with alpha = 1 and a seeded permutation test, as MongoDB's
``signal-processing-algorithms`` does, implemented here in numpy: that library pins numpy < 2 and pulls in
gevent, scipy and structlog, and Apache Otava pulls in about 35 packages (BigQuery, Slack, PostgreSQL
clients). For a split of a segment into X (first tau points) and Y (the rest) the statistic is

    Q(tau) = |X||Y| / (|X| + |Y|) * (2 mean|X - Y| - mean|X - X'| - mean|Y - Y'|)

computed for every tau at once from 2-D prefix sums of the distance matrix. Each round takes the segment
with the largest Q, tests it by recomputing max Q over ``permutations`` shuffles of that segment
(p = (1 + #{max Q_perm >= Q}) / (1 + permutations)), and splits it when p <= ``p_value``; the first
non-significant round ends the search. A slow creep of 2% a version over 15 versions shows as a split where
the early versions' mean differs from the late ones'; a single spike cannot, with ``min_segment`` points on
each side of every split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Bound on the elements of one stack of permuted distance matrices (8 bytes each): 32 MB.
_PERMUTATION_CHUNK_ELEMENTS = 4_000_000


@dataclass(frozen=True)
class ChangePoint:
    """A change in the mean of a series.

    Attributes:
        index: the first index of the new segment.
        mean_before: mean of the segment that ends at ``index`` (the series' unit, e.g. seconds).
        mean_after: mean of the segment that starts at ``index``.
        ratio: ``mean_after / mean_before`` (above 1 for a latency creep).
        p_value: the permutation test's p-value when the split was accepted.
    """

    index: int
    mean_before: float
    mean_after: float
    ratio: float
    p_value: float


def split_statistics(distances: np.ndarray, min_segment: int) -> np.ndarray:
    """E-Divisive Q for every split ``tau`` in ``[min_segment, N - min_segment]`` of each distance matrix.

    Args:
        distances: ``(..., N, N)`` matrices of ``|x_i - x_j|``.
        min_segment: fewest points on each side of a split (at least 2).

    Returns:
        ``(..., N - 2 * min_segment + 1)`` values, one per split.
    """
    n = distances.shape[-1]
    prefix = np.zeros((*distances.shape[:-2], n + 1, n + 1))
    prefix[..., 1:, 1:] = distances.cumsum(axis=-1).cumsum(axis=-2)
    taus = np.arange(min_segment, n - min_segment + 1)
    within_left = prefix[..., taus, taus]
    between = prefix[..., taus, n] - within_left
    within_right = prefix[..., n, n][..., None] - within_left - 2.0 * between
    left = taus.astype(np.float64)
    right = (n - taus).astype(np.float64)
    energy = (
        2.0 * between / (left * right)
        - within_left / (left * (left - 1))
        - within_right / (right * (right - 1))
    )
    return left * right / n * energy


def _permutation_p(
    distances: np.ndarray, observed: float, min_segment: int, permutations: int, rng: np.random.Generator
) -> float:
    n = distances.shape[-1]
    chunk = max(1, _PERMUTATION_CHUNK_ELEMENTS // (n * n))
    at_least, done = 0, 0
    tolerance = 1e-12 * max(1.0, abs(observed))
    while done < permutations:
        size = min(chunk, permutations - done)
        perm = np.argsort(rng.random((size, n)), axis=1)
        shuffled = distances[perm[:, :, None], perm[:, None, :]]
        at_least += int((split_statistics(shuffled, min_segment).max(axis=-1) >= observed - tolerance).sum())
        done += size
    return (1 + at_least) / (1 + permutations)


def detect_change_points(
    values: Sequence[float],
    *,
    min_segment: int = 3,
    p_value: float = 0.01,
    permutations: int = 200,
    seed: int = 0,
    min_magnitude: float = 0.0,
) -> list[ChangePoint]:
    """Find changes in the mean of ``values`` (e.g. per-trial P99 in seconds, oldest first).

    Args:
        values: the series, oldest first.
        min_segment: fewest points in any segment (at least 2).
        p_value: largest permutation p-value that accepts a split; with ``permutations`` shuffles the
            smallest attainable p is ``1 / (1 + permutations)``.
        permutations: shuffles per permutation test.
        seed: seeds the shuffles; same series and seed, same answer.
        min_magnitude: change points whose ``|ratio - 1|`` is below this are merged away, smallest first.

    Returns:
        The change points ordered by index.

    Raises:
        ValueError: ``min_segment`` below 2, or a value that is not finite.
    """
    if min_segment < 2:
        raise ValueError(f"min_segment must be at least 2, got {min_segment}")
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError("values must be finite")
    n = len(x)
    if n < 2 * min_segment:
        return []
    distances = np.abs(x[:, None] - x[None, :])
    rng = np.random.default_rng(seed)
    segments = [(0, n)]
    best_split: dict[tuple[int, int], tuple[int, float]] = {}
    accepted: dict[int, float] = {}
    while True:
        best: tuple[float, int, int, int] | None = None
        for a, b in segments:
            if b - a < 2 * min_segment:
                continue
            if (a, b) not in best_split:
                q = split_statistics(distances[a:b, a:b], min_segment)
                best_split[(a, b)] = (a + min_segment + int(np.argmax(q)), float(q.max()))
            tau, q_max = best_split[(a, b)]
            if best is None or q_max > best[0]:
                best = (q_max, a, b, tau)
        if best is None:
            break
        q_max, a, b, tau = best
        p = _permutation_p(distances[a:b, a:b], q_max, min_segment, permutations, rng)
        if p > p_value:
            break
        accepted[tau] = p
        segments.remove((a, b))
        segments.extend([(a, tau), (tau, b)])
    return _merge_small(x, accepted, min_magnitude)


def _merge_small(x: np.ndarray, accepted: dict[int, float], min_magnitude: float) -> list[ChangePoint]:
    # Remove the smallest change first and re-describe: its neighbours' means change once it is merged.
    points = _describe(x, accepted)
    while min_magnitude > 0.0:
        small = [cp for cp in points if abs(cp.ratio - 1.0) < min_magnitude]
        if not small:
            break
        del accepted[min(small, key=lambda cp: abs(cp.ratio - 1.0)).index]
        points = _describe(x, accepted)
    return points


def _describe(x: np.ndarray, accepted: dict[int, float]) -> list[ChangePoint]:
    bounds = [0, *sorted(accepted), len(x)]
    means = [float(x[lo:hi].mean()) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    points = []
    for i, index in enumerate(bounds[1:-1]):
        before, after = means[i], means[i + 1]
        ratio = after / before if before != 0.0 else math.nan
        points.append(ChangePoint(index, before, after, ratio, accepted[index]))
    return points
