"""The model registries to watch: one typed model per ``type`` (``local``, ``mlflow``), chosen by ``type``."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from benchd.config.units import (
    DAY_S,
    HOUR_S,
    MINUTE_S,
    Bool,
    ByteSize,
    ConfigModel,
    Duration,
    EnvName,
    Int,
    SafeName,
    Str,
    format_duration,
)

#: Polling faster than this only loads the registry; slower than a day misses a working day's versions.
POLL_MIN_S, POLL_MAX_S = 0.1, DAY_S


class RegistryConfig(ConfigModel):
    """What every registry has; :class:`LocalRegistryConfig` and :class:`MLflowRegistryConfig` add more."""

    name: SafeName = Field(description="the registry's name in metrics, the API and the artifact cache")
    type: str = Field(description="local or mlflow")
    poll_interval_s: Duration = Field(
        alias="poll_interval",
        gt=0,
        le=POLL_MAX_S,
        description="polling period (failures back off up to 5 min)",
    )
    allow_pickle: Bool = Field(
        False, description="allow pickled models from this registry (loading runs code: trusted sources only)"
    )
    allow_native_code: Bool = Field(
        False, description="allow AOTInductor packages (compiled native code) from this registry"
    )

    @model_validator(mode="before")
    @classmethod
    def _own_type(cls, data: Any) -> Any:
        """``LocalRegistryConfig(root=...)`` in code needs no ``type``; in YAML ``type`` picks the model."""
        tags = typing.get_args(cls.model_fields["type"].annotation)
        if isinstance(data, dict) and "type" not in data and len(tags) == 1:
            return {**data, "type": tags[0]}
        return data

    @field_validator("poll_interval_s")
    @classmethod
    def _not_too_often(cls, interval_s: float) -> float:
        if interval_s < POLL_MIN_S:
            raise ValueError(f"must be >= {format_duration(POLL_MIN_S)}, got {format_duration(interval_s)}")
        return interval_s


class LocalRegistryConfig(RegistryConfig):
    """Version folders ``<root>/<model>/<version>/``; ``<root>/<model>/champion`` names the champion."""

    name: SafeName = Field(
        "local", description="the registry's name in metrics, the API and the artifact cache"
    )
    type: Literal["local"] = Field(description="a folder of version folders")
    poll_interval_s: Duration = Field(
        10.0,
        alias="poll_interval",
        gt=0,
        le=POLL_MAX_S,
        description="polling period (failures back off up to 5 min)",
    )
    root: Str = Field(
        "${data_dir}/models", min_length=1, description="the folder holding <model>/<version>/ folders"
    )
    settle_s: Duration = Field(
        5.0,
        alias="settle",
        ge=0,
        le=HOUR_S,
        description="how long a folder without a READY file must stay unchanged before it is benchmarked",
    )


class MLflowAuthConfig(ConfigModel):
    """Names of environment variables holding MLflow credentials (values are never in the config)."""

    username_env: EnvName | None = Field(
        None, description="basic auth user (default: MLFLOW_TRACKING_USERNAME)"
    )
    password_env: EnvName | None = Field(
        None, description="basic auth password (default: MLFLOW_TRACKING_PASSWORD)"
    )
    bearer_token_env: EnvName | None = Field(
        None, description="bearer token (default: MLFLOW_TRACKING_TOKEN)"
    )


class MLflowRegistryConfig(RegistryConfig):
    """An MLflow model registry, read over its REST API; artifacts are kept in ``<data_dir>/cache/<name>``."""

    name: SafeName = Field(
        "mlflow", description="the registry's name in metrics, the API and the artifact cache"
    )
    type: Literal["mlflow"] = Field(description="an MLflow tracking server's model registry")
    poll_interval_s: Duration = Field(
        30.0,
        alias="poll_interval",
        gt=0,
        le=POLL_MAX_S,
        description="polling period (failures back off up to 5 min)",
    )
    tracking_uri: Str = Field(description="the MLflow server, http(s)://host[:port][/path]")
    models: tuple[Str, ...] | None = Field(
        None, min_length=1, description="registered models to watch (none: every registered model)"
    )
    champion_alias: Str = Field("champion", min_length=1, description="the alias naming the baseline version")
    auth: MLflowAuthConfig = Field(
        default_factory=MLflowAuthConfig, description="credentials, from the environment"
    )
    verify_tls: Bool = Field(True, description="verify the server's TLS certificate")
    ca_bundle: Str | None = Field(None, min_length=1, description="CA bundle file to verify it with")
    max_artifact_bytes: ByteSize = Field(
        2 << 30, ge=1, le=1 << 40, description="larger artifacts are refused before download"
    )
    webhook_secret_env: EnvName | None = Field(
        None, description="env var with the webhook HMAC secret; set: POST /api/v1/hooks/mlflow is enabled"
    )
    timeout_s: Duration = Field(
        10.0, alias="timeout", gt=0, le=10 * MINUTE_S, description="per HTTP request to the server"
    )
    max_pages: Int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="search pages before a poll gives up (a server that never stops paging)",
        json_schema_extra={"x-unit": "count"},
    )
    max_listing_depth: Int = Field(
        16,
        ge=1,
        le=1000,
        description="artifact folder nesting allowed (deeper: a recursive listing, refused)",
        json_schema_extra={"x-unit": "levels"},
    )
    max_artifact_files: Int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="artifact files per version (more: refused)",
        json_schema_extra={"x-unit": "count"},
    )

    @field_validator("tracking_uri")
    @classmethod
    def _http_url(cls, uri: str) -> str:
        parts = urlsplit(uri)
        try:
            port_ok = parts.port is None or parts.port > 0
        except ValueError:
            port_ok = False
        if parts.scheme not in ("http", "https") or not parts.hostname or not port_ok:
            raise ValueError(f"must be an http(s) URL such as http://mlflow:5000, got {uri!r}")
        return uri


#: A registry entry: the model is chosen by its ``type``.
AnyRegistryConfig = Annotated[Union[LocalRegistryConfig, MLflowRegistryConfig], Field(discriminator="type")]
