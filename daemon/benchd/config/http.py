"""The ``http:`` section: the one port (``/metrics``, ``/healthz``, ``/readyz``, the JSON API, webhooks).

The server is bounded (:mod:`benchd.metrics.http_connections`): a fixed number of threads, a cap on open
connections, a deadline for a whole request; these fields set those bounds.
"""

from __future__ import annotations

import ipaddress
import re

from pydantic import Field, JsonValue, field_validator

from benchd.config.units import HOUR_S, ByteSize, ConfigModel, Duration, EnvName, Int, Str

_HOSTNAME = re.compile(
    r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_COUNT: dict[str, JsonValue] = {"x-unit": "count"}


class HttpConfig(ConfigModel):
    """The one HTTP port: ``/metrics``, ``/healthz``, ``/readyz``, the JSON API and webhook receivers."""

    host: Str = Field("127.0.0.1", description="address to listen on (0.0.0.0: every interface)")
    port: Int = Field(9777, ge=0, le=65535, description="port to listen on (0: any free port)")
    api_token_env: EnvName = Field(
        "BENCHD_API_TOKEN",
        description="env var holding the bearer token for POST /api/v1/runs (unset: refused)",
    )
    max_body_bytes: ByteSize = Field(
        1 << 20, ge=1 << 10, le=64 << 20, description="larger request bodies get 413"
    )
    max_connections: Int = Field(
        512,
        ge=1,
        le=65536,
        description="open connections at most; a new one evicts the oldest still waiting for its request",
        json_schema_extra=_COUNT,
    )
    header_timeout_s: Duration = Field(
        10.0,
        alias="header_timeout",
        gt=0,
        le=HOUR_S,
        description="a whole request (head and body) must arrive within this",
    )
    idle_timeout_s: Duration = Field(
        30.0,
        alias="idle_timeout",
        gt=0,
        le=HOUR_S,
        description="idle keep-alive limit and slow-reader write limit",
    )
    workers: Int = Field(
        8, ge=1, le=1024, description="threads answering API and webhook requests", json_schema_extra=_COUNT
    )
    probe_workers: Int = Field(
        2, ge=1, le=64, description="threads answering /healthz, /readyz, /metrics", json_schema_extra=_COUNT
    )
    max_queued: Int = Field(
        64,
        ge=1,
        le=100_000,
        description="requests waiting per pool before a fast 503",
        json_schema_extra=_COUNT,
    )

    @field_validator("host")
    @classmethod
    def _host(cls, host: str) -> str:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            if not _HOSTNAME.match(host):
                raise ValueError(f"must be an IP address or a host name, got {host!r}") from None
        return host
