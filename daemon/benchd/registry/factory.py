"""Registry watchers from config.

:func:`build_watchers` turns the daemon config's ``registries:`` list into watchers: ``local`` becomes a
:class:`LocalFolderWatcher` over its root, ``mlflow`` an :class:`MLflowWatcher` that caches artifacts under
``<data_dir>/cache/<registry name>/`` and reads its credentials from the environment variables the config
names (``auth: {bearer_token_env, username_env, password_env}``; without any, MLflow's own
``MLFLOW_TRACKING_TOKEN``/``_USERNAME``/``_PASSWORD``).

Lookups (a version, the one before it) are methods of every watcher (:class:`RegistryWatcher`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from benchd.config import (
    DaemonConfig,
    LocalRegistryConfig,
    MLflowAuthConfig,
    MLflowRegistryConfig,
    RegistryConfig,
)
from benchd.errors import ConfigError
from benchd.registry.base import CursorStore, RegistryWatcher
from benchd.registry.local import LocalFolderWatcher
from benchd.registry.mlflow import MLflowWatcher
from benchd.registry.mlflow_http import MLflowAuth


def mlflow_auth(auth: MLflowAuthConfig, env: Mapping[str, str] | None = None) -> MLflowAuth | None:
    """The credentials an ``mlflow`` registry's ``auth:`` names, read from ``env``; None when it names none.

    None lets the client use credentials in the tracking URI, else MLflow's own environment variables.

    Raises:
        ConfigError: a named environment variable is not set.
    """
    env = os.environ if env is None else env
    names = {
        "bearer_token_env": auth.bearer_token_env,
        "username_env": auth.username_env,
        "password_env": auth.password_env,
    }
    if not any(names.values()):
        return None
    values: dict[str, str | None] = {}
    for key, name in names.items():
        if name and not env.get(name) and key != "password_env":
            raise ConfigError(f"auth.{key}", f"environment variable {name} is not set")
        values[key] = env.get(name) if name else None
    return MLflowAuth(
        username=values["username_env"], password=values["password_env"], token=values["bearer_token_env"]
    )


def build_watcher(
    cfg: RegistryConfig,
    *,
    data_dir: str,
    cursor_store: CursorStore | None = None,
    env: Mapping[str, str] | None = None,
) -> RegistryWatcher:
    """Build the watcher of one configured registry.

    Args:
        cfg: the registry's validated config (:class:`LocalRegistryConfig` or :class:`MLflowRegistryConfig`).
        data_dir: the daemon's data directory (MLflow artifacts are cached in ``<data_dir>/cache/<name>``).
        cursor_store: where the watcher keeps its position (the history store); None keeps it in memory.
        env: environment to read credentials from (default ``os.environ``).

    Raises:
        ConfigError: an unknown registry type, or a credential variable the config names is not set.
    """
    if isinstance(cfg, LocalRegistryConfig):
        return LocalFolderWatcher(cfg.name, cfg.root, cursor_store=cursor_store, settle_s=cfg.settle_s)
    if isinstance(cfg, MLflowRegistryConfig):
        return MLflowWatcher(
            cfg.name,
            cfg.tracking_uri,
            cache_dir=Path(data_dir) / "cache" / cfg.name,
            cursor_store=cursor_store,
            models=list(cfg.models) if cfg.models is not None else None,
            champion_alias=cfg.champion_alias,
            auth=mlflow_auth(cfg.auth, env),
            verify_tls=cfg.ca_bundle or cfg.verify_tls,
            timeout_s=cfg.timeout_s,
            max_artifact_bytes=cfg.max_artifact_bytes,
            max_pages=cfg.max_pages,
            max_listing_depth=cfg.max_listing_depth,
            max_artifact_files=cfg.max_artifact_files,
        )
    raise ConfigError(f"registries.{cfg.name}.type", f"unknown registry type {cfg.type!r}")


def build_watchers(
    config: DaemonConfig, cursor_store: CursorStore | None = None, env: Mapping[str, str] | None = None
) -> list[RegistryWatcher]:
    """Build a watcher for every registry of the daemon config, (see :func:`build_watcher`)."""
    return [
        build_watcher(r, data_dir=config.data_dir, cursor_store=cursor_store, env=env)
        for r in config.registries
    ]
