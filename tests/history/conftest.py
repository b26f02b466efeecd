"""Fixtures for the history store tests: a fresh store per backend, a settable clock, record builders.

Every test that takes ``store``, ``store_url`` or ``open_test_store`` runs twice: on SQLite (a file in
``tmp_path``) and on PostgreSQL (a fresh database in a throwaway cluster on 127.0.0.1, started once per
session; the tests fail, never skip, when it cannot start).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from tests.pg_server import PGServer, running_pg_server

from benchd.history import SQLHistoryStore, open_store
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


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PGServer]:
    """A PostgreSQL cluster for the whole session."""
    with running_pg_server() as server:
        yield server


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "benchd.sqlite"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def backend(request: pytest.FixtureRequest) -> str:
    """The store backend; PostgreSQL starts a real server, so its tests are ``slow``."""
    return request.param


@pytest.fixture
def store_url(backend: str, db_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of an empty store: a SQLite file, or a fresh PostgreSQL database (dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{db_path}"
        return
    server: PGServer = request.getfixturevalue("pg_server")
    url = server.create_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def open_test_store(store_url: str, clock: FakeClock) -> Iterator[Callable[..., SQLHistoryStore]]:
    """Open (another) store object on the test's database; all are closed at the end."""
    opened: list[SQLHistoryStore] = []

    def make(**options: Any) -> SQLHistoryStore:
        options.setdefault("clock", clock)
        options.setdefault("host", None)
        s = open_store(store_url, **options)
        opened.append(s)
        return s

    yield make
    for s in opened:
        s.close()


@pytest.fixture
def store(open_test_store: Callable[..., SQLHistoryStore]) -> SQLHistoryStore:
    return open_test_store()


def raw_rows(store: SQLHistoryStore, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    """Run a read-only query (``?`` placeholders) on the store's own database; return its rows."""
    with store._db.read() as conn:
        return [tuple(r) for r in conn.execute(sql, tuple(args)).fetchall()]


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
