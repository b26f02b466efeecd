"""What the exporter shows: plain frozen values built from the history store.

The store-to-snapshot builder lives with the store; the exporter only reads these values. A snapshot is
complete (every series, every run count), so a restarted daemon that rebuilds it from the store exports
the same counters it exported before: none goes backwards. The cumulative latency histogram of a series
covers every run of the series; :func:`histogram_from_latencies` buckets one run's raw latencies and
:func:`merge_histograms` adds runs together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from benchd.metrics.names import DEFAULT_LATENCY_BUCKETS_S


@dataclass(frozen=True)
class HistogramState:
    """A cumulative latency histogram.

    Attributes:
        bucket_upper_bounds_s: finite upper bounds in seconds, strictly increasing (``+Inf`` implied).
        cumulative_counts: queries with latency <= each bound, then the total for ``+Inf``
            (one longer than ``bucket_upper_bounds_s``).
        count: number of queries (equals the last cumulative count).
        sum_s: sum of all latencies in seconds.
    """

    bucket_upper_bounds_s: tuple[float, ...]
    cumulative_counts: tuple[int, ...]
    count: int
    sum_s: float

    def __post_init__(self) -> None:
        bounds = self.bucket_upper_bounds_s
        if any(b >= c for b, c in zip(bounds, bounds[1:], strict=False)):
            raise ValueError("histogram bounds must be strictly increasing")
        if len(self.cumulative_counts) != len(bounds) + 1:
            raise ValueError("cumulative_counts needs one entry per bound plus +Inf")
        counts = self.cumulative_counts
        if any(a > b for a, b in zip(counts, counts[1:], strict=False)) or (counts and counts[0] < 0):
            raise ValueError("cumulative_counts must be non-negative and non-decreasing")
        if counts[-1] != self.count:
            raise ValueError("count must equal the +Inf bucket")

    @classmethod
    def empty(cls, bounds_s: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS_S) -> HistogramState:
        """An empty histogram with the given bucket upper bounds (s)."""
        bounds = tuple(float(b) for b in bounds_s)
        return cls(bounds, (0,) * (len(bounds) + 1), 0, 0.0)


def histogram_from_latencies(
    latencies_ns: np.ndarray, bounds_s: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS_S
) -> HistogramState:
    """Bucket one run's raw query latencies.

    Args:
        latencies_ns: query latencies in nanoseconds (any integer or float array).
        bounds_s: finite bucket upper bounds in seconds, strictly increasing. A latency equal to a bound
            falls into that bucket (Prometheus ``le`` semantics).

    Raises:
        ValueError: the bounds are not strictly increasing, or a latency is negative or not finite.
    """
    bounds = tuple(float(b) for b in bounds_s)
    values_s = np.asarray(latencies_ns, dtype=np.float64).ravel() / 1e9
    if values_s.size and (not np.all(np.isfinite(values_s)) or values_s.min() < 0):
        raise ValueError("latencies must be finite and non-negative")
    # Bucket index i holds bounds[i-1] < v <= bounds[i]; index len(bounds) is the +Inf overflow.
    index = np.searchsorted(np.asarray(bounds, dtype=np.float64), values_s, side="left")
    per_bucket = np.bincount(index, minlength=len(bounds) + 1)
    cumulative = tuple(int(c) for c in np.cumsum(per_bucket))
    return HistogramState(bounds, cumulative, int(values_s.size), float(values_s.sum()))


def merge_histograms(a: HistogramState, b: HistogramState) -> HistogramState:
    """Add two histograms with the same bucket bounds (e.g. two runs of one series).

    Raises:
        ValueError: the bucket bounds differ.
    """
    if a.bucket_upper_bounds_s != b.bucket_upper_bounds_s:
        raise ValueError("cannot merge histograms with different bucket bounds")
    counts = tuple(x + y for x, y in zip(a.cumulative_counts, b.cumulative_counts, strict=True))
    return HistogramState(a.bucket_upper_bounds_s, counts, a.count + b.count, a.sum_s + b.sum_s)


@dataclass(frozen=True)
class ResultSeries:
    """The latest run of one series (model, version, scenario, device, batch size) plus its histogram.

    Attributes:
        latency_percentiles_s: exact percentiles of the latest run, keyed by quantile string
            (``"0.5"``, ``"0.9"``, ``"0.95"``, ``"0.99"``, ``"0.999"``), in seconds.
        power_w: power statistics of the measured window by stat (``"mean"``, ``"peak"``), in watts.
        histogram: cumulative histogram over every run of the series.
    """

    model: str
    version: str
    scenario: str
    device: str
    batch_size: int
    latency_percentiles_s: Mapping[str, float]
    throughput_qps: float
    throughput_sps: float
    run_timestamp_unix_s: float
    run_duration_s: float
    histogram: HistogramState
    energy_j: float | None = None
    energy_per_sample_j: float | None = None
    power_w: Mapping[str, float] = field(default_factory=dict)
    throttled: bool = False
    latency_bound_s: float | None = None


@dataclass(frozen=True)
class VerdictSeries:
    """One metric of the latest verdict of a candidate version against its baseline.

    ``metric`` is ``p99``, ``p50``, ``throughput`` or ``energy``; ``state`` is ``regressed``, ``unchanged``,
    ``improved`` or ``inconclusive``; ``ratio`` is candidate / baseline with its 95% interval
    ``low``..``high``.
    """

    model: str
    version: str
    baseline_version: str
    scenario: str
    device: str
    batch_size: int
    metric: str
    state: str
    ratio: float
    low: float
    high: float


@dataclass(frozen=True)
class ChangePointSeries:
    """A change point in a series' per-run P99 history, filed under the version whose run starts it.

    ``ratio`` is the new segment's mean P99 over the previous segment's.
    """

    model: str
    version: str
    scenario: str
    device: str
    batch_size: int
    ratio: float


@dataclass(frozen=True)
class NoiseFloorSeries:
    """A model's measured noise floor on one hardware class (:class:`benchd.records.NoiseFloor`)."""

    model: str
    scenario: str
    device: str
    hardware_class: str
    p99_ratio: float
    p50_ratio: float


