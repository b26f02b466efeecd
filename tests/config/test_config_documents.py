"""What comes out of the declaration: `config show` (a byte-for-byte round trip), the JSON Schema shipped
for editors, the README table, and the friendly units they print."""

from __future__ import annotations

import json
import random
import re

import jsonschema
import pytest
import yaml

from benchd.cli import main
from benchd.config import parse_duration_s
from benchd.config.reference import json_schema_text, markdown_table
from benchd.config.units import format_bytes, format_duration, parse_bytes
from tests.conftest import REPO

SCHEMA_FILE = REPO / "configs" / "benchd.schema.json"
EVERYTHING = """
data_dir: /srv/benchd
http: {host: 0.0.0.0, port: 9100, max_body_bytes: 4MiB, max_connections: 100, header_timeout: 2s,
       idle_timeout: 1m, workers: 4, probe_workers: 1, max_queued: 16}
store: {url: "postgresql://benchd@db/benchd?lease_s=30&pool_max=4", record_retry: 0s,
        record_retry_max_delay: 250ms}
workers: {memory_limit: 3GiB, kill_grace: 0.5s, log_cap: 64KiB, max_event_line: 4KiB}
runs: {stuck_grace: 1h, stuck_check_interval: 5m}
devices:
  mode: fake
  telemetry_retention: 2h
  fake: {count: 2, power_w: [[0, 100], [1.5, 300]], throttle_reasons: [power_cap],
         devices: [{name: NVIDIA H200, driver_version: 570.86}], fail_on: sm_clock_hz}
registries:
  - {type: local, name: drop, root: /srv/models, settle: 250ms, poll_interval: 2m}
  - {type: mlflow, tracking_uri: "https://mlflow.example:5000/", models: [a, b], timeout: 1500ms,
     max_artifact_bytes: 1000, auth: {bearer_token_env: TOKEN}, webhook_secret_env: HOOK,
     max_pages: 50, max_listing_depth: 4, max_artifact_files: 200}
benchmark:
  batch_sizes: 1,8
  threads: 2
  timeout: 1h
  defaults: {warmup: 0.25, min_duration: 90s, max_duration: 1.5m, latency_bound: 100us}
  scenarios: {server: {target_qps: 12.5, latency_bound: 20ms}, offline: {}}
verdict: {threshold: 0.2, min_effect: 0.05, thresholds: {throughput: 0.15}, trial: 1.25s, time_cap: 10m,
          require_baseline: true}
export: {latest_versions: 5, latency_buckets: [1ms, 2.5ms, 1s], change_point_runs: 50,
         change_point_min_magnitude: 0.05}
champion_cron: "30 4 * * 1"
shutdown_grace: 0s
"""


