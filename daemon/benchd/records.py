"""Value objects that flow through benchd: versions, run specs, results, verdicts.

All values are in SI units (seconds, joules, watts, bytes) and the field names say so. Timestamps named
``*_mono_s`` are CLOCK_MONOTONIC seconds (``time.monotonic()``, comparable across processes on one host);
``*_unix_s`` are wall-clock seconds since the epoch. Every record converts to and from plain JSON-able
dicts with :func:`to_dict` and :func:`from_dict` (a pydantic TypeAdapter per record class, built on first
use, so importing this module stays cheap for the torch worker), which is how results cross the process
boundary and reach the store.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from pydantic import TypeAdapter

SCENARIOS = ("single_stream", "multi_stream", "server", "offline", "concurrency")
#: How a run ended, as ``benchd_runs_total{outcome}`` counts it.
OUTCOMES = ("ok", "failed", "timeout", "invalid")
#: Every state a queued run passes through; the terminal ones are the outcomes plus ``interrupted``.
QUEUED, RUNNING, INTERRUPTED = "queued", "running", "interrupted"
TERMINAL_RUN_STATES = (*OUTCOMES, INTERRUPTED)
RUN_STATES = (QUEUED, RUNNING, *TERMINAL_RUN_STATES)
#: Run states whose scenario results exist (the worker finished, maybe with INVALID scenarios).
COMPLETED_RUN_STATES = ("ok", "invalid")
#: The method (and state) of a verdict not attempted because the threshold is below the noise floor.
REFUSED = "refused"

T = TypeVar("T")


def to_dict(record: Any) -> dict[str, Any]:
    """Return a plain dict of a record (nested records become dicts), ready for ``json.dumps``."""
    dumped: dict[str, Any] = _adapter(type(record)).dump_python(record, warnings=False)
    return dumped


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build record ``cls`` from a dict made by :func:`to_dict` (or its JSON); unknown keys are ignored.

    Nested records, tuples and optional records are rebuilt from the type hints by pydantic, so records
    written by an older benchd (missing newer fields with defaults) still load, and records written by a
    newer one (with fields this one does not know) load too.

    Raises:
        ValueError: a value does not fit its field (a pydantic ``ValidationError``).
    """
    record: T = _adapter(cls).validate_python(data)
    return record


_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type) -> TypeAdapter[Any]:
    """One pydantic TypeAdapter per record class, built on first use (pydantic is imported only then)."""
    adapter = _ADAPTERS.get(cls)
    if adapter is None:
        from pydantic import TypeAdapter

        adapter = _ADAPTERS[cls] = TypeAdapter(cls)
    return adapter


def version_sort_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """Sort versions naturally: ``v2`` before ``v10``, ``2024-05-01`` before ``2024-12-01``.

    This is the registry's version order everywhere in benchd (MLflow's version numbers and local folder
    names alike): "the previous version" means the previous one in this order.
    """
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", version))


@dataclass(frozen=True)
class ModelVersion:
    """A model version a registry reported.

    ``path`` is a local folder holding the artifact and ``benchd.yaml`` (for remote registries, filled in
    once the artifact is downloaded into the cache); ``source_uri`` is where the registry says it lives.
    """

    model: str
    version: str
    registry: str
    path: str = ""
    source_uri: str = ""
    created_unix_s: float | None = None
    aliases: tuple[str, ...] = ()
    tags: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ScenarioSettings:
    """How one scenario runs (LoadGen vocabulary).

    A run ends once both ``min_duration_s`` and ``min_query_count`` are met, or at ``max_duration_s`` /
    ``max_query_count`` whichever comes first. Warm-up runs ``warmup_queries`` queries and then keeps going
    until ``warmup_s`` has passed; its queries are discarded.
    """

    name: str = "single_stream"
    warmup_queries: int = 20
    warmup_s: float = 1.0
    min_duration_s: float = 5.0
    max_duration_s: float = 60.0
    min_query_count: int = 100
    max_query_count: int = 10_000_000
    samples_per_query: int = 8
    target_qps: float = 100.0
    latency_bound_s: float | None = None
    latency_percentile: float = 99.0
    search_max_qps: bool = False
    concurrency: int = 4
    seed: int = 0

    def samples_per_query_at(self, batch_size: int) -> int:
        """Samples each query carries at ``batch_size``: multi-stream queries carry ``samples_per_query``."""
        return self.samples_per_query if self.name == "multi_stream" else batch_size


