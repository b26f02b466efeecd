"""Deterministic snapshots for the exporter tests (imported by tests and conftest.py)."""

from __future__ import annotations

import dataclasses

import numpy as np

from benchd.metrics.snapshot import (
    ChangePointSeries,
    DeviceInfoSeries,
    EnergyTotal,
    HistogramState,
    NoiseFloorSeries,
    ResultSeries,
    ResultsSnapshot,
    RunCount,
    VerdictSeries,
    VersionRole,
    histogram_from_latencies,
)

BOUNDS_S = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)


def _rounded(histogram: HistogramState) -> HistogramState:
    # The float sum's last digits may depend on numpy's SIMD path; the golden file must not.
    return dataclasses.replace(histogram, sum_s=round(histogram.sum_s, 9))


def result_series(model: str, version: str, scenario: str = "server", *, seed: int = 0, **kw) -> ResultSeries:
    """A result series with latencies around 4 ms drawn from a seeded generator."""
    rng = np.random.default_rng(seed)
    latencies_ns = rng.lognormal(np.log(4e6), 0.4, 400).astype(np.int64)
    fields = dict(
        model=model,
        version=version,
        scenario=scenario,
        device="cuda:0",
        batch_size=1,
        latency_percentiles_s={"0.5": 0.004, "0.9": 0.0061, "0.95": 0.0072, "0.99": 0.0093, "0.999": 0.012},
        throughput_qps=240.0,
        throughput_sps=240.0,
        run_timestamp_unix_s=1_700_000_000.0 + (int(version) if version.isdigit() else 0) * 3600,
        run_duration_s=31.5,
        histogram=_rounded(histogram_from_latencies(latencies_ns, BOUNDS_S)),
        energy_j=410.5,
        energy_per_sample_j=0.0566,
        power_w={"mean": 212.25, "peak": 287.0},
        throttled=False,
    )
    fields.update(kw)
    return ResultSeries(**fields)


def small_snapshot() -> ResultsSnapshot:
    """Two models, four versions of one (only the latest three exported), a verdict, run counts."""
    results = [result_series("resnet50", str(v), seed=v, latency_bound_s=0.015) for v in (1, 2, 3, 4)]
    results.append(result_series("resnet50", "4", "offline", seed=9, batch_size=8, throttled=True))
    results.append(result_series("bert", "1", seed=5, energy_j=None, energy_per_sample_j=None, power_w={}))
    verdicts = [
        VerdictSeries("resnet50", "4", "3", "server", "cuda:0", 1, "p99", "regressed", 1.21, 1.12, 1.33),
        VerdictSeries(
            "resnet50", "4", "3", "server", "cuda:0", 1, "throughput", "unchanged", 0.99, 0.95, 1.03
        ),
        VerdictSeries("resnet50", "1", "0", "server", "cuda:0", 1, "p99", "unchanged", 1.0, 0.97, 1.03),
    ]
    return ResultsSnapshot(
        results=tuple(results),
        verdicts=tuple(verdicts),
        run_counts=(
            RunCount("resnet50", "server", "ok", 4),
            RunCount("resnet50", "server", "failed", 1),
            RunCount("bert", "server", "ok", 1),
        ),
        energy_totals=(EnergyTotal("cuda:0", 123456.5),),
        devices=(DeviceInfoSeries("cuda:0", "NVIDIA H100 80GB HBM3", "GPU-3f2a", "550.54.15", "h100-80gb"),),
        roles=(VersionRole("resnet50", "4", "candidate"), VersionRole("resnet50", "3", "baseline"),
               VersionRole("resnet50", "3", "champion")),
        version_order={"resnet50": ("1", "2", "3", "4")},
        taken_unix_s=1_700_020_000.0,
        change_points=(ChangePointSeries("resnet50", "3", "server", "cuda:0", 1, 1.18),),
        noise_floors=(NoiseFloorSeries("resnet50", "server", "cuda:0", "h100-550", 0.031, 0.008),),
    )
