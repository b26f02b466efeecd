import pytest

from benchd.config import (
    ConfigError,
    InvalidConfigError,
    LocalRegistryConfig,
    bench_config_from,
    embedded_default_text,
    load_bench_config,
    load_daemon_config,
    parse_duration_s,
    read_daemon_config,
)
from tests.conftest import REPO


def test_embedded_default_is_configs_default_and_valid():
    assert embedded_default_text() == (REPO / "configs" / "default.yaml").read_text()
    config = load_daemon_config(None)
    assert config.http.port == 9777 and config.http.host == "127.0.0.1"
    assert [r.type for r in config.registries] == ["local"]
    assert config.store.url.startswith("sqlite:///") and config.store.url.endswith("benchd.sqlite")
    assert config.source == "<embedded default>"


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
    assert server.min_duration_s == 10.0  # from benchmark.defaults
    assert config.champion_cron == "0 3 * * *"
    mlflow = config.registries[1]
    assert mlflow.max_artifact_bytes == 2 << 30 and mlflow.auth.bearer_token_env == "MLFLOW_TRACKING_TOKEN"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (
            "benchmark:\n  scenarios:\n    server: {target_qps: 0}\n",
            "benchmark.scenarios.server.target_qps: must be > 0",
        ),
        ("benchmark:\n  scenarios: [warp_speed]\n", "benchmark.scenarios.warp_speed: unknown key"),
        ("benchmark:\n  batch_sizes: [1, zero]\n", "benchmark.batch_sizes[1]: expected an integer"),
        ("benchmark:\n  device: tpu\n", "benchmark.device: must be auto, cpu, cuda or cuda:N"),
        (
            "benchmark:\n  defaults: {min_duration: 10s, max_duration: 5s}\n",
            "benchmark.defaults.max_duration: must be >= min_duration (10s)",
        ),
        (
            "benchmark:\n  scenarios: {server: {min_duration: 2m}}\n",
            "benchmark.scenarios.server.max_duration: must be >= min_duration (2m)",
        ),
        ("http: {port: 70000}\n", "http.port: must be <= 65535"),
        ("registries:\n  - {type: s3}\n", "registries[0].type: must be one of local, mlflow"),
        ("registries:\n  - {root: /x}\n", "registries[0].type: is required: one of local, mlflow"),
        (
            "registries:\n  - {type: mlflow, tracking_uri: ftp://x}\n",
            "registries[0].tracking_uri: must be an http(s) URL",
        ),
        ("registries:\n  - {type: mlflow}\n", "registries[0].tracking_uri: is required"),
        ("registries:\n  - {type: local}\n  - {type: local}\n", "registry names must be unique"),
        ("registries:\n  - {type: local, poll_interval: -1s}\n", "registries[0].poll_interval: must be > 0"),
        ("verdict: {threshold: 0}\n", "verdict.threshold: must be > 0"),
        ("verdict: {min_pairs: 8, max_pairs: 4}\n", "verdict.max_pairs: must be >= min_pairs (8)"),
        ("verdict: {threshold: 0.1, min_effect: 0.2}\n", "verdict.min_effect: must be < threshold (0.1)"),
        ("devices: {mode: cuda}\n", "devices.mode: must be one of auto, nvml, fake, none"),
        ("http: {prot: 1}\n", "http.prot: unknown field (did you mean 'port'?)"),
        ("store: {url: 'mysql://x'}\n", "store.url: only sqlite:///PATH"),
        ("export: {latency_buckets: [1ms, 1ms]}\n", "strictly increasing"),
        ("benchmark: [1, 2]\n", "benchmark: expected a mapping"),
        ("benchmark: {amp: 'yes'}\n", "benchmark.amp: expected true or false, got 'yes'"),
        (
            "benchmark: {threads: many}\n",
            "benchmark.threads: must be a thread count from 1 to 1024, auto or none; got 'many'",
        ),
        ("benchmark: {threads: 0}\n", "benchmark.threads: must be a thread count from 1 to 1024"),
        ("http: {port: '9777'}\n", "http.port: expected an integer, got '9777'"),
        ("registries:\n  - {type: local, settle: soon}\n", "registries[0].settle: expected a duration"),
        (
            "registries:\n  - {type: mlflow, tracking_uri: 'http://m', max_artifact_bytes: 1.5B}\n",
            "registries[0].max_artifact_bytes: must be a whole number of bytes",
        ),
        (
            "registries:\n  - {type: local, tracking_uri: 'http://m'}\n",
            "registries[0].tracking_uri: unknown field for type local (it belongs to type mlflow)",
        ),
    ],
)
def test_bad_fields_are_reported_with_their_path(tmp_path, text, fragment):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as e:
        load_daemon_config(path)
    assert fragment in str(e.value)
    assert str(path) in str(e.value)


def test_every_problem_is_reported_at_once_in_document_order(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "http: {prot: 1, port: -1}\n"
        "registries:\n  - {type: local, poll_interval: 0s}\n  - {type: mlflow, tracking_uri: x, timout: 3s}\n"
        "verdict: {trial: 0}\nshutdown_grace: forever\n"
    )
    with pytest.raises(InvalidConfigError) as e:
        load_daemon_config(path)
    assert [p.path for p in e.value.problems] == [
        "http.port",
        "http.prot",
        "registries[0].poll_interval",
        "registries[1].tracking_uri",
        "registries[1].timout",
        "verdict.trial",
        "shutdown_grace",
    ]
    assert "did you mean 'timeout'?" in str(e.value)
    assert len(str(e.value).splitlines()) == 7 and all(
        line.startswith(f"{path}: ") for line in str(e.value).splitlines()
    )
    assert e.value.path == "http.port"  # the first one, for callers that read one


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_daemon_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("http: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_daemon_config(bad)
    top = tmp_path / "list.yaml"
    top.write_text("- 1\n")
    with pytest.raises(ConfigError, match="expected a mapping, got a list"):
        load_daemon_config(top)


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
    ("value", "seconds"), [("10s", 10), ("500ms", 0.5), ("2m", 120), (3, 3), ("100us", 1e-4), ("1h", 3600)]
)
def test_durations(value, seconds):
    assert parse_duration_s(value) == pytest.approx(seconds)


def test_data_dir_expands_into_registry_and_store(tmp_path, monkeypatch):
    config = read_daemon_config({"data_dir": str(tmp_path), "registries": [{"type": "local"}]}, "<t>")
    assert isinstance(config.registries[0], LocalRegistryConfig)
    assert config.registries[0].root == f"{tmp_path}/models"
    assert config.store_path == f"{tmp_path}/benchd.sqlite"
    monkeypatch.setenv("BENCHD_HOME", str(tmp_path / "home"))
    config = load_daemon_config(None)
    assert (
        config.data_dir == str(tmp_path / "home") and config.registries[0].root == f"{tmp_path}/home/models"
    )


def test_cli_overrides_are_validated_and_data_dir_follows_into_paths(tmp_path):
    config = load_daemon_config(None, overrides={"http.port": 9000, "data_dir": str(tmp_path)})
    assert config.http.port == 9000 and config.store.url == f"sqlite:///{tmp_path}/benchd.sqlite"
    assert config.registries[0].root == f"{tmp_path}/models"
    with pytest.raises(ConfigError, match="http.port: must be <= 65535"):
        load_daemon_config(None, overrides={"http.port": 70000})
