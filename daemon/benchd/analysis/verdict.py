"""The paired regression verdict: interleaved A B A B trials of baseline and candidate, decided per metric.

A batch runs short trials of both versions alternately on one device; ``pair_index`` groups the two trials
that ran back to back, so slow drift (clocks, heat, a neighbour) hits both sides of a pair alike. Pairs run
in several worker processes (*units*), each loading the two versions in turn order, because an offset
between the sides that is fixed inside one process (memory layout, load order) is invisible to the pairs of
that process: only the spread between processes shows it. So the unit of the statistic is the process:

* each pair gives the log ratio ``d = log(candidate value / baseline value)`` of the metric's per-trial
  value (the trial's nearest-rank P99 or p50, its samples/s, its joules per sample);
* each unit's value is the mean ``d`` of its pairs;
* the ratio is ``exp(trimmed mean over units)``, 20% of the units cut from each end, and its interval
  Yuen's ``exp(trimmed mean +/- c * se_w)`` (``se_w`` from the winsorized variance), with ``c`` from the
  batch's :class:`~benchd.analysis.sequential.LookSchedule`, so the interval stays a valid 95% interval
  although the batch decides after every unit and stops once it decides.

Why this estimator, measured on kept real trials: the unit is the process because the former bootstrap over
pairs (queries resampled inside them) lost its A/A coverage once processes differed
(``bench/estimator_study.py``). The mean is trimmed because with whole trials (a GPU's default) a unit's
P99 log ratio on a noisy host is heavy-tailed: most units land within a few percent, and a few jump by
20-40% when a burst of host noise puts one side's P99 on a stall and not the other's. The plain mean's
interval is set by those few, the trimmed mean's by the many: replaying real A/A units of whole trials
(``bench/unit_replay.py``) twins ended ``unchanged`` in 71% of batches instead of 29%, coverage held. With
the sides alternating query by query (a CPU's default) the units are near-normal and the two estimators
agree within a few percent of width; the trim then only guards against a unit a long stall hit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchd.analysis.bootstrap import coefficient_of_variation, nearest_rank
from benchd.analysis.metrics import (
    HIGHER_IS_BETTER,
    LATENCY_PERCENTILES,
    METRICS,
    PRIMARY_METRIC,
    InsufficientDataError,
    Thresholds,
    ThresholdsArg,
    check_metric,
    classify,
    thresholds_for,
)
from benchd.analysis.sequential import LookSchedule, trimmed_interval
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
        unit: the worker process that ran the trial; None means the pair is its own unit.
    """

    side: str
    pair_index: int
    latencies_s: np.ndarray
    samples: int
    duration_s: float
    energy_j: float | None = None
    unit: int | None = None

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        if self.samples < 0 or self.duration_s < 0:
            raise ValueError("samples and duration_s must not be negative")
        latencies = np.array(self.latencies_s, dtype=np.float64).ravel()
        latencies.flags.writeable = False
        object.__setattr__(self, "latencies_s", latencies)

    @property
    def unit_key(self) -> int:
        """The unit the trial counts in: its process, else its pair."""
        return self.pair_index if self.unit is None else self.unit


@dataclass(frozen=True)
class Pair:
    """The trials of one pair index, by side (usually one each)."""

    index: int
    baseline: tuple[Trial, ...]
    candidate: tuple[Trial, ...]

    @property
    def unit(self) -> int:
        """The unit (worker process) the pair ran in."""
        return self.baseline[0].unit_key


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


def trial_value(metric: str, trials: Sequence[Trial]) -> float:
    """The metric's value over one side of one pair (its trials pooled; usually a single trial).

    Latency percentiles are nearest-rank over the pooled latencies (seconds); throughput is samples per
    second; energy per sample is joules per sample.

    Raises:
        InsufficientDataError: no latencies, no duration, no samples or no energy reading.
    """
    if metric in LATENCY_PERCENTILES:
        latencies = np.concatenate([t.latencies_s for t in trials])
        if len(latencies) == 0:
            raise InsufficientDataError(metric, "a trial has no latencies")
        rank = int(nearest_rank(len(latencies), LATENCY_PERCENTILES[metric]))
        return float(np.partition(latencies, rank - 1)[rank - 1])
    samples = sum(t.samples for t in trials)
    if metric == "throughput":
        duration_s = sum(t.duration_s for t in trials)
        if duration_s <= 0:
            raise InsufficientDataError(metric, "a trial has no duration")
        return samples / duration_s
    energies = [t.energy_j for t in trials]
    if any(e is None for e in energies):
        raise InsufficientDataError(metric, "energy not measured")
    if samples <= 0:
        raise InsufficientDataError(metric, "a trial has no samples")
    return sum(e for e in energies if e is not None) / samples


