"""Resampling primitives for the regression verdict: exact within-trial percentile resampling and intervals.

Two ideas keep the bootstrap cheap and bounded in memory, whatever the number of queries per trial:

* **Within-trial resampling without materialising resamples.** Resampling ``n`` sorted latencies with
  replacement and taking the nearest-rank ``k``-th order statistic is the same as drawing
  ``U ~ Beta(k, n - k + 1)`` (the ``k``-th order statistic of ``n`` uniforms) and picking the sorted latency
  at 1-based index ``ceil(n * U)``: the map from uniforms to indices is monotone, so order statistics map to
  order statistics. One Beta draw replaces ``n`` index draws and a partition, so a bootstrap costs
  O(boots x trials) time and memory instead of O(boots x trials x queries).
* **Expanded percentile intervals** (Hesterberg, "What teachers should know about the bootstrap", 2015):
  a plain percentile interval from ``n`` clusters is too narrow for small ``n`` (it behaves like a z
  interval with the ``(n-1)/n`` variance). Taking the quantiles at ``alpha'/2`` with
  ``z_{alpha'/2} = sqrt(n/(n-1)) * t_{alpha/2, n-1}`` restores roughly the coverage of a t interval. With
  two pairs it is the whole bootstrap range.

Percentiles are nearest-rank (1-based rank ``max(1, ceil(q/100 * n))``), as in ``benchd.loadgen.stats``, so
a per-trial value here equals the trial's ``LatencySummary`` percentile.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIDENCE = 0.95

# Student t quantiles t_{0.975, df} for df = 1..30; larger df use a Cornish-Fisher expansion (error < 1e-3).
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
    2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
    2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959963984540054


def nearest_rank(n: np.ndarray | int, q: float) -> np.ndarray:
    """1-based nearest-rank index of percentile ``q`` (0-100) in samples of size ``n`` (vectorised)."""
    n_arr = np.asarray(n, dtype=np.int64)
    return np.maximum(1, np.ceil(q / 100.0 * n_arr)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class SortedGroups:
    """Ragged groups of sorted samples (one group per trial or pair side), packed into one flat array.

    Attributes:
        flat: all groups' samples, each group sorted ascending, concatenated.
        offsets: index in ``flat`` where each group starts.
        counts: number of samples in each group (all at least 1).
    """

    flat: np.ndarray
    offsets: np.ndarray
    counts: np.ndarray

    @classmethod
    def pack(cls, groups: Sequence[np.ndarray]) -> SortedGroups:
        """Sort each group and pack them; raises ValueError when a group is empty."""
        if not groups:
            raise ValueError("no groups to pack")
        counts = np.array([len(g) for g in groups], dtype=np.int64)
        if (counts == 0).any():
            raise ValueError("cannot pack an empty group")
        flat = np.concatenate([np.sort(np.asarray(g, dtype=np.float64)) for g in groups])
        offsets = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
        return cls(flat=flat, offsets=offsets, counts=counts)

    def __len__(self) -> int:
        return len(self.counts)

    def percentile(self, q: float) -> np.ndarray:
        """Nearest-rank percentile ``q`` of every group (no resampling), shape ``(groups,)``."""
        return self.flat[self.offsets + nearest_rank(self.counts, q) - 1]

    def resampled_percentile(self, q: float, group_idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Percentile ``q`` of an independent with-replacement resample of each chosen group.

        Args:
            q: percentile, 0-100.
            group_idx: integer array (any shape) of group indices; every element gets its own resample,
                so a group chosen twice in one bootstrap replicate is resampled twice, as it should be.
            rng: the seeded generator to draw from.

        Returns:
            An array shaped like ``group_idx``.
        """
        n = self.counts[group_idx]
        k = nearest_rank(n, q)
        u = rng.beta(k.astype(np.float64), (n - k + 1).astype(np.float64))
        j = np.clip(np.ceil(n * u).astype(np.int64), 1, n) - 1
        return self.flat[self.offsets[group_idx] + j]


def expanded_alpha(n: int, confidence: float = CONFIDENCE) -> float:
    """Two-sided tail probability to read off a bootstrap distribution built from ``n`` clusters.

    Returns ``1 - confidence`` for large ``n``, less for small ``n`` (see the module docstring). Only the
    95% level has a t table; other levels fall back to the plain percentile interval.
    """
    alpha = 1.0 - confidence
    if n < 2 or not math.isclose(confidence, CONFIDENCE):
        return alpha
    df = n - 1
    t = _T975[df - 1] if df <= len(_T975) else _t975_expansion(df)
    z = math.sqrt(n / (n - 1)) * t
    return min(alpha, math.erfc(z / math.sqrt(2.0)))


def _t975_expansion(df: int) -> float:
    z = _Z975
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def interval(boots: np.ndarray, n_clusters: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Expanded percentile interval of bootstrap replicates ``boots`` drawn from ``n_clusters`` clusters."""
    finite = boots[np.isfinite(boots)]
    if len(finite) == 0:
        return float("nan"), float("nan")
    a = expanded_alpha(n_clusters, confidence)
    lo, hi = np.quantile(finite, [a / 2.0, 1.0 - a / 2.0])
    return float(lo), float(hi)


def coefficient_of_variation(values: np.ndarray) -> float:
    """Sample coefficient of variation (ddof=1) of positive values; 0.0 with fewer than two values."""
    if len(values) < 2:
        return 0.0
    mean = float(np.mean(values))
    if mean <= 0.0 or not math.isfinite(mean):
        return 0.0
    return float(np.std(values, ddof=1)) / mean
