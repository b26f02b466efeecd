"""What one comparison batch runs: a JSON file on its way to the worker (data only, no orchestration).

The torch worker (:mod:`benchd.runner.pairs`) imports this module and nothing else of :mod:`benchd.compare`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from benchd.analysis.metrics import DEFAULT_N_BOOT
from benchd.records import RunSpec, ScenarioSettings

#: The file the parent writes into the worker's output folder to end the batch.
STOP_FILE = "stop"
SIDES = ("baseline", "candidate")


@dataclass(frozen=True)
class ComparisonPlan:
    """What one comparison batch runs (built by :func:`benchd.compare.run.plan_comparison` from the config).

    The settings have no defaults here: they come from the ``verdict:`` section of the config, whose
    declaration (:class:`benchd.config.VerdictConfig`) is the one place their defaults live.

    Attributes:
        candidate: the candidate's run spec: one scenario, one batch size, a concrete device (resolve
            ``auto`` first, so energy is read from the right device).
        baseline: the baseline's run spec, the same settings with the baseline's version and folder.
        trial_s: measured seconds of each trial.
        min_pairs: pairs run before the verdict may stop the batch.
        max_pairs: the most pairs run.
        time_cap_s: benchmarking seconds (from the first trial) after which no new pair starts.
        threshold: threshold t of every metric without its own entry in ``thresholds`` (0.10 = 10%).
        min_effect: smallest reportable change m of every metric; None means t / 2.
        thresholds: per-metric thresholds (``p99_latency``, ``p50_latency``, ``throughput``,
            ``energy_per_sample``).
        timeout_s: the worker is killed after this many seconds (loading included).
        n_boot: bootstrap replicates per decision.
    """

    candidate: RunSpec
    baseline: RunSpec
    trial_s: float
    min_pairs: int
    max_pairs: int
    time_cap_s: float
    threshold: float
    min_effect: float | None
    thresholds: dict[str, float]
    timeout_s: float
    n_boot: int = DEFAULT_N_BOOT

    def __post_init__(self) -> None:
        if self.min_pairs < 2 or self.max_pairs < self.min_pairs:
            raise ValueError(f"need 2 <= min_pairs <= max_pairs, got {self.min_pairs} and {self.max_pairs}")
        if self.trial_s <= 0 or self.time_cap_s <= 0 or self.timeout_s <= 0:
            raise ValueError("trial_s, time_cap_s and timeout_s must be positive")
        if len(self.candidate.scenarios) != 1 or len(self.candidate.batch_sizes) != 1:
            raise ValueError("a comparison runs one scenario at one batch size")

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