@dataclass(frozen=True)
class RunSpec:
    """Everything a worker needs to benchmark one model version (a JSON file on the way to the worker).

    ``baseline`` names the version (or registry alias) the daemon compares the result with; None means
    the default choice (the champion alias, else the previous version).
    """

    model: str
    version: str
    model_path: str
    scenarios: tuple[ScenarioSettings, ...] = (ScenarioSettings(),)
    batch_sizes: tuple[int, ...] = (1,)
    device: str = "cpu"
    dtype: str = "float32"
    amp: bool = False
    compile: bool = False
    threads: int | None = None
    allow_pickle: bool = False
    allow_native_code: bool = False
    cpus: tuple[int, ...] | None = None
    timeout_s: float = 600.0
    seed: int = 0
    baseline: str | None = None


@dataclass(frozen=True)
class LatencySummary:
    """Latency statistics of the measured queries of one scenario (seconds).

    ``p99_ci_low_s``/``p99_ci_high_s`` is a distribution-free 95% confidence interval for p99 from order
    statistics; ``None`` when there are too few queries to bound it.
    """

    n: int
    min_s: float
    mean_s: float
    std_s: float
    p50_s: float
    p90_s: float
    p95_s: float
    p99_s: float
    p999_s: float
    max_s: float
    p99_ci_low_s: float | None = None
    p99_ci_high_s: float | None = None


@dataclass(frozen=True)
class EnergyReport:
    """Energy of a measured window; ``measured`` False means "not measured", with ``reason``."""

    measured: bool
    source: str = "none"
    reason: str | None = None
    window_s: float = 0.0
    energy_j: float | None = None
    energy_per_sample_j: float | None = None
    mean_power_w: float | None = None
    peak_power_w: float | None = None


@dataclass(frozen=True)
class TelemetrySummary:
    """Device telemetry sampled outside the timing process over a measured window."""

    samples: int = 0
    mean_utilization_ratio: float | None = None
    peak_memory_used_bytes: int | None = None
    peak_temperature_c: float | None = None
    mean_sm_clock_hz: float | None = None
    mean_power_w: float | None = None
    throttled: bool = False
    throttle_reasons: tuple[str, ...] = ()


@dataclass(frozen=True)
class ScenarioResult:
    """The outcome of one scenario at one batch size."""

    scenario: str
    batch_size: int
    device: str
    latency: LatencySummary
    queries: int
    samples: int
    duration_s: float
    throughput_qps: float
    throughput_sps: float
    mlperf_metric: str
    mlperf_value: float
    valid: bool
    invalid_reasons: tuple[str, ...] = ()
    warmup_queries: int = 0
    warmup_s: float = 0.0
    warmup_p50_s: float | None = None
    window_start_mono_s: float = 0.0
    window_end_mono_s: float = 0.0
    target_qps: float | None = None
    achieved_qps: float | None = None
    latency_bound_s: float | None = None
    bound_met: bool | None = None
    max_valid_qps: float | None = None
    device_time_p50_s: float | None = None
    device_time_p99_s: float | None = None
    concurrency: int | None = None
    samples_per_query: int | None = None
    issue_lag_p99_s: float | None = None
    energy: EnergyReport | None = None
    telemetry: TelemetrySummary | None = None
    latencies_file: str | None = None
    #: How the artifact was read (``export``, ``aoti``, ``torchscript``, ``hf``, ``pickle``; by content).
    artifact_format: str | None = None
    #: How the timed call differs from a plain ``model(...)`` call (pre-flattened inputs...), if it does.
    artifact_note: str | None = None
    #: ``(dim, value, queries)``: values drawn for each ``dims:`` entry of ``benchd.yaml``, and how many
    #: measured queries saw each.
    drawn_dims: tuple[tuple[str, int, int], ...] = ()


@dataclass(frozen=True)
class RunResult:
    """The outcome of a :class:`RunSpec`: per-scenario results, or the typed error that stopped it."""

    model: str
    version: str
    device: str
    outcome: str
    results: tuple[ScenarioResult, ...] = ()
    error_kind: str | None = None
    error: str | None = None
    started_unix_s: float = 0.0
    ended_unix_s: float = 0.0
    fingerprint: dict[str, Any] = field(default_factory=dict)
    output_dir: str | None = None
    #: ``(query size, scenario, reason)`` of what was asked for but cannot run (a batch size outside a
    #: static export's range); the reason says how to fix it.
    skipped: tuple[tuple[int, str, str], ...] = ()

    @property
    def ok(self) -> bool:
        """True when the run completed (its scenarios may still be INVALID)."""
        return self.outcome in COMPLETED_RUN_STATES

    @property
    def duration_s(self) -> float:
        """Wall-clock duration of the run in seconds."""
        return max(0.0, self.ended_unix_s - self.started_unix_s)


