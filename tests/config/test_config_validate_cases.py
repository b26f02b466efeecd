"""`benchd config validate` refuses what `benchd run` would crash on (or misbehave with) later.

Each case was run against the config code of main (4a4dd9e): `config validate` said "valid" for every one,
and `benchd run` then crashed on the first five (traceback at start, at the first poll or at stop). These
tests only use the command line, so they run unchanged against either version.
"""

from __future__ import annotations

import pytest

from benchd.cli import main

CASES = [
    # (id, YAML, the field path the error must name)
    (
        "cron_out_of_range",
        "champion_cron: '99 99 * * *'\n",
        "champion_cron",
    ),  # APScheduler ValueError at start
    ("cron_never_fires", "champion_cron: '0 0 31 2 *'\n", "champion_cron"),  # a job that never runs
    (
        "poll_interval_huge",  # OverflowError: date value out of range, at start
        "registries:\n  - {type: local, root: /tmp/x, poll_interval: 1e12}\n",
        "registries[0].poll_interval",
    ),
    (
        "poll_interval_tiny",  # a poll every nanosecond: one core spent polling
        "registries:\n  - {type: local, root: /tmp/x, poll_interval: 1ns}\n",
        "registries[0].poll_interval",
    ),
    (
        "fake_devices_not_a_mapping",
        "devices: {mode: fake, fake: abc}\n",
        "devices.fake",
    ),  # ValueError at start
    (
        "fake_devices_bad_reason",
        "devices: {mode: fake, fake: {throttle_reasons: [hot]}}\n",
        "devices.fake.throttle_reasons[0]",
    ),
    ("negative_latency_bucket", "export: {latency_buckets: [-1ms, 1ms]}\n", "export.latency_buckets[0]"),
    ("shutdown_grace_huge", "shutdown_grace: 1e12\n", "shutdown_grace"),  # OverflowError in join at stop
    (
        "mlflow_timeout_huge",  # OverflowError in every poll
        "registries:\n  - {type: mlflow, tracking_uri: 'http://127.0.0.1:9', timeout: 1e12}\n",
        "registries[0].timeout",
    ),
    ("http_host_not_a_host", "http: {host: 'no such host!'}\n", "http.host"),  # socket.gaierror at start
    ("verdict_threshold_one", "verdict: {threshold: 1.0}\n", "verdict.threshold"),  # every verdict ValueError
    (
        "per_metric_threshold_one",
        "verdict: {thresholds: {p99_latency: 1.0}}\n",
        "verdict.thresholds.p99_latency",
    ),
    ("trial_longer_than_time_cap", "verdict: {trial: 10m, time_cap: 1m}\n", "verdict.trial"),  # zero pairs
    ("run_timeout_huge", "benchmark: {timeout: 1e12}\n", "benchmark.timeout"),  # beyond threading.TIMEOUT_MAX
    (
        "registry_name_escapes_the_cache",  # <data_dir>/cache/<name> must stay inside data_dir
        "registries:\n  - {type: mlflow, name: ../../etc, tracking_uri: 'http://127.0.0.1:9'}\n",
        "registries[0].name",
    ),
    (
        "store_url_option_not_a_number",  # psycopg pool options are parsed at start
        "store: {url: 'postgresql://benchd@127.0.0.1/benchd?lease_s=soon'}\n",
        "store.url",
    ),
    ("require_gpu_without_devices", "devices: {mode: none, require_gpu: true}\n", "devices.require_gpu"),
    (
        "mlflow_port_out_of_range",
        "registries:\n  - {type: mlflow, tracking_uri: 'http://mlflow:99999'}\n",
        "registries[0].tracking_uri",
    ),
]


# Bounds of the fields that wired the daemon's parts to the config: each value below is one the part
# refuses at start (ValueError), overflows on (OverflowError: timestamp out of range, in a socket timeout or
# an Event.wait), or turns into a busy loop or a check that can never find anything.
CASES += [
    ("memory_limit_tiny", "workers: {memory_limit: 1MiB}\n", "workers.memory_limit"),  # WorkerLimits refuses
    ("log_cap_tiny", "workers: {log_cap: 1KiB}\n", "workers.log_cap"),  # WorkerLimits refuses
    ("event_line_tiny", "workers: {max_event_line: 100}\n", "workers.max_event_line"),  # WorkerLimits
    ("kill_grace_negative", "workers: {kill_grace: -1s}\n", "workers.kill_grace"),
    ("kill_grace_huge", "workers: {kill_grace: 1e12}\n", "workers.kill_grace"),  # OverflowError at a kill
    ("idle_timeout_huge", "http: {idle_timeout: 1e12}\n", "http.idle_timeout"),  # settimeout OverflowError
    ("header_timeout_zero", "http: {header_timeout: 0s}\n", "http.header_timeout"),  # HTTPService refuses
    ("http_workers_zero", "http: {workers: 0}\n", "http.workers"),  # HTTPService refuses
    ("http_max_queued_zero", "http: {max_queued: 0}\n", "http.max_queued"),  # HTTPService refuses
    ("http_max_connections_zero", "http: {max_connections: 0}\n", "http.max_connections"),
    ("record_retry_negative", "store: {record_retry: -1s}\n", "store.record_retry"),
    ("record_retry_delay_zero", "store: {record_retry_max_delay: 0s}\n", "store.record_retry_max_delay"),
    ("record_retry_delay_huge", "store: {record_retry_max_delay: 1e12}\n", "store.record_retry_max_delay"),
    ("stuck_grace_zero", "runs: {stuck_grace: 0s}\n", "runs.stuck_grace"),  # fails runs at their timeout
    ("stuck_check_busy", "runs: {stuck_check_interval: 0s}\n", "runs.stuck_check_interval"),  # busy loop
    ("stuck_check_huge", "runs: {stuck_check_interval: 1e12}\n", "runs.stuck_check_interval"),  # Overflow
    ("telemetry_retention_zero", "devices: {telemetry_retention: 0s}\n", "devices.telemetry_retention"),
    (
        "mlflow_max_pages_zero",  # every search would give up before its first page
        "registries:\n  - {type: mlflow, tracking_uri: 'http://127.0.0.1:9', max_pages: 0}\n",
        "registries[0].max_pages",
    ),
    (
        "mlflow_listing_depth_zero",
        "registries:\n  - {type: mlflow, tracking_uri: 'http://127.0.0.1:9', max_listing_depth: 0}\n",
        "registries[0].max_listing_depth",
    ),
    ("change_point_runs_too_few", "export: {change_point_runs: 5}\n", "export.change_point_runs"),  # none
    (
        "change_point_magnitude_one",
        "export: {change_point_min_magnitude: 1}\n",
        "export.change_point_min_magnitude",
    ),
]


@pytest.mark.parametrize(("text", "path"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_validate_refuses_what_run_cannot_use(tmp_path, capsys, text, path):
    config = tmp_path / "benchd.yaml"
    config.write_text(text)
    status = main(["config", "validate", str(config)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert f"{config}: {path}: " in err
