"""One declaration per field: the defaults the code uses are what an empty config gives, and the lists the
config declares for other rooms (throttle reasons, metrics, store URL options) are theirs."""

from __future__ import annotations

import dataclasses
import inspect
import typing

from benchd.compare.run import plan_comparison
from benchd.config import (
    BenchConfig,
    DaemonConfig,
    DevicesConfig,
    ExportConfig,
    FakeGPUConfig,
    HttpConfig,
    ScenarioConfig,
    StoreConfig,
    VerdictConfig,
    load_daemon_config,
    read_daemon_config,
)
from benchd.config.daemon import STORE_URL_OPTIONS, MetricName
from benchd.config.fake_devices import FailKind, ThrottleReason
from benchd.records import ScenarioSettings


def test_code_defaults_are_what_an_empty_config_gives():
    empty = read_daemon_config({}, "<empty>")
    assert empty.verdict == VerdictConfig()
    assert empty.benchmark == BenchConfig()
    assert empty.http == HttpConfig() and empty.devices == DevicesConfig() and empty.export == ExportConfig()
    assert empty.store == StoreConfig(url=f"sqlite:///{empty.data_dir}/benchd.sqlite")
    assert empty.model_dump() == DaemonConfig().model_dump()
    assert empty.registries == () and empty.champion_cron is None


def test_the_embedded_default_differs_from_an_empty_config_only_in_its_registry():
    embedded, empty = load_daemon_config(None).model_dump(), read_daemon_config({}).model_dump()
    assert [r["type"] for r in embedded.pop("registries")] == ["local"]
    empty.pop("registries")
    assert embedded == empty


def test_scenario_settings_record_defaults_are_the_declared_ones():
    assert BenchConfig().scenarios == (ScenarioSettings(),)
    record_fields = {f.name for f in dataclasses.fields(ScenarioSettings)} - {"name"}
    assert set(ScenarioConfig.model_fields) == record_fields


def test_comparison_plans_take_every_setting_from_the_verdict_config():
    verdict = VerdictConfig()
    plan = plan_comparison(
        BenchConfig(), verdict, model="m", candidate_version="2", candidate_path="/c",
        baseline_version="1", baseline_path="/b", device="cpu",
    )  # fmt: skip
    assert (
        plan.trial_s, plan.trial_queries, plan.min_pairs, plan.max_pairs, plan.pairs_per_unit,
        plan.time_cap_s, plan.threshold,
    ) == (
        verdict.trial_s, verdict.trial_queries, verdict.min_pairs, verdict.max_pairs,
        verdict.pairs_per_process, verdict.time_cap_s, verdict.threshold,
    )  # fmt: skip


def test_fake_device_constructor_defaults_are_the_declared_ones():
    from benchd.devices.fake import FakeDevice

    params = inspect.signature(FakeDevice).parameters
    declared = FakeGPUConfig()
    renamed = {"energy_counter": "supports_energy_counter"}
    compared = 0
    for name in FakeGPUConfig.model_fields:
        value = getattr(declared, name)
        if name == "throttle_reasons":
            assert value == ()  # no constructor argument: reasons become a throttle span
            continue
        param = params[renamed.get(name, name)]
        if name == "power_w":
            value = value[0].w
        elif name == "fail_on":
            assert value == {} and param.default is None
            continue
        elif isinstance(value, tuple):
            assert value == () and tuple(param.default) == ()
            continue
        assert param.default == value, name
        compared += 1
    assert compared == 15


def test_lists_the_config_declares_for_other_rooms_are_theirs():
    from benchd.analysis.metrics import METRICS
    from benchd.devices.base import THROTTLE_REASONS
    from benchd.devices.fake import _FAIL_KINDS
    from benchd.history.postgres import URL_OPTIONS

    assert typing.get_args(ThrottleReason) == THROTTLE_REASONS
    assert set(typing.get_args(FailKind)) == set(_FAIL_KINDS)
    assert typing.get_args(MetricName) == METRICS
    assert set(STORE_URL_OPTIONS) == set(URL_OPTIONS)
    assert {k: v[0] for k, v in STORE_URL_OPTIONS.items()} == dict(URL_OPTIONS)


def test_every_field_has_a_doc():
    from benchd.config.reference import field_docs

    rows = field_docs()
    assert len(rows) > 80
    assert [r.path for r in rows if not r.doc] == []


def test_part_constructor_defaults_are_the_declared_ones():
    """A part built alone (a test, a bench script, benchd bench) behaves as the daemon does by default."""
    from benchd.config import MLflowRegistryConfig, WorkersConfig
    from benchd.devices.meter import DEFAULT_RETAIN_S, retention_s
    from benchd.metrics.server import HTTPService
    from benchd.registry.mlflow import MLflowWatcher
    from benchd.runner.sandbox import WorkerLimits
    from benchd.service.recording import RetryPolicy
    from benchd.service.snapshots import SnapshotBuilder

    assert WorkerLimits() == WorkerLimits.from_config(WorkersConfig())
    store = StoreConfig()
    assert RetryPolicy() == RetryPolicy(
        result_window_s=store.record_retry_s, max_delay_s=store.record_retry_max_delay_s
    )
    http, limits = HttpConfig(), HTTPService("127.0.0.1", 0).limits
    assert (
        limits.max_body_bytes, limits.max_connections, limits.header_timeout_s, limits.idle_timeout_s,
        limits.workers, limits.priority_workers, limits.max_queued,
    ) == (
        http.max_body_bytes, http.max_connections, http.header_timeout_s, http.idle_timeout_s,
        http.workers, http.probe_workers, http.max_queued,
    )  # fmt: skip
    mlflow = inspect.signature(MLflowWatcher).parameters
    declared = MLflowRegistryConfig.model_fields
    for name in ("max_pages", "max_listing_depth", "max_artifact_files", "max_artifact_bytes", "timeout_s"):
        assert mlflow[name].default == declared[name].default, name
    snapshots, export = inspect.signature(SnapshotBuilder).parameters, ExportConfig()
    for name in ("latest_versions", "change_point_runs", "change_point_min_magnitude"):
        assert snapshots[name].default == getattr(export, name), name
    assert retention_s(BenchConfig().timeout_s) == DEFAULT_RETAIN_S
