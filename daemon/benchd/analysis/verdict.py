"""The paired regression verdict: interleaved A B A B trials of baseline and candidate, decided per metric.

A batch runs short trials of both versions alternately on one device; ``pair_index`` groups the trials that
ran next to each other, so slow drift (clocks, heat, a neighbour) hits both sides of a pair alike. The
runner calls :func:`decide` after each pair and :func:`should_continue` to know whether to run another; on
the last call it passes ``final=True`` so an undecided metric becomes ``inconclusive``, never a silent pass.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchd.analysis.metrics import (
    DEFAULT_N_BOOT,
    LATENCY_PERCENTILES,
    METRICS,
    PRIMARY_METRIC,
    ClusterData,
    InsufficientDataError,
    Thresholds,
    ThresholdsArg,
    check_metric,
    evaluate_metric,
    metric_rng,
    thresholds_for,
)
from benchd.records import MetricVerdict, Verdict

logger = logging.getLogger(__name__)

SIDES = ("baseline", "candidate")
#: Metrics a verdict leaves out (with a note) when their data is missing, rather than failing.
OPTIONAL_METRICS = ("energy_per_sample",)


@dataclass(frozen=True, eq=False)
class Trial:
    """One short measured trial of one side within an A B A B batch.

    Attributes:
        side: ``baseline`` or ``candidate``.
        pair_index: the pair this trial belongs to (trials of both sides with one index ran back to back).
        latencies_s: per-query latencies of the measured window (seconds), warm-up excluded; stored as a
            read-only float64 copy.
        samples: samples processed in the window (queries x samples per query).
        duration_s: length of the measured window (seconds).
        energy_j: energy of the window (joules), None when not measured.
    """

    side: str
    pair_index: int
    latencies_s: np.ndarray
    samples: int
    duration_s: float
    energy_j: float | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        if self.samples < 0 or self.duration_s < 0:
            raise ValueError("samples and duration_s must not be negative")
        latencies = np.array(self.latencies_s, dtype=np.float64).ravel()
        latencies.flags.writeable = False
        object.__setattr__(self, "latencies_s", latencies)


@dataclass(frozen=True)
class Pair:
    """The trials of one pair index, by side (usually one each)."""

    index: int
    baseline: tuple[Trial, ...]
    candidate: tuple[Trial, ...]


def pair_trials(trials: Sequence[Trial]) -> list[Pair]:
    """Group trials into complete pairs, ordered by pair index; a pair missing a side is dropped."""
    by_index: dict[int, dict[str, list[Trial]]] = {}
    for trial in trials:
        by_index.setdefault(trial.pair_index, {"baseline": [], "candidate": []})[trial.side].append(trial)
    pairs = []
    for index in sorted(by_index):
        sides = by_index[index]
        if sides["baseline"] and sides["candidate"]:
            pairs.append(Pair(index, tuple(sides["baseline"]), tuple(sides["candidate"])))
        else:
            logger.debug("pair %d has only one side; left out of the verdict", index)
    return pairs


def side_data(metric: str, per_cluster: Sequence[Sequence[Trial]]) -> ClusterData:
    """One side's :class:`ClusterData` for ``metric``: each cluster's trials pooled into one value.

    Latencies of a cluster's trials are concatenated; throughput is total samples / total seconds
    (samples/s); energy per sample is total joules / total samples (J).

    Raises:
        InsufficientDataError: a cluster has no latencies, no duration, no samples or no energy reading.
    """
    if metric in LATENCY_PERCENTILES:
        latencies = [np.concatenate([t.latencies_s for t in trials]) for trials in per_cluster]
        if any(len(lat) == 0 for lat in latencies):
            raise InsufficientDataError(metric, "a trial has no latencies")
        return ClusterData.of_latencies(metric, latencies)
    values = []
    for trials in per_cluster:
        samples = sum(t.samples for t in trials)
        if metric == "throughput":
            duration_s = sum(t.duration_s for t in trials)
            if duration_s <= 0:
                raise InsufficientDataError(metric, "a trial has no duration")
            values.append(samples / duration_s)
            continue
        energies = [t.energy_j for t in trials]
        if any(e is None for e in energies):
            raise InsufficientDataError(metric, "energy not measured")
        if samples <= 0:
            raise InsufficientDataError(metric, "a trial has no samples")
        values.append(sum(e for e in energies if e is not None) / samples)
    return ClusterData.of_values(values, trials=sum(len(trials) for trials in per_cluster))


def decide_metric(
    metric: str,
    trials: Sequence[Trial],
    thresholds: Thresholds | None = None,
    *,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    final: bool = False,
) -> MetricVerdict:
    """Decide one metric from the complete pairs among ``trials``.

    The state is ``regressed``/``improved``/``unchanged`` when the interval decides, else ``more`` (run
    more pairs), or ``inconclusive`` when ``final``. Fewer than two complete pairs never decide. Same
    inputs and seed, same verdict.

    Raises:
        InsufficientDataError: no complete pair, or the metric's data is missing (e.g. energy).
        ValueError: unknown metric.
    """
    check_metric(metric)
    pairs = pair_trials(trials)
    if not pairs:
        raise InsufficientDataError(metric, "no complete baseline/candidate pair")
    baseline = side_data(metric, [p.baseline for p in pairs])
    candidate = side_data(metric, [p.candidate for p in pairs])
    return evaluate_metric(
        metric,
        baseline,
        candidate,
        thresholds or Thresholds(),
        paired=True,
        n_boot=n_boot,
        rng=metric_rng(seed, metric),
        final=final,
    )


def decide(
    trials: Sequence[Trial],
    thresholds_by_metric: ThresholdsArg = None,
    *,
    metrics: Sequence[str] = METRICS,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    final: bool = False,
    model: str = "",
    candidate_version: str = "",
    baseline_version: str = "",
    scenario: str = "",
    batch_size: int = 1,
    device: str = "",
    decided_unix_s: float = 0.0,
) -> Verdict:
    """Decide every metric of a paired batch and return the :class:`Verdict` (method ``paired``).

    A metric in :data:`OPTIONAL_METRICS` whose data is missing (energy not measured) is left out with a
    note; the note also says when baseline noise raised a metric's smallest reportable change.

    Raises:
        InsufficientDataError: no complete pair, or a required metric's data is missing.
    """
    verdicts, notes = [], []
    for metric in metrics:
        th = thresholds_for(metric, thresholds_by_metric)
        try:
            mv = decide_metric(metric, trials, th, n_boot=n_boot, seed=seed, final=final)
        except InsufficientDataError as e:
            if metric not in OPTIONAL_METRICS:
                raise
            notes.append(f"{metric} left out: {e.problem}")
            continue
        verdicts.append(mv)
        notes.extend(min_effect_notes(mv, th))
    return Verdict(
        model=model,
        candidate_version=candidate_version,
        baseline_version=baseline_version,
        scenario=scenario,
        batch_size=batch_size,
        device=device,
        method="paired",
        metrics=tuple(verdicts),
        decided_unix_s=decided_unix_s,
        weaker=False,
        note="; ".join(notes),
    )


def min_effect_notes(mv: MetricVerdict, thresholds: Thresholds) -> list[str]:
    """A note when baseline noise raised the smallest reportable change above the configured one."""
    if mv.min_effect > thresholds.default_min_effect + 1e-12:
        return [
            f"{mv.metric}: min_effect raised from {thresholds.default_min_effect:.3f} to {mv.min_effect:.3f} "
            "by the baseline's trial-to-trial noise"
        ]
    return []


def should_continue(
    verdict: Verdict | Sequence[MetricVerdict],
    pairs_done: int,
    min_pairs: int,
    max_pairs: int,
    elapsed_s: float,
    time_cap_s: float,
    *,
    pair_s: float = 0.0,
    primary_only: bool = False,
) -> bool:
    """Whether the batch should run another pair.

    No when the time cap is reached or another pair would pass it (``elapsed_s + pair_s > time_cap_s``,
    ``pair_s`` being the expected seconds of one more pair), or ``max_pairs`` are done; yes while fewer
    than ``min_pairs`` are done; otherwise yes only while a metric is ``more`` (only the primary P99
    metric with ``primary_only``). When this says no and a metric is still ``more``, decide again with
    ``final=True``.
    """
    if elapsed_s >= time_cap_s or elapsed_s + pair_s > time_cap_s or pairs_done >= max_pairs:
        return False
    if pairs_done < min_pairs:
        return True
    metric_verdicts = verdict.metrics if isinstance(verdict, Verdict) else verdict
    return any(
        mv.state == "more" for mv in metric_verdicts if not primary_only or mv.metric == PRIMARY_METRIC
    )
