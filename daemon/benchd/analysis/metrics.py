"""Metrics, thresholds, the one decision rule every comparison shares, and the history bootstrap.

:func:`classify` turns a ratio interval into a state for every comparison (paired batches in
:mod:`benchd.analysis.verdict`, stored history in :mod:`benchd.analysis.history`).

History mode compares stored runs through clusters (one stored run each): latency percentiles keep each
run's raw latencies so the bootstrap can resample queries within it. Its statistic is
``R = mean(candidate run values) / mean(baseline run values)`` over resampled runs, where a run's value is
its nearest-rank percentile (P99, p50) after resampling its queries: the hierarchical estimator that kept
false alarms near zero in simulation with run-to-run drift.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from benchd.analysis.bootstrap import SortedGroups, coefficient_of_variation, interval
from benchd.errors import BenchdError
from benchd.records import MetricVerdict

METRICS = ("p99_latency", "p50_latency", "throughput", "energy_per_sample")
#: The metric the sequential batch waits on first.
PRIMARY_METRIC = "p99_latency"
LATENCY_PERCENTILES = {"p99_latency": 99.0, "p50_latency": 50.0}
HIGHER_IS_BETTER = {
    "p99_latency": False,
    "p50_latency": False,
    "throughput": True,
    "energy_per_sample": False,
}
#: Verdict states. ``more`` means "undecided, run more pairs"; only a non-final decision returns it.
STATES = ("regressed", "unchanged", "improved", "inconclusive", "more")
DEFAULT_N_BOOT = 2000
#: Fewest clusters (pairs, or runs on each side) that may decide anything.
MIN_CLUSTERS_TO_DECIDE = 2


class AnalysisError(BenchdError):
    """The regression analysis could not run on the data it was given."""


class InsufficientDataError(AnalysisError):
    """A metric lacks the data to compare (no complete pair, energy not measured, a zero baseline)."""

    def __init__(self, metric: str, problem: str) -> None:
        self.metric = metric
        self.problem = problem
        super().__init__(f"{metric}: {problem}")


@dataclass(frozen=True)
class Thresholds:
    """Threshold ``t`` and smallest reportable change ``m`` of one metric, as fractions (0.10 = 10%).

    ``min_effect`` None means ``t / 2``. The verdict raises ``m`` further to the baseline's own
    trial-to-trial noise (see :func:`evaluate_metric`).
    """

    threshold: float = 0.10
    min_effect: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise ValueError(f"threshold must be in (0, 1), got {self.threshold}")
        if self.min_effect is not None and not 0.0 <= self.min_effect < 1.0:
            raise ValueError(f"min_effect must be in [0, 1), got {self.min_effect}")

    @property
    def default_min_effect(self) -> float:
        """The configured smallest reportable change: ``min_effect`` or ``threshold / 2``."""
        return self.threshold / 2.0 if self.min_effect is None else self.min_effect


ThresholdsArg = Thresholds | Mapping[str, Thresholds] | None


def thresholds_for(metric: str, thresholds: ThresholdsArg) -> Thresholds:
    """The thresholds of ``metric`` from one for all, a per-metric mapping (default if missing), or None."""
    if thresholds is None:
        return Thresholds()
    if isinstance(thresholds, Thresholds):
        return thresholds
    return thresholds.get(metric, Thresholds())


def check_metric(metric: str) -> None:
    """Raise ValueError for a metric name outside :data:`METRICS`."""
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


@dataclass(frozen=True, eq=False)
class ClusterData:
    """One side's data for one metric: raw latencies per cluster, or one value per cluster.

    Attributes:
        groups: sorted latencies per cluster (latency percentiles), else None.
        values: per-cluster value of the metric without resampling (seconds, samples/s or J/sample).
        n: measurements behind it: queries for latency percentiles, trials otherwise.
    """

    groups: SortedGroups | None
    values: np.ndarray
    n: int

    @classmethod
    def of_latencies(cls, metric: str, latencies_s: list[np.ndarray]) -> ClusterData:
        """Cluster data of a latency percentile metric from each cluster's latencies (seconds)."""
        groups = SortedGroups.pack(latencies_s)
        values = groups.percentile(LATENCY_PERCENTILES[metric])
        return cls(groups=groups, values=values, n=int(groups.counts.sum()))

    @classmethod
    def of_values(cls, values: list[float], trials: int) -> ClusterData:
        """Cluster data of a one-value-per-cluster metric."""
        return cls(groups=None, values=np.asarray(values, dtype=np.float64), n=trials)

    def resample(self, metric: str, idx: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Values of the clusters ``idx`` (shape (boots, k)), each latency cluster's queries resampled."""
        if self.groups is None:
            return self.values[idx]
        return self.groups.resampled_percentile(LATENCY_PERCENTILES[metric], idx, rng)


def classify(
    low: float, high: float, threshold: float, min_effect: float, higher_is_better: bool
) -> str | None:
    """Decide from a ratio interval [low, high]; None when the interval decides nothing.

    ``regressed`` when the interval lies beyond 1 + m on the bad side (for throughput: its upper bound is
    below 1 - m); ``improved`` the same on the good side; ``unchanged`` when it lies within 1 +/- t. A
    clear change at least m wins over ``unchanged`` when both hold (possible when m < t).
    """
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    worse_than = high < 1.0 - min_effect if higher_is_better else low > 1.0 + min_effect
    better_than = low > 1.0 + min_effect if higher_is_better else high < 1.0 - min_effect
    if worse_than:
        return "regressed"
    if better_than:
        return "improved"
    if low >= 1.0 - threshold and high <= 1.0 + threshold:
        return "unchanged"
    return None


def evaluate_metric(
    metric: str,
    baseline: ClusterData,
    candidate: ClusterData,
    thresholds: Thresholds,
    *,
    n_boot: int,
    rng: np.random.Generator,
    final: bool,
    min_clusters: int = MIN_CLUSTERS_TO_DECIDE,
) -> MetricVerdict:
    """Bootstrap the ratio candidate/baseline of one metric over unpaired clusters (stored runs) and decide.

    Each side's clusters are resampled independently, then queries within each chosen cluster; the 95%
    interval is the expanded percentile interval over the replicates.

    The smallest reportable change is ``m = max(thresholds.default_min_effect, cv / sqrt(clusters))``,
    where ``cv`` is the sample coefficient of variation (ddof=1) of the baseline's per-cluster values.

    Raises:
        InsufficientDataError: the baseline's value is zero or not finite (no ratio exists).
        ValueError: unknown metric, or ``n_boot`` below 1.
    """
    check_metric(metric)
    n_base, n_cand = len(baseline.values), len(candidate.values)
    if n_boot < 1:
        raise ValueError(f"n_boot must be positive, got {n_boot}")
    base_value = float(np.mean(baseline.values))
    cand_value = float(np.mean(candidate.values))
    if not (math.isfinite(base_value) and base_value > 0.0 and math.isfinite(cand_value)):
        raise InsufficientDataError(metric, f"baseline value {base_value!r} gives no ratio")
    ratio = cand_value / base_value
    idx_b = rng.integers(0, n_base, size=(n_boot, n_base))
    idx_c = rng.integers(0, n_cand, size=(n_boot, n_cand))
    boot_b = baseline.resample(metric, idx_b, rng).mean(axis=1)
    boot_c = candidate.resample(metric, idx_c, rng).mean(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boots = boot_c / boot_b
    clusters = min(n_base, n_cand)
    low, high = interval(boots, clusters)
    noise = coefficient_of_variation(baseline.values) / math.sqrt(max(1, n_base))
    min_effect = max(thresholds.default_min_effect, noise)
    higher = HIGHER_IS_BETTER[metric]
    state = None
    if clusters >= min_clusters:
        state = classify(low, high, thresholds.threshold, min_effect, higher)
    if state is None:
        state = "inconclusive" if final else "more"
    return MetricVerdict(
        metric=metric,
        state=state,
        ratio=ratio,
        ratio_low=low,
        ratio_high=high,
        baseline_value=base_value,
        candidate_value=cand_value,
        threshold=thresholds.threshold,
        min_effect=min_effect,
        pairs=clusters,
        n_candidate=candidate.n,
        n_baseline=baseline.n,
        higher_is_better=higher,
    )


def metric_rng(seed: int, metric: str) -> np.random.Generator:
    """The seeded generator of one metric: same seed and metric, same draws, whatever else is decided."""
    return np.random.default_rng([seed, METRICS.index(metric)])
