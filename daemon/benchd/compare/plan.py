"""What one comparison batch runs: a JSON file on its way to the worker (data only, no orchestration).

The torch worker (:mod:`benchd.runner.pairs`) imports this module and nothing else of :mod:`benchd.compare`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from benchd.records import RunSpec, ScenarioSettings

SIDES = ("baseline", "candidate")
#: Scenarios whose trials always run whole: their load is a schedule (server) or parallel streams.
WHOLE_TRIAL_SCENARIOS = ("server", "concurrency")
#: ``verdict.block_queries: auto`` on a CPU: the sides alternate query by query. Measured here on a 1.25 ms
#: model, the per-pair P99 log ratio's spread was 0.26 with whole trials, 0.11 with blocks of 25, 0.02 with 1.
AUTO_BLOCK_QUERIES = 1
#: Fewest units (worker processes) before the first look: with fewer, the spread between them says little.
MIN_UNITS = 3


@dataclass(frozen=True)
class ComparisonPlan:
    """What one comparison batch runs (built by :func:`benchd.compare.run.plan_comparison` from the config).

    The settings have no defaults here: they come from the ``verdict:`` section of the config, whose
    declaration (:class:`benchd.config.VerdictConfig`) is the one place their defaults live.

    Attributes:
        candidate: the candidate's run spec: one scenario, one batch size, a concrete device (resolve
            ``auto`` first, so energy is read from the right device).
        baseline: the baseline's run spec, the same settings with the baseline's version and folder.
        trial_s: the fewest measured seconds of a trial.
        trial_queries: the fewest measured queries of a trial: enough that its P99 rests on a few dozen
            tail queries (2000 queries: 20 past the P99). Trials are sized from the model's settled
            latency to hold both minimums, up to :attr:`trial_limit_s`.
        min_pairs: pairs run before the verdict may stop the batch.
        max_pairs: the most pairs run.
        pairs_per_unit: pairs each worker process runs; a new process (the load order swapped) starts for
            the next ones, so an offset fixed inside one process becomes spread the interval sees.
        time_cap_s: wall seconds of the whole batch (process starts included) after which no new unit
            starts.
        threshold: threshold t of every metric without its own entry in ``thresholds`` (0.10 = 10%).
        min_effect: smallest reportable change m of every metric; None means t / 2.
        thresholds: per-metric thresholds (``p99_latency``, ``p50_latency``, ``throughput``,
            ``energy_per_sample``).
        timeout_s: the batch is given up (the running worker killed) after this many seconds.
        stop_when_decided: end the batch at the first look that decides every metric (False: run to the
            budget, as a calibration does to measure how narrow the budget gets).
        block_queries: within a pair of a closed-loop scenario, the sides take turns in blocks of this
            many timed queries until each holds a trial, so a burst of host noise lands on both sides
            alike; 0 runs each side's trial whole, one after the other (then each trial has its own
            window and its energy can be compared). Server and concurrency trials always run whole.
        unit: which unit this copy of the plan runs (set by the parent for each worker process).
    """

    candidate: RunSpec
    baseline: RunSpec
    trial_s: float
    trial_queries: int
    min_pairs: int
    max_pairs: int
    pairs_per_unit: int
    time_cap_s: float
    threshold: float
    min_effect: float | None
    thresholds: dict[str, float]
    timeout_s: float
    stop_when_decided: bool = True
    block_queries: int = 0
    unit: int = 0

    def __post_init__(self) -> None:
        if self.min_pairs < 2 or self.max_pairs < self.min_pairs:
            raise ValueError(f"need 2 <= min_pairs <= max_pairs, got {self.min_pairs} and {self.max_pairs}")
        if self.trial_s <= 0 or self.time_cap_s <= 0 or self.timeout_s <= 0:
            raise ValueError("trial_s, time_cap_s and timeout_s must be positive")
        if self.block_queries < 0:
            raise ValueError(f"block_queries must be 0 or more, got {self.block_queries}")
        if self.trial_queries < 1 or self.pairs_per_unit < 1:
            raise ValueError("trial_queries and pairs_per_unit must be positive")
        if len(self.candidate.scenarios) != 1 or len(self.candidate.batch_sizes) != 1:
            raise ValueError("a comparison runs one scenario at one batch size")

    @property
    def min_units(self) -> int:
        """Units run before the first look."""
        return max(MIN_UNITS, math.ceil(self.min_pairs / self.pairs_per_unit))

    @property
    def max_units(self) -> int:
        """The most units a batch runs."""
        return max(self.min_units, math.ceil(self.max_pairs / self.pairs_per_unit))

    @property
    def trial_limit_s(self) -> float:
        """The longest a trial may take: the time cap must hold the pairs of ``min_units`` units."""
        return max(self.trial_s, self.time_cap_s / (2 * self.pairs_per_unit * self.min_units))

    @property
    def pair_indices(self) -> range:
        """The global indices of the pairs this unit runs."""
        first = self.unit * self.pairs_per_unit
        return range(first, first + self.pairs_per_unit)

    @property
    def load_order(self) -> tuple[str, str]:
        """The order this unit loads the sides in: swapped from one unit to the next."""
        return SIDES if self.unit % 2 == 0 else (SIDES[1], SIDES[0])

    @property
    def interleaved(self) -> bool:
        """True when the pairs run in interleaved blocks (see :attr:`block_queries`)."""
        return self.block_queries > 0 and self.scenario.name not in WHOLE_TRIAL_SCENARIOS

    def spec(self, side: str) -> RunSpec:
        """The run spec of ``side`` (``baseline`` or ``candidate``)."""
        return self.baseline if side == "baseline" else self.candidate

    @property
    def model(self) -> str:
        """The model both sides are versions of."""
        return self.candidate.model

    @property
    def candidate_version(self) -> str:
        """The new version."""
        return self.candidate.version

    @property
    def baseline_version(self) -> str:
        """The version the candidate is compared with."""
        return self.baseline.version

    @property
    def scenario(self) -> ScenarioSettings:
        """The scenario both sides run in every trial."""
        return self.candidate.scenarios[0]

    @property
    def batch_size(self) -> int:
        """The batch size of the sweep entry compared."""
        return self.candidate.batch_sizes[0]

    @property
    def samples_per_query(self) -> int:
        """Samples each query carries (multi-stream: the scenario's ``samples_per_query``)."""
        return self.scenario.samples_per_query_at(self.batch_size)

    @property
    def device(self) -> str:
        """The device both sides run on."""
        return self.candidate.device

    @property
    def seed(self) -> int:
        """Seeds the inputs (the same for both sides) and the decision's resampling."""
        return self.candidate.seed

    def replace(self, **changes: Any) -> ComparisonPlan:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)
