"""Watchers built from the daemon config, and version lookups for `benchd check` (local and real MLflow)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from tests.mlflow_server import MLflowSeeder

from benchd.config import MLflowAuthConfig, MLflowRegistryConfig, read_daemon_config
from benchd.errors import ConfigError, RegistryError
from benchd.registry import LocalFolderWatcher, MemoryCursorStore, MLflowWatcher
from benchd.registry.base import UnknownModelVersionError
from benchd.registry.factory import build_watcher, build_watchers, mlflow_auth
from benchd.registry.mlflow import cache_folder_name

FILES = {"model.pt2": b"\x01" * 100, "benchd.yaml": b"inputs: [{name: x, shape: [batch, 3]}]\n"}


def _version(root: Path, model: str, version: str) -> Path:
    folder = root / model / version
    folder.mkdir(parents=True)
    (folder / "benchd.yaml").write_text("inputs: [{name: x, shape: [batch, 3]}]\n")
    (folder / "model.pt2").write_bytes(b"\x00")
    (folder / "READY").write_text("")
    return folder


def _config(tmp_path: Path, **mlflow: object) -> object:
    doc = {
        "data_dir": str(tmp_path / "data"),
        "registries": [
            {"name": "local", "type": "local", "root": "${data_dir}/models", "settle": "3s"},
            {"name": "prod", "type": "mlflow", "tracking_uri": "http://127.0.0.1:1", "models": ["a"],
             "champion_alias": "live", "max_artifact_bytes": 1000, "timeout": "4s", **mlflow},
        ],
    }  # fmt: skip
    return read_daemon_config(doc, "test.yaml")


def test_build_watchers_from_config(tmp_path):
    cursor = MemoryCursorStore()
    env = {"TOKEN_VAR": "s3cret"}
    local, prod = build_watchers(
        _config(tmp_path, auth={"bearer_token_env": "TOKEN_VAR"}, verify_tls=False), cursor, env=env
    )
    assert isinstance(local, LocalFolderWatcher) and local.name == "local"
    assert local.root == tmp_path / "data" / "models" and local.settle_s == 3.0
    assert local.cursor_store is cursor
    assert isinstance(prod, MLflowWatcher) and prod.name == "prod"
    assert prod.cache_dir == tmp_path / "data" / "cache" / "prod"
    assert prod.models == ["a"] and prod.champion_alias == "live" and prod.max_artifact_bytes == 1000
    assert prod.client.timeout_s == 4.0 and prod.client.verify_tls is False
    assert prod.client.auth.token == "s3cret"
    assert "s3cret" not in repr(prod.client.auth)


def test_mlflow_credentials_come_from_the_named_variables_else_mlflows_own(tmp_path):
    basic = mlflow_auth(MLflowAuthConfig(username_env="U", password_env="P"), {"U": "ann", "P": "pw"})
    assert (basic.username, basic.password, basic.token) == ("ann", "pw", None)
    assert mlflow_auth(MLflowAuthConfig(username_env=None), {}) is None
    with pytest.raises(ConfigError, match="MISSING_TOKEN is not set"):
        mlflow_auth(MLflowAuthConfig(bearer_token_env="MISSING_TOKEN"), {})
    # nothing named: the client falls back to MLFLOW_TRACKING_TOKEN
    cfg = MLflowRegistryConfig(name="p", tracking_uri="http://127.0.0.1:1", ca_bundle="/ca.pem")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_TOKEN", "from-env")
        watcher = build_watcher(cfg, data_dir=str(tmp_path))
    assert watcher.client.auth.token == "from-env" and watcher.client.verify_tls == "/ca.pem"


def test_local_lookups_say_which_model_or_version_is_missing(tmp_path):
    root = tmp_path / "models"
    for v in ("1", "2", "10", "3"):
        _version(root, "m", v)
    (root / "m" / "champion").write_text("2\n")
    watcher = LocalFolderWatcher("local", root)
    assert watcher.list_versions("m") == ["1", "2", "3", "10"]
    assert watcher.previous_version("m", "10") == "3"
    assert watcher.previous_version("m", "1") is None
    mv = watcher.find_version("m", "2")
    assert mv.path == str((root / "m" / "2").resolve()) and mv.aliases == ("champion",)
    with pytest.raises(UnknownModelVersionError) as e:
        watcher.find_version("m", "7")
    assert str(e.value) == f"model 'm' has no version '7' in registry 'local' ({root})"
    with pytest.raises(UnknownModelVersionError, match=r"registry 'local' \(.*\) has no model 'zz'"):
        watcher.find_version("zz", "1")
    with pytest.raises(UnknownModelVersionError, match="has no version 'champion'"):
        watcher.find_version("m", "champion")


@pytest.mark.slow
def test_mlflow_lookups_fetch_the_version_and_name_what_is_missing(mlflow_url, tmp_path):
    seeder = MLflowSeeder(mlflow_url)
    model = f"factory-{uuid.uuid4().hex[:8]}"
    seeder.create_model(model)
    for _ in range(3):
        seeder.create_version(model, FILES)
    cfg = MLflowRegistryConfig(name="prod", tracking_uri=mlflow_url)
    watcher = build_watcher(cfg, data_dir=str(tmp_path), env={})
    assert watcher.list_versions(model) == ["1", "2", "3"]
    assert watcher.previous_version(model, "3") == "2"
    mv = watcher.find_version(model, "2")
    assert (mv.model, mv.version, mv.registry) == (model, "2", "prod")
    assert Path(mv.path) == tmp_path / "cache" / "prod" / cache_folder_name(model) / "2"
    assert (Path(mv.path) / "model.pt2").read_bytes() == FILES["model.pt2"]
    with pytest.raises(UnknownModelVersionError) as e:
        watcher.find_version(model, "9")
    assert str(e.value) == f"model {model!r} has no version '9' in registry 'prod' ({mlflow_url})"
    with pytest.raises(UnknownModelVersionError, match="has no model 'no-such-model'"):
        watcher.find_version("no-such-model", "1")


def test_an_unreachable_mlflow_is_a_registry_error_not_an_unknown_version(tmp_path):
    cfg = MLflowRegistryConfig(name="prod", tracking_uri="http://127.0.0.1:1", timeout_s=2.0)
    watcher = build_watcher(cfg, data_dir=str(tmp_path), env={})
    with pytest.raises(RegistryError, match="unreachable") as e:
        watcher.find_version("m", "1")
    assert not isinstance(e.value, UnknownModelVersionError)
