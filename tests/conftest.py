"""Shared fixtures (model versions written once per session, fast scenario settings) and suite rules.

Rules applied to every test:

- a test that uses a fixture of :data:`SLOW_FIXTURES` (a real MLflow, PostgreSQL or benchd daemon process,
  or real torch models written and run) is marked ``slow``, so ``pytest -m "not slow"`` stays fast;
- a ``gpu`` test skips, with the reason, only on a host with no NVIDIA GPU at all (:mod:`tests.gpu`).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchd.records import ScenarioSettings
from tests.gpu import NO_GPU_REASON, nvidia_gpu_evidence
from tests.mlflow_server import MLflowSeeder, start_mlflow_server

REPO = Path(__file__).resolve().parent.parent

#: Fixtures that start a real server (MLflow, PostgreSQL, a ``benchd run`` process) or write real torch
#: models in subprocesses: each costs seconds, so the tests that use them are ``slow``.
SLOW_FIXTURES = frozenset(
    {
        "mlflow_url",
        "mlflow_db",
        "seeder",
        "pg_server",
        "daemon_factory",
        "fleet_factory",
        "fleet_db",
        "noop_model",
        "zoo",
        "versions",
        "tiny_mlp",
        "fast_and_slow",
    }
)


#: Tests over ~5 s that no slow fixture reveals (they write models or run ``benchd`` end to end themselves).
#: They live in other rooms; a ``@pytest.mark.slow`` in their own file can replace each entry.
SLOW_TESTS = frozenset(
    {
        "tests/test_demo.py::test_demo_tells_its_story_on_a_clean_console_and_logs_the_daemon_to_a_file",
        "tests/test_cli_check.py::test_identical_version_passes",
        "tests/test_cli_check.py::test_slower_version_regresses_with_json_and_junit",
        "tests/test_cli_check.py::test_unknown_version_exits_2_with_a_sentence",
        "tests/test_cli_check.py::test_first_version_passes_as_no_baseline_unless_a_baseline_is_required",
        "tests/test_cli_check.py::test_the_config_can_require_a_baseline",
        "tests/runner/test_worker.py::test_a_hanging_model_times_out_and_is_killed",
        "tests/runner/test_worker.py::test_model_failures_fail_the_run_not_the_caller",
        "tests/test_cli_bench.py::test_evaluate_raises_a_typed_error_when_the_run_fails",
    }
)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test that uses a slow fixture or is listed in :data:`SLOW_TESTS`."""
    for item in items:
        uses_slow_fixture = SLOW_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if uses_slow_fixture or item.nodeid.split("[")[0] in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a ``gpu`` test where there is no NVIDIA GPU at all; anywhere else it runs and must pass."""
    if item.get_closest_marker("gpu") is not None and nvidia_gpu_evidence() is None:
        pytest.skip(NO_GPU_REASON)


def quick(name: str = "single_stream", **kw: object) -> ScenarioSettings:
    """Scenario settings short enough for tests (about half a second each)."""
    base = dict(
        name=name,
        warmup_queries=5,
        warmup_s=0.05,
        min_duration_s=0.3,
        max_duration_s=3.0,
        min_query_count=50,
        target_qps=200.0,
        concurrency=2,
        samples_per_query=4,
    )
    base.update(kw)
    return ScenarioSettings(**base)  # type: ignore[arg-type]


def write_model(folder: Path, kind: str, **kw: object) -> Path:
    """Write a zoo model version in a subprocess (keeps torch out of the test process)."""
    args = [sys.executable, "-m", "benchd.runner.zoo", str(folder), kind]
    for key, value in kw.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    subprocess.run(args, check=True, capture_output=True, timeout=120)
    return folder


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Model version folders: mlp, cnn, transformer (.pt2), mlp_ts (TorchScript), sleep (pickle)."""
    root = tmp_path_factory.mktemp("zoo")
    return {
        "mlp": write_model(root / "mlp", "mlp"),
        "cnn": write_model(root / "cnn", "cnn"),
        "transformer": write_model(root / "transformer", "transformer"),
        "mlp_ts": write_model(root / "mlp_ts", "mlp", format="torchscript"),
        "mlp_pickle": write_model(root / "mlp_pickle", "mlp", format="pickle"),
        "sleep": write_model(root / "sleep", "sleep", sleep_s=0.002),
    }


@pytest.fixture(scope="session")
def mlflow_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture(scope="session")
def mlflow_url(mlflow_data_dir: Path) -> Iterator[str]:
    """A real MLflow 3.x tracking server on 127.0.0.1 (fails, never skips, when it cannot start)."""
    base_url, stop = start_mlflow_server(mlflow_data_dir)
    try:
        yield base_url
    finally:
        stop()


@pytest.fixture(scope="session")
def mlflow_db(mlflow_url: str, mlflow_data_dir: Path) -> Path:
    """The SQLite backend file of the session's MLflow server."""
    return mlflow_data_dir / "mlflow.db"


@pytest.fixture
def seeder(mlflow_url: str) -> MLflowSeeder:
    return MLflowSeeder(mlflow_url)