def unit_log_values(metric: str, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """Per unit, the mean log of the baseline's and of the candidate's per-pair values (shape (units,)).

    Raises:
        InsufficientDataError: a value is missing, zero or not finite (no log ratio exists).
    """
    per_unit: dict[int, list[tuple[float, float]]] = {}
    for pair in pairs:
        base, cand = trial_value(metric, pair.baseline), trial_value(metric, pair.candidate)
        if not (base > 0.0 and cand > 0.0 and math.isfinite(base) and math.isfinite(cand)):
            raise InsufficientDataError(metric, f"values {base!r} and {cand!r} give no ratio")
        per_unit.setdefault(pair.unit, []).append((math.log(base), math.log(cand)))
    logs = np.array([np.mean(values, axis=0) for values in per_unit.values()], dtype=np.float64)
    return logs[:, 0], logs[:, 1]


def decide_metric(
    metric: str,
    trials: Sequence[Trial],
    thresholds: Thresholds | None = None,
    *,
    schedule: LookSchedule | None = None,
    final: bool = False,
) -> MetricVerdict:
    """Decide one metric from the complete pairs among ``trials``.

    The state is ``regressed``/``improved``/``unchanged`` when the interval decides at a planned look,
    else ``more`` (run more units), or ``inconclusive`` when ``final``. ``schedule`` None means a single look
    at the units present (a batch decided once).

    The smallest reportable change is ``m = max(thresholds.default_min_effect, cv / sqrt(units))``, where
    ``cv`` is the coefficient of variation of the baseline's per-unit values: a change smaller than the
    noise the baseline's own units leave on the estimate is never reported.

    Raises:
        InsufficientDataError: no complete pair, or the metric's data is missing (e.g. energy).
        ValueError: unknown metric.
    """
    check_metric(metric)
    thresholds = thresholds or Thresholds()
    pairs = pair_trials(trials)
    if not pairs:
        raise InsufficientDataError(metric, "no complete baseline/candidate pair")
    base_logs, cand_logs = unit_log_values(metric, pairs)
    units = len(base_logs)
    diffs = cand_logs - base_logs
    if schedule is None:
        schedule = LookSchedule(max(2, units), max(2, units))
    at_look = units >= schedule.min_units
    if units >= 2:
        center, low_log, high_log = trimmed_interval(diffs, schedule)
        low, high = math.exp(low_log), math.exp(high_log)
    else:
        center, low, high = float(np.mean(diffs)), math.nan, math.nan
    noise = coefficient_of_variation(np.exp(base_logs)) / math.sqrt(units)
    min_effect = max(thresholds.default_min_effect, noise)
    higher = HIGHER_IS_BETTER[metric]
    decides = units >= 2 and (at_look or final)
    state = classify(low, high, thresholds.threshold, min_effect, higher) if decides else None
    if state is None:
        state = "inconclusive" if final else "more"
    return MetricVerdict(
        metric=metric,
        state=state,
        ratio=math.exp(center),
        ratio_low=low,
        ratio_high=high,
        baseline_value=math.exp(float(np.mean(base_logs))),
        candidate_value=math.exp(float(np.mean(cand_logs))),
        threshold=thresholds.threshold,
        min_effect=min_effect,
        pairs=len(pairs),
        n_candidate=_measurements(metric, pairs, "candidate"),
        n_baseline=_measurements(metric, pairs, "baseline"),
        higher_is_better=higher,
    )


def _measurements(metric: str, pairs: Sequence[Pair], side: str) -> int:
    trials = [t for p in pairs for t in getattr(p, side)]
    return sum(len(t.latencies_s) for t in trials) if metric in LATENCY_PERCENTILES else len(trials)


def units_of(trials: Sequence[Trial]) -> int:
    """The number of units (worker processes) with at least one complete pair."""
    return len({p.unit for p in pair_trials(trials)})


def decide(
    trials: Sequence[Trial],
    thresholds_by_metric: ThresholdsArg = None,
    *,
    metrics: Sequence[str] = METRICS,
    schedule: LookSchedule | None = None,
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
            mv = decide_metric(metric, trials, th, schedule=schedule, final=final)
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
            "by the baseline's unit-to-unit noise"
        ]
    return []


def should_continue(
    verdict: Verdict | Sequence[MetricVerdict],
    units_done: int,
    min_units: int,
    max_units: int,
    elapsed_s: float,
    time_cap_s: float,
    *,
    unit_s: float = 0.0,
    primary_only: bool = False,
) -> bool:
    """Whether the batch should run another unit.

    No when the time cap is reached or another unit would pass it (``elapsed_s + unit_s > time_cap_s``,
    ``unit_s`` being the expected seconds of one more unit), or ``max_units`` are done; yes while fewer than
    ``min_units`` are done; otherwise yes only while a metric is ``more`` (only the primary P99 metric with
    ``primary_only``). When this says no and a metric is still ``more``, decide again with ``final=True``.
    """
    if elapsed_s >= time_cap_s or elapsed_s + unit_s > time_cap_s or units_done >= max_units:
        return False
    if units_done < min_units:
        return True
    metric_verdicts = verdict.metrics if isinstance(verdict, Verdict) else verdict
    return any(
        mv.state == "more" for mv in metric_verdicts if not primary_only or mv.metric == PRIMARY_METRIC
    )
