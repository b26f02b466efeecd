"""Load generation in LoadGen's vocabulary: scenarios, Poisson schedules, latency statistics.

Pure Python and numpy: no torch here, so the same loops time a no-op in ``bench/`` and a model in the
worker.
"""

from __future__ import annotations

from benchd.loadgen.execute import ScenarioOutcome, build_result, run_scenario
from benchd.loadgen.scenarios import Measurement, StopRule
from benchd.loadgen.stats import summarise_latencies

__all__ = [
    "Measurement",
    "ScenarioOutcome",
    "StopRule",
    "build_result",
    "run_scenario",
    "summarise_latencies",
]