@dataclass(frozen=True)
class RunCount:
    """All runs of a model's scenario that ended with ``outcome`` (ok, failed, timeout, invalid)."""

    model: str
    scenario: str
    outcome: str
    count: int


@dataclass(frozen=True)
class EnergyTotal:
    """Energy (J) of every measured window on a device, all runs together."""

    device: str
    joules: float


@dataclass(frozen=True)
class DeviceInfoSeries:
    """What a benchmark device is (``device`` is ``cuda:0`` or ``cpu``)."""

    device: str
    name: str
    uuid: str
    driver: str
    hardware_class: str


@dataclass(frozen=True)
class VersionRole:
    """A version holding a role: ``candidate``, ``baseline`` or ``champion``."""

    model: str
    version: str
    role: str


@dataclass(frozen=True)
class ResultsSnapshot:
    """Everything the results part of /metrics shows, built from the store.

    Attributes:
        version_order: per model, its versions from oldest to newest (registry order). Used to pick the
            latest K versions to export; versions missing from it rank by their latest run time, before
            every listed version.
        taken_unix_s: when the snapshot was built.
    """

    results: tuple[ResultSeries, ...] = ()
    verdicts: tuple[VerdictSeries, ...] = ()
    run_counts: tuple[RunCount, ...] = ()
    energy_totals: tuple[EnergyTotal, ...] = ()
    devices: tuple[DeviceInfoSeries, ...] = ()
    roles: tuple[VersionRole, ...] = ()
    version_order: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    taken_unix_s: float = 0.0
    change_points: tuple[ChangePointSeries, ...] = ()
    noise_floors: tuple[NoiseFloorSeries, ...] = ()


def latest_versions(snapshot: ResultsSnapshot, k: int) -> dict[str, frozenset[str]]:
    """Pick, per model, the latest ``k`` versions that have results or verdicts.

    Order: position in ``snapshot.version_order[model]``; versions not listed there come first (oldest),
    among themselves by their latest run time.

    Raises:
        ValueError: ``k`` is below 1.
    """
    last_run: dict[tuple[str, str], float] = {}
    for r in snapshot.results:
        key = (r.model, r.version)
        last_run[key] = max(last_run.get(key, float("-inf")), r.run_timestamp_unix_s)
    for v in snapshot.verdicts:
        last_run.setdefault((v.model, v.version), float("-inf"))
    return choose_latest_versions(last_run, snapshot.version_order, k)


def choose_latest_versions(
    last_run: Mapping[tuple[str, str], float], version_order: Mapping[str, tuple[str, ...]], k: int
) -> dict[str, frozenset[str]]:
    """Per model, the latest ``k`` of the versions in ``last_run`` ((model, version) -> latest run, unix s).

    Order as :func:`latest_versions` says; the snapshot builder picks what to read with it, the collector
    what to export, so both pick the same versions.

    Raises:
        ValueError: ``k`` is below 1.
    """
    if k < 1:
        raise ValueError("latest_versions needs k >= 1")
    by_model: dict[str, list[str]] = {}
    for model, version in last_run:
        by_model.setdefault(model, []).append(version)
    chosen: dict[str, frozenset[str]] = {}
    for model, versions in by_model.items():
        position = {v: i for i, v in enumerate(version_order.get(model, ()))}

        def rank(v: str, m: str = model, p: dict[str, int] = position) -> tuple[int, float, str]:
            return (p.get(v, -1), last_run[(m, v)], v)

        versions.sort(key=rank)
        chosen[model] = frozenset(versions[-k:])
    return chosen


def limit_versions(snapshot: ResultsSnapshot, k: int) -> ResultsSnapshot:
    """Return the snapshot with results and verdicts of only the latest ``k`` versions of each model.

    The champion (the deployed version) is kept too, however old: its verdict must keep alerting until a
    newer verdict clears it. Run counts, energy totals, devices and roles are kept whole (they are bounded
    without it).
    """
    keep = {model: set(versions) for model, versions in latest_versions(snapshot, k).items()}
    for role in snapshot.roles:
        if role.role == "champion":
            keep.setdefault(role.model, set()).add(role.version)
    results = tuple(r for r in snapshot.results if r.version in keep.get(r.model, ()))
    verdicts = tuple(v for v in snapshot.verdicts if v.version in keep.get(v.model, ()))
    change_points = tuple(c for c in snapshot.change_points if c.version in keep.get(c.model, ()))
    if (len(results), len(verdicts), len(change_points)) == (
        len(snapshot.results),
        len(snapshot.verdicts),
        len(snapshot.change_points),
    ):
        return snapshot
    return dataclasses.replace(snapshot, results=results, verdicts=verdicts, change_points=change_points)
