"""Every knob of the daemon's parts comes from the config: a value set in the YAML reaches the part that
uses it. The app is built (store, fake devices, watchers, HTTP server object) but never started."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from benchd.config import DaemonConfig
from benchd.devices.meter import retention_s
from benchd.runner.sandbox import WorkerLimits
from benchd.service.app import BenchdApp
from benchd.service.recording import RetryPolicy
from tests.service.parts import Registry

WIRED = {
    "http": {"host": "127.0.0.1", "port": 0, "max_connections": 7, "header_timeout": "2s",
             "idle_timeout": "45s", "workers": 3, "probe_workers": 1, "max_queued": 5},
    "store": {"record_retry": "7s", "record_retry_max_delay": "250ms"},
    "workers": {"memory_limit": "3GiB", "kill_grace": "1.5s", "log_cap": "64KiB", "max_event_line": "4KiB"},
    "runs": {"stuck_grace": "20m", "stuck_check_interval": "90s"},
    "devices": {"mode": "fake", "fake": {"count": 2, "power_w": 200}, "telemetry_retention": "2h"},
    "export": {"latest_versions": 4, "change_point_runs": 50, "change_point_min_magnitude": 0.05},
}  # fmt: skip


def _build(make_config: Callable[..., DaemonConfig], registry: Registry, **overrides: object) -> BenchdApp:
    mlflow = {"type": "mlflow", "name": "prod", "tracking_uri": "http://127.0.0.1:9", "max_pages": 11,
              "max_listing_depth": 3, "max_artifact_files": 99}  # fmt: skip
    local = {"name": "local", "type": "local", "root": str(registry.root), "settle": "0s"}
    return BenchdApp(make_config(registries=[local, mlflow], **overrides))


@pytest.fixture
def app(make_config: Callable[..., DaemonConfig], registry: Registry):
    built = _build(make_config, registry, **WIRED)
    yield built
    built.close()


def test_http_bounds_come_from_the_config(app: BenchdApp) -> None:
    limits = app.http.limits
    assert (limits.max_connections, limits.header_timeout_s) == (7, 2.0)
    assert (limits.idle_timeout_s, limits.write_timeout_s) == (45.0, 45.0)
    assert (limits.workers, limits.priority_workers, limits.max_queued) == (3, 1, 5)


def test_workers_retries_and_the_stuck_run_check_come_from_the_config(app: BenchdApp) -> None:
    limits = WorkerLimits(
        memory_limit_bytes=3 << 30, grace_s=1.5, log_cap_bytes=64 << 10, max_event_bytes=4096
    )
    assert len(app.workers) == 2  # one slot per fake GPU: each gets the same limits
    assert {w.limits for w in app.workers} == {limits}
    assert app.verdicts.limits == limits  # comparison and calibration workers too
    assert {w.retry for w in app.workers} == {RetryPolicy(result_window_s=7.0, max_delay_s=0.25)}
    assert (app.stuck_grace_s, app.stuck_check.interval_s) == (1200.0, 90.0)


def test_telemetry_export_and_registry_bounds_come_from_the_config(app: BenchdApp) -> None:
    assert app.sampler.retain_s == 7200.0
    snapshots = app.snapshots
    assert (snapshots.latest_versions, snapshots.change_point_runs, snapshots.change_point_min_magnitude) == (
        4, 50, 0.05,
    )  # fmt: skip
    prod = app.watchers["prod"]
    assert (prod.max_pages, prod.max_listing_depth, prod.max_artifact_files) == (11, 3, 99)


def test_telemetry_kept_by_default_covers_the_longest_run(
    make_config: Callable[..., DaemonConfig], registry: Registry
) -> None:
    app = _build(make_config, registry, benchmark={"timeout": "2h"})
    try:
        assert app.sampler.retain_s == retention_s(7200.0) == 7260.0  # the run's timeout plus a minute
    finally:
        app.close()
