"""deploy/benchd.yaml: the containers' daemon config is valid, and so is its commented MLflow example."""

from __future__ import annotations

import re

from deploy_support import DEPLOY

from benchd.config import load_daemon_config

CONFIG = DEPLOY / "benchd.yaml"


def test_deploy_config_loads_with_container_paths():
    config = load_daemon_config(CONFIG)
    assert config.data_dir == "/var/lib/benchd"
    assert (config.http.host, config.http.port) == ("0.0.0.0", 9777)
    assert config.store_path == "/var/lib/benchd/benchd.sqlite"
    assert config.devices.mode == "auto"
    (local,) = config.registries
    assert (local.type, local.root) == ("local", "/var/lib/benchd/models")


def test_commented_mlflow_registry_is_valid_once_uncommented(tmp_path):
    text = CONFIG.read_text(encoding="utf-8")
    uncommented = re.sub(r"^  # (  |- )", r"  \1", text, flags=re.MULTILINE)
    assert uncommented != text
    path = tmp_path / "benchd.yaml"
    path.write_text(uncommented, encoding="utf-8")
    config = load_daemon_config(path)
    mlflow = [r for r in config.registries if r.type == "mlflow"]
    assert [r.name for r in mlflow] == ["prod"]
    assert mlflow[0].auth.bearer_token_env == "MLFLOW_TRACKING_TOKEN"
    assert mlflow[0].webhook_secret_env == "BENCHD_MLFLOW_WEBHOOK_SECRET"
