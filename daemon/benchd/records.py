"""Value objects that flow through benchd: versions, run specs, results, verdicts.

All values are in SI units (seconds, joules, watts, bytes) and the field names say so. Timestamps named
``*_mono_s`` are CLOCK_MONOTONIC seconds (``time.monotonic()``, comparable across processes on one host);
``*_unix_s`` are wall-clock seconds since the epoch. Every record converts to and from plain JSON-able
dicts with :func:`to_dict` and the ``from_dict`` class methods, which is how results cross the process
boundary and reach the store.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, TypeVar

SCENARIOS = ("single_stream", "multi_stream", "server", "offline", "concurrency")
#: How a run ended, as ``benchd_runs_total{outcome}`` counts it.
OUTCOMES = ("ok", "failed", "timeout", "invalid")
#: Every state a queued run passes through; the terminal ones are the outcomes plus ``interrupted``.
QUEUED, RUNNING, INTERRUPTED = "queued", "running", "interrupted"
TERMINAL_RUN_STATES = (*OUTCOMES, INTERRUPTED)
RUN_STATES = (QUEUED, RUNNING, *TERMINAL_RUN_STATES)
#: Run states whose scenario results exist (the worker finished, maybe with INVALID scenarios).
COMPLETED_RUN_STATES = ("ok", "invalid")

T = TypeVar("T")


def to_dict(record: Any) -> dict[str, Any]:
    """Return a JSON-able dict of a record (tuples become lists)."""
    return dataclasses.asdict(record)


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build record ``cls`` from a dict made by :func:`to_dict`; unknown keys are ignored.

    Nested records, tuples of records and optional records are rebuilt from their type hints, so records
    written by an older benchd (missing newer fields with defaults) still load.
    """
    hints = _type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in data:
            kwargs[f.name] = _coerce(hints[f.name], data[f.name])
    return cls(**kwargs)


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value) if len(inner) == 1 else value
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return from_dict(hint, value)  # type: ignore[arg-type]
    if origin is tuple:
        item = args[0] if args else Any
        return tuple(_coerce(item, v) for v in value)
    return value


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
        """The overall state, the worst of the metrics' (regressed > inconclusive > more > improved)."""
        states = {m.state for m in self.metrics}
        for s in ("regressed", "inconclusive", "more", "improved"):
            if s in states:
                return s
        return "unchanged" if states else "inconclusive"