def _show(capsys, *args: str) -> str:
    assert main(["config", "show", *args]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("name", ["embedded", "example", "deploy", "everything"])
def test_show_validate_show_is_a_byte_for_byte_round_trip(tmp_path, capsys, name):
    source = {
        "embedded": None,
        "example": REPO / "configs" / "example.yaml",
        "deploy": REPO / "deploy" / "benchd.yaml",
        "everything": tmp_path / "everything.yaml",
    }[name]
    if name == "everything":
        source.write_text(EVERYTHING)
    first = _show(capsys, *([] if source is None else ["--config", str(source)]))
    shown = tmp_path / "shown.yaml"
    shown.write_text(first)
    assert main(["config", "validate", str(shown)]) == 0
    assert capsys.readouterr().out.startswith(f"{shown}: valid")
    assert _show(capsys, "--config", str(shown)) == first
    assert re.search(r"^  trial: \d", first, re.M)  # user-facing names and units, not trial_s: 2.0
    internal = (
        "poll_interval_s",
        "settle_s",
        "timeout_s",
        "trial_s",
        "time_cap_s",
        "warmup_s",
        "grace_s",
        "http_",
        "retry_s",
        "_delay_s",
        "retention_s",
        "interval_s",
        "memory_limit_bytes",
        "log_cap_bytes",
        "line_bytes",
    )
    assert not [name for name in internal if name in first]


def test_show_prints_the_names_and_units_the_docs_use(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text(EVERYTHING)
    shown = yaml.safe_load(_show(capsys, "--config", str(path)))
    assert shown["registries"][0]["poll_interval"] == "2m" and shown["registries"][0]["settle"] == "250ms"
    assert shown["registries"][1]["timeout"] == "1.5s" and shown["http"]["max_body_bytes"] == "4MiB"
    assert shown["benchmark"]["defaults"]["warmup"] == "250ms"
    assert shown["benchmark"]["defaults"]["max_duration"] == "90s"
    assert shown["benchmark"]["scenarios"] == {
        "server": {"target_qps": 12.5, "latency_bound": "20ms"},
        "offline": {},
    }
    assert shown["devices"]["fake"]["power_w"] == [{"from_s": 0.0, "w": 100.0}, {"from_s": 1.5, "w": 300.0}]
    assert shown["devices"]["fake"]["devices"] == [{"name": "NVIDIA H200", "driver_version": "570.86"}]
    assert shown["export"]["latency_buckets"] == ["1ms", "2.5ms", "1s"]
    assert shown["shutdown_grace"] == "0s"
    assert shown["workers"] == {"memory_limit": "3GiB", "kill_grace": "500ms", "log_cap": "64KiB",
                                "max_event_line": "4KiB"}  # fmt: skip
    assert shown["runs"] == {"stuck_grace": "1h", "stuck_check_interval": "5m"}
    assert (shown["store"]["record_retry"], shown["store"]["record_retry_max_delay"]) == ("0s", "250ms")
    assert (shown["http"]["header_timeout"], shown["http"]["idle_timeout"]) == ("2s", "1m")
    assert shown["devices"]["telemetry_retention"] == "2h"


def test_the_default_memory_limit_is_three_quarters_of_this_hosts_ram_and_null_lifts_it(tmp_path, capsys):
    from benchd.config.workers import host_memory_bytes

    shown = yaml.safe_load(_show(capsys))
    assert parse_bytes(shown["workers"]["memory_limit"]) == host_memory_bytes() * 3 // 4
    path = tmp_path / "c.yaml"
    path.write_text("workers: {memory_limit: null}\n")
    first = _show(capsys, "--config", str(path))
    assert yaml.safe_load(first)["workers"]["memory_limit"] is None
    path.write_text(first)
    assert _show(capsys, "--config", str(path)) == first  # null stays null: no limit, not the default


def test_validate_prints_every_problem_on_its_own_line_and_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("http: {port: -1, hots: x}\nverdict: {trial: 0s}\n")
    good = tmp_path / "good.yaml"
    good.write_text("http: {port: 9000}\n")
    assert main(["config", "validate", str(good), str(path)]) == 2
    out = capsys.readouterr()
    assert out.out.startswith(f"{good}: valid")
    lines = [line.strip() for line in out.err.splitlines()]
    assert lines[1:] == [
        f"{path}: http.port: must be >= 0, got -1",
        f"{path}: http.hots: unknown field (did you mean 'host'?); known fields: api_token_env, "
        "header_timeout, host, idle_timeout, max_body_bytes, max_connections, max_queued, port, "
        "probe_workers, workers",
        f"{path}: verdict.trial: must be > 0s, got 0s",
    ]


def test_run_refuses_a_bad_config_the_same_way(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("registries:\n  - {type: local, poll_interval: -1s, setle: 1s}\n")
    assert main(["run", "--config", str(path), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: registries[0].poll_interval: must be > 0s, got -1s" in err
    assert f"{path}: registries[0].setle: unknown field (did you mean 'settle'?)" in err
    assert main(["run", "--port", "70000"]) == 2
    assert "http.port: must be <= 65535, got 70000" in capsys.readouterr().err


def test_committed_schema_is_the_generated_one():
    assert SCHEMA_FILE.read_text() == json_schema_text(), (
        "configs/benchd.schema.json is stale: run `benchd config schema > configs/benchd.schema.json`"
    )


def test_config_files_validate_against_the_schema_and_carry_its_modeline():
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    files = sorted((REPO / "configs").glob("*.yaml"))
    assert len(files) >= 2
    for path in files:
        text = path.read_text()
        assert text.startswith("# yaml-language-server: $schema=./benchd.schema.json\n"), path
        assert list(validator.iter_errors(yaml.safe_load(text))) == [], path
    assert list(validator.iter_errors(yaml.safe_load(EVERYTHING))) == []


@pytest.mark.parametrize(
    "doc",
    [
        {"http": {"prot": 1}},
        {"registries": [{"type": "s3"}]},
        {"registries": [{"type": "local", "poll_interval": "10 parsecs"}]},
        {"benchmark": {"scenarios": {"warp_speed": {}}}},
        {"verdict": {"mode": "vibes"}},
    ],
)
def test_the_schema_refuses_what_validate_refuses(tmp_path, capsys, doc):
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
    assert list(validator.iter_errors(doc))
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(doc))
    assert main(["config", "validate", str(path)]) == 2


def test_readme_configuration_table_is_the_generated_one(capsys):
    readme = (REPO / "README.md").read_text()
    found = re.search(
        r"<!-- BEGIN config-reference[^\n]*-->\n(.*?)<!-- END config-reference -->", readme, re.S
    )
    assert found, "README lacks the generated configuration table"
    assert found.group(1) == markdown_table(), (
        "README table is stale: paste `benchd config reference` into it"
    )
    assert main(["config", "reference"]) == 0
    assert capsys.readouterr().out == markdown_table()
    rows = [line for line in markdown_table().splitlines()[2:]]
    assert "| `verdict.max_pairs` | `40` |" in "\n".join(rows)
    assert "| `registries[].poll_interval` | `10s` (local), `30s` (mlflow) | duration |" in "\n".join(rows)
    assert "| `workers.memory_limit` | 75% of host RAM | bytes |" in "\n".join(rows)  # not this host's figure


def test_durations_print_back_to_the_same_seconds():
    rng = random.Random(7)
    values = [0.0, 1e-9, 2.5e-7, 1e-4, 0.001, 0.25, 1.0, 1.5, 59.0, 60.0, 90.0, 3600.0, 5400.0, 86400.0]
    values += [rng.uniform(0, 10) for _ in range(200)] + [rng.uniform(0, 1e5) for _ in range(200)]
    for seconds in values:
        text = format_duration(seconds)
        assert parse_duration_s(text) == seconds, text
    shown = [format_duration(s) for s in (0.0, 1e-4, 0.02, 1.5, 90.0, 120.0, 5400.0, 7200.0)]
    assert shown == ["0s", "100us", "20ms", "1.5s", "90s", "2m", "90m", "2h"]


def test_sizes_print_back_to_the_same_bytes():
    for size in (0, 1, 1000, 1024, 1536, 1 << 20, 2 << 30, (2 << 30) + 1, 5 << 40):
        shown = format_bytes(size)
        assert parse_bytes(shown) == size, shown
    assert [format_bytes(s) for s in (1024, 2 << 30, 1000)] == ["1KiB", "2GiB", 1000]
    assert parse_bytes("10MB") == 10_000_000 and parse_bytes("1.5KiB") == 1536
    with pytest.raises(ValueError, match="whole number of bytes"):
        parse_bytes("0.5B")