@dataclass(frozen=True)
class MetricVerdict:
    """Whether one metric regressed: ratio candidate/baseline with a 95% interval.

    ``state`` is one of ``regressed``, ``unchanged``, ``improved``, ``inconclusive``, or ``more`` (not yet
    decided: more pairs are needed; never stored as a final answer). For metrics where
    higher is better (throughput) the ratio is still candidate/baseline and ``regressed`` means lower.
    ``ratio`` is the paired estimate (the trimmed mean of the units' log ratios, exponentiated) and may
    differ a little from ``candidate_value / baseline_value``, the geometric means of each side's values.
    """

    metric: str
    state: str
    ratio: float
    ratio_low: float
    ratio_high: float
    baseline_value: float
    candidate_value: float
    threshold: float
    min_effect: float
    pairs: int
    n_candidate: int = 0
    n_baseline: int = 0
    higher_is_better: bool = False


@dataclass(frozen=True)
class Verdict:
    """The regression verdict of a candidate version against its baseline."""

    model: str
    candidate_version: str
    baseline_version: str
    scenario: str
    batch_size: int
    device: str
    method: str
    metrics: tuple[MetricVerdict, ...]
    decided_unix_s: float = 0.0
    weaker: bool = False
    note: str = ""

    @property
    def state(self) -> str:
        """The overall state, the worst of the metrics' (regressed > inconclusive > more > improved).

        ``refused`` (method ``refused``, no metrics) when no batch ran because the threshold is below the
        host's measured noise floor; the note says so.
        """
        if self.method == REFUSED:
            return REFUSED
        states = {m.state for m in self.metrics}
        for s in ("regressed", "inconclusive", "more", "improved"):
            if s in states:
                return s
        return "unchanged" if states else "inconclusive"


@dataclass(frozen=True)
class NoiseFloor:
    """The smallest change a comparison batch can decide on this host within its budget, from A/A batches.

    A/A batches compare a version with itself, run to the full budget (no early stop). The floor of a metric
    is the median, over those batches, of the half-width of its final 95% interval as a ratio
    (``0.06``: the interval reached +/-6%). A threshold below the P99 floor can never call a twin
    ``unchanged``, and the smallest P99 regression a batch can call is about ``min_effect + floor``.

    Attributes:
        model: the model calibrated.
        version: the version compared with itself.
        hardware_class: the hardware/driver fingerprint class the floor holds for.
        device: the device label (``cuda:0``, ``cpu``).
        scenario: the scenario the batches ran.
        batch_size: the batch size they ran.
        p99_ratio: the P99 floor.
        p50_ratio: the p50 floor.
        batches: A/A batches run.
        pairs: median pairs per batch.
        budget_s: the time cap of each batch (seconds).
        threshold: the P99 threshold configured when it was measured.
        measured_unix_s: when.
        widths: each batch's final P99 half-width (ratio).
    """

    model: str
    version: str
    hardware_class: str
    device: str
    scenario: str
    batch_size: int
    p99_ratio: float
    p50_ratio: float
    batches: int
    pairs: int
    budget_s: float
    threshold: float
    measured_unix_s: float = 0.0
    widths: tuple[float, ...] = ()

    def refusal(self, p99_threshold: float) -> str | None:
        """The sentence refusing a P99 threshold below this floor, or None when the threshold is usable."""
        if p99_threshold >= self.p99_ratio:
            return None
        floor = f"{self.p99_ratio:.1%}" if math.isfinite(self.p99_ratio) else "unmeasurable (no interval)"
        return (
            f"the P99 threshold {p99_threshold:.0%} is below this host's noise floor {floor} "
            f"for model {self.model} ({self.scenario}, hardware class {self.hardware_class or 'unknown'}, "
            f"measured by {self.batches} A/A batches of {self.budget_s:g} s): no batch within the budget "
            "could decide it; raise verdict.thresholds.p99_latency (or verdict.threshold) above the floor, "
            "or give batches a longer verdict.time_cap"
        )
