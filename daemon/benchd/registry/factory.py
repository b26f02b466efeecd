"""Registry watchers from config, and one-off lookups (a version, the one before it) for ``benchd check``.

:func:`build_watchers` turns the daemon config's ``registries:`` list into watchers: ``local`` becomes a
:class:`LocalFolderWatcher` over its root, ``mlflow`` an :class:`MLflowWatcher` that caches artifacts under
``<data_dir>/cache/<registry name>/`` and reads its credentials from the environment variables the config
names (``auth: {bearer_token_env, username_env, password_env}``; without any, MLflow's own
``MLFLOW_TRACKING_TOKEN``/``_USERNAME``/``_PASSWORD``).

:func:`find_version` and :func:`previous_version` answer "does this registry have model M version V" and
"which version came before it", with errors that say in one sentence which registry, model or version is
missing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchd.config import DaemonConfig, RegistryConfig
from benchd.errors import ConfigError, RegistryError
from benchd.records import ModelVersion
from benchd.registry.base import CursorStore, RegistryWatcher
from benchd.registry.local import CHAMPION_FILE, LocalFolderWatcher, version_sort_key
from benchd.registry.mlflow import MLflowWatcher
from benchd.registry.mlflow_http import MLflowAPIError, MLflowAuth

_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")


class UnknownModelVersionError(RegistryError):
    """The registry answered, and it has no such model, or no such version of it."""

    def __init__(self, registry: str, where: str, model: str, version: str | None) -> None:
        self.registry = registry
        self.model = model
        self.version = version
        if version is None:
            message = f"registry {registry!r} ({where}) has no model {model!r}"
        else:
            message = f"model {model!r} has no version {version!r} in registry {registry!r} ({where})"
        super().__init__(message)


def mlflow_auth(options: Mapping[str, Any], env: Mapping[str, str] | None = None) -> MLflowAuth | None:
    """The credentials an ``mlflow`` registry's ``auth:`` names, read from ``env``; None when it names none.

    None lets the client use credentials in the tracking URI, else MLflow's own environment variables.

    Raises:
        ConfigError: a named environment variable is not set.
    """
    env = os.environ if env is None else env
    auth = options.get("auth") or {}
    names = {key: auth.get(key) for key in ("bearer_token_env", "username_env", "password_env")}
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
        cfg: the registry's validated config.
        data_dir: the daemon's data directory (MLflow artifacts are cached in ``<data_dir>/cache/<name>``).
        cursor_store: where the watcher keeps its position (the history store); None keeps it in memory.
        env: environment to read credentials from (default ``os.environ``).

    Raises:
        ConfigError: an unknown registry type, or a credential variable the config names is not set.
    """
    options = cfg.options
    if cfg.type == "local":
        return LocalFolderWatcher(
            cfg.name, options["root"], cursor_store=cursor_store, settle_s=float(options.get("settle_s", 5.0))
        )
    if cfg.type == "mlflow":
        ca_bundle = options.get("ca_bundle")
        verify: bool | str = ca_bundle if ca_bundle else bool(options.get("verify_tls", True))
        kwargs: dict[str, Any] = {}
        if options.get("max_artifact_bytes") is not None:
            kwargs["max_artifact_bytes"] = int(options["max_artifact_bytes"])
        return MLflowWatcher(
            cfg.name,
            options["tracking_uri"],
            cache_dir=Path(data_dir) / "cache" / cfg.name,
            cursor_store=cursor_store,
            models=options.get("models"),
            champion_alias=options.get("champion_alias") or "champion",
            auth=mlflow_auth(options, env),
            verify_tls=verify,
            timeout_s=float(options.get("timeout_s", 10.0)),
            **kwargs,
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


def describe(watcher: RegistryWatcher) -> str:
    """Where a watcher looks, for messages: the local root or the MLflow URL."""
    if isinstance(watcher, LocalFolderWatcher):
        return str(watcher.root)
    if isinstance(watcher, MLflowWatcher):
        return watcher.url
    return type(watcher).__name__


def list_versions(watcher: RegistryWatcher, model: str) -> list[str]:
    """Every version of ``model`` the registry holds, oldest first (local: natural sort; MLflow: number).

    Raises:
        UnknownModelVersionError: the registry has no such model.
        RegistryError: the registry cannot be read.
    """
    if isinstance(watcher, LocalFolderWatcher):
        folder = watcher.root / model
        if not folder.is_dir():
            raise UnknownModelVersionError(watcher.name, describe(watcher), model, None)
        try:
            names = [e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
        except OSError as e:
            raise RegistryError(f"local registry {watcher.name}: cannot list {folder}: {e}") from e
        return sorted((n for n in names if n != CHAMPION_FILE), key=version_sort_key)
    if isinstance(watcher, MLflowWatcher):
        _registered_model(watcher, model)
        quote = "'" if "'" not in model else '"'
        versions: list[str] = []
        token: str | None = None
        while True:
            params = {"filter": f"name={quote}{model}{quote}", "max_results": 200}
            if token:
                params["page_token"] = token
            doc = watcher.client.get_json(
                "/model-versions/search", params, what=f"listing versions of model {model!r}"
            )
            versions += [str(v["version"]) for v in doc.get("model_versions", []) if v.get("version")]
            token = doc.get("next_page_token") or None
            if token is None:
                return sorted(set(versions), key=version_sort_key)
    raise RegistryError(f"cannot list versions of a {type(watcher).__name__}")


def _registered_model(watcher: MLflowWatcher, model: str) -> None:
    try:
        watcher.client.get_json("/registered-models/get", {"name": model}, what=f"reading model {model!r}")
    except MLflowAPIError as e:
        if e.status in (400, 404) and e.error_code in _NOT_FOUND:
            raise UnknownModelVersionError(watcher.name, describe(watcher), model, None) from e
        raise


def find_version(watcher: RegistryWatcher, model: str, version: str) -> ModelVersion:
    """The version as the registry describes it, fetched: ``path`` is a local folder.

    Raises:
        UnknownModelVersionError: no such model or version (the message says which).
        RegistryError: the registry cannot be read or the artifact cannot be fetched.
    """
    if isinstance(watcher, LocalFolderWatcher):
        if not (watcher.root / model).is_dir():
            raise UnknownModelVersionError(watcher.name, describe(watcher), model, None)
        if not (watcher.root / model / version).is_dir() or version == CHAMPION_FILE:
            raise UnknownModelVersionError(watcher.name, describe(watcher), model, version)
        champion = watcher.champion(model)
        mv = ModelVersion(
            model=model,
            version=version,
            registry=watcher.name,
            aliases=("champion",) if champion == version else (),
        )
        return watcher.fetch(mv)
    if isinstance(watcher, MLflowWatcher):
        try:
            doc = watcher.client.get_json(
                "/model-versions/get",
                {"name": model, "version": version},
                what=f"reading model {model!r} version {version!r}",
            )
        except MLflowAPIError as e:
            if e.status in (400, 404) and e.error_code in _NOT_FOUND:
                _registered_model(watcher, model)
                raise UnknownModelVersionError(watcher.name, describe(watcher), model, version) from e
            raise
        raw = doc.get("model_version") or {}
        created = raw.get("creation_timestamp")
        mv = ModelVersion(
            model=model,
            version=str(raw.get("version", version)),
            registry=watcher.name,
            source_uri=str(raw.get("source", "")),
            created_unix_s=float(created) / 1000.0 if created is not None else None,
            aliases=tuple(str(a) for a in raw.get("aliases") or ()),
        )
        return watcher.fetch(mv)
    raise RegistryError(f"cannot look up versions in a {type(watcher).__name__}")


def previous_version(watcher: RegistryWatcher, model: str, version: str) -> str | None:
    """The highest version of ``model`` lower than ``version`` (natural order), or None.

    Raises:
        UnknownModelVersionError: the registry has no such model.
        RegistryError: the registry cannot be read.
    """
    key = version_sort_key(version)
    older = [v for v in list_versions(watcher, model) if version_sort_key(v) < key]
    return older[-1] if older else None
