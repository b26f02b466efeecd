import pytest

from benchd.config import (
    bench_config_from,
    embedded_default_text,
    load_bench_config,
    load_daemon_config,
    read_daemon_config,
)
from benchd.config_fields import parse_duration_s
from benchd.errors import ConfigError
from tests.conftest import REPO


def test_embedded_default_is_configs_default_and_valid():
    assert embedded_default_text() == (REPO / "configs" / "default.yaml").read_text()
    config = load_daemon_config(None)
    assert config.http_port == 9777 and config.http_host == "127.0.0.1"
    assert [r.type for r in config.registries] == ["local"]
    assert config.store_url.startswith("sqlite:///") and config.store_url.endswith("benchd.sqlite")


def test_example_config_is_valid_and_complete():
    config = load_daemon_config(REPO / "configs" / "example.yaml")
    assert {r.type for r in config.registries} == {"local", "mlflow"}
    assert [s.name for s in config.benchmark.scenarios] == [
        "single_stream",
        "multi_stream",
        "server",
        "offline",
        "concurrency",
    ]
    server = config.benchmark.scenarios[2]
    assert server.latency_bound_s == pytest.approx(0.020) and server.target_qps == 200
    assert config.champion_cron == "0 3 * * *"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "benchmark:\n  scenarios:\n    server: {target_qps: 0}\n",
            "benchmark.scenarios.server.target_qps: must be > 0",
        ),
        ("benchmark:\n  scenarios: [warp_speed]\n", "benchmark.scenarios.warp_speed: unknown scenario"),
        ("benchmark:\n  batch_sizes: [1, zero]\n", "benchmark.batch_sizes[1]: expected an integer >= 1"),
        ("benchmark:\n  device: tpu\n", "benchmark.device: must be auto, cpu, cuda or cuda:N"),
        (
            "benchmark:\n  defaults: {min_duration: 10s, max_duration: 5s}\n",
            "max_duration: must be >= min_duration",
        ),
        ("http: {port: 70000}\n", "http.port: must be <= 65535"),
        ("registries:\n  - {type: s3}\n", "registries[0].type: must be one of local, mlflow"),
        (
            "registries:\n  - {type: mlflow, tracking_uri: ftp://x}\n",
            "registries[0].tracking_uri: must be an http(s) URL",
        ),
        ("registries:\n  - {type: local}\n  - {type: local}\n", "registry names must be unique"),
        ("verdict: {threshold: 0}\n", "verdict.threshold: must be > 0"),
        ("verdict: {min_pairs: 8, max_pairs: 4}\n", "verdict.max_pairs: must be >= min_pairs"),
        ("devices: {mode: cuda}\n", "devices.mode: must be one of auto, nvml, fake, none"),
        ("http: {prot: 1}\n", "http.prot: unknown field (did you mean 'port'?)"),
        ("store: {url: 'mysql://x'}\n", "store.url: only sqlite:///PATH"),
        ("export: {latency_buckets: [1ms, 1ms]}\n", "strictly increasing"),
        ("benchmark: [1, 2]\n", "benchmark: expected a mapping"),
    ],
)
def test_bad_fields_are_reported_with_their_path(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_daemon_config(path)
    assert fragment in str(e.value)
    assert str(path) in str(e.value)


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_daemon_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("http: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_daemon_config(bad)


def test_bench_config_from_dict_yaml_and_object(tmp_path):
    cfg = bench_config_from(
        {
            "scenarios": {"server": {"target_qps": 50, "latency_bound": "5ms"}},
            "batch_sizes": "1,8",
            "defaults": {"min_duration": "2s"},
        }
    )
    (server,) = cfg.scenarios
    assert server.target_qps == 50 and server.latency_bound_s == pytest.approx(0.005)
    assert server.min_duration_s == 2.0 and cfg.batch_sizes == (1, 8)
    path = tmp_path / "b.yaml"
    path.write_text("scenarios: [offline]\ndevice: cpu\n")
    assert load_bench_config(path).scenarios[0].name == "offline"
    assert bench_config_from(cfg) is cfg
    with pytest.raises(ConfigError):
        bench_config_from(42)


@pytest.mark.parametrize(
    ("value", "seconds"), [("10s", 10), ("500ms", 0.5), ("2m", 120), (3, 3), ("100us", 1e-4)]
)
def test_durations(value, seconds):
    assert parse_duration_s(value) == pytest.approx(seconds)


def test_data_dir_expands_into_registry_and_store(tmp_path):
    config = read_daemon_config({"data_dir": str(tmp_path), "registries": [{"type": "local"}]}, "<t>")
    assert config.registries[0].options["root"] == f"{tmp_path}/models"
    assert config.store_path == f"{tmp_path}/benchd.sqlite"
