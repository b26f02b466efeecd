"""Fixtures for the history store tests: a fresh store on disk, a settable clock, record builders."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from benchd.history import SQLiteHistoryStore
from benchd.records import (
    EnergyReport,
    LatencySummary,
    RunResult,
    RunSpec,
    ScenarioResult,
    ScenarioSettings,
    TelemetrySummary,
)


class FakeClock:
    """A wall clock the test moves by hand."""

    def __init__(self, start_s: float = 1_700_000_000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "benchd.sqlite"


@pytest.fixture
def store(db_path: Path, clock: FakeClock) -> Iterator[SQLiteHistoryStore]:
    s = SQLiteHistoryStore(str(db_path), clock=clock)
    yield s
    s.close()


def _spec(
    model: str = "resnet",
    version: str = "1",
    device: str = "cpu",
    scenarios: tuple[str, ...] = ("single_stream",),
    **kw: object,
) -> RunSpec:
    return RunSpec(
        model=model,
        version=version,
        model_path=f"/models/{model}/{version}",
        device=device,
        scenarios=tuple(ScenarioSettings(name=s) for s in scenarios),
        **kw,
    )  # type: ignore[arg-type]


def _scenario_result(
    scenario: str = "single_stream",
    p99_s: float = 0.004,
    batch_size: int = 1,
    device: str = "cpu",
    latencies_file: str | None = None,
    throttled: bool = False,
) -> ScenarioResult:
    lat = LatencySummary(
        n=100,
        min_s=0.001,
        mean_s=0.002,
        std_s=0.0005,
        p50_s=0.002,
        p90_s=0.003,
        p95_s=0.0035,
        p99_s=p99_s,
        p999_s=p99_s * 1.2,
        max_s=p99_s * 1.5,
        p99_ci_low_s=p99_s * 0.9,
        p99_ci_high_s=p99_s * 1.1,
    )
    return ScenarioResult(
        scenario=scenario,
        batch_size=batch_size,
        device=device,
        latency=lat,
        queries=100,
        samples=100 * batch_size,
        duration_s=1.0,
        throughput_qps=100.0,
        throughput_sps=100.0 * batch_size,
        mlperf_metric="p90_latency_s",
        mlperf_value=0.003,
        valid=True,
        energy=EnergyReport(measured=True, source="nvml_counter", energy_j=5.0, energy_per_sample_j=0.05),
        telemetry=TelemetrySummary(
            samples=10, throttled=throttled, throttle_reasons=("hw_slowdown",) if throttled else ()
        ),
        latencies_file=latencies_file,
    )


def _run_result(
    spec: RunSpec,
    results: tuple[ScenarioResult, ...] = (),
    outcome: str = "ok",
    hardware_class: str | None = "cpu-x86_64-8c",
    ended_unix_s: float = 1_700_000_100.0,
) -> RunResult:
    fp = {"hardware_class": hardware_class} if hardware_class else {}
    return RunResult(
        model=spec.model,
        version=spec.version,
        device=spec.device,
        outcome=outcome,
        results=results or (_scenario_result(device=spec.device),),
        started_unix_s=ended_unix_s - 10,
        ended_unix_s=ended_unix_s,
        fingerprint=fp,
    )


@pytest.fixture
def make_spec() -> Callable[..., RunSpec]:
    return _spec


@pytest.fixture
def make_scenario_result() -> Callable[..., ScenarioResult]:
    return _scenario_result


@pytest.fixture
def make_run_result() -> Callable[..., RunResult]:
    return _run_result
