"""Regression analysis: baseline choice, per-metric verdicts and change points (pure functions, numpy only).

* :func:`choose_baseline` picks the version a candidate is compared against.
* :func:`decide` / :func:`decide_metric` turn an interleaved A B A B batch of :class:`Trial` (run in
  several worker processes, the batch's units) into a :class:`~benchd.records.Verdict`, with intervals that
  stay valid over the batch's :class:`LookSchedule`; :func:`should_continue` says whether to run another
  unit.
* :func:`decide_from_history` is the weaker comparison against stored runs only.
* :func:`detect_change_points` finds slow creep over a model's per-trial P99 history.

Everything is deterministic: the same inputs (and seed, where there is resampling) give the same answer.
"""

from __future__ import annotations

from benchd.analysis.baseline import (
    ALIASES,
    BaselineCandidate,
    BaselineChoice,
    choose_baseline,
    eligible_runs,
    ineligible_reason,
)
from benchd.analysis.changepoint import ChangePoint, detect_change_points
from benchd.analysis.history import HISTORY_METRICS, decide_from_history
from benchd.analysis.metrics import (
    DEFAULT_N_BOOT,
    HIGHER_IS_BETTER,
    METRICS,
    PRIMARY_METRIC,
    STATES,
    AnalysisError,
    InsufficientDataError,
    Thresholds,
    classify,
    thresholds_for,
)
from benchd.analysis.sequential import LookSchedule
from benchd.analysis.verdict import Trial, decide, decide_metric, pair_trials, should_continue, units_of

__all__ = [
    "DEFAULT_N_BOOT",
    "HIGHER_IS_BETTER",
    "HISTORY_METRICS",
    "METRICS",
    "PRIMARY_METRIC",
    "STATES",
    "AnalysisError",
    "ALIASES",
    "BaselineCandidate",
    "BaselineChoice",
    "ChangePoint",
    "InsufficientDataError",
    "LookSchedule",
    "Thresholds",
    "Trial",
    "choose_baseline",
    "classify",
    "decide",
    "decide_from_history",
    "decide_metric",
    "detect_change_points",
    "eligible_runs",
    "ineligible_reason",
    "pair_trials",
    "should_continue",
    "thresholds_for",
    "units_of",
]
