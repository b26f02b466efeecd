"""The daemon config (``benchd run``): one model per YAML section, each field declared once.

``${data_dir}`` in ``store.url`` and a local registry's ``root`` expands to ``data_dir`` (itself
``$BENCHD_HOME`` or ``~/.local/share/benchd`` unless set); ``~`` and ``$VARS`` expand in all three.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import Field, PrivateAttr, field_serializer, field_validator, model_validator

from benchd.config.bench import BenchConfig
from benchd.config.fake_devices import FakeDevicesConfig
from benchd.config.http import HttpConfig
from benchd.config.problems import FieldProblemsError
from benchd.config.registries import AnyRegistryConfig, LocalRegistryConfig
from benchd.config.units import (
    DAY_S,
    HOUR_S,
    MINUTE_S,
    Bool,
    ConfigModel,
    Duration,
    Int,
    Number,
    Str,
    format_duration,
)
from benchd.config.workers import RunsConfig, WorkersConfig

MetricName = Literal["p99_latency", "p50_latency", "throughput", "energy_per_sample"]
Fraction = Annotated[Number, Field(gt=0, lt=1)]
#: benchd's options in a postgresql:// store URL's query: (type, low, high) in the option's unit.
STORE_URL_OPTIONS: dict[str, tuple[type, float, float]] = {
    "lease_s": (float, 1.0, HOUR_S),
    "pool_min": (int, 0, 100),
    "pool_max": (int, 1, 100),
    "connect_timeout_s": (float, 0.1, 10 * MINUTE_S),
}


def default_data_dir() -> str:
    """``$BENCHD_HOME`` or ``~/.local/share/benchd``."""
    return os.environ.get("BENCHD_HOME") or str(Path.home() / ".local" / "share" / "benchd")


def expand_path(value: str, data_dir: str = "") -> str:
    """``value`` with ``${data_dir}``, ``$VARS`` and ``~`` expanded."""
    return os.path.expanduser(os.path.expandvars(value.replace("${data_dir}", data_dir)))


class StoreConfig(ConfigModel):
    """Where runs, results and verdicts are kept."""

    url: Str = Field(
        "sqlite:///${data_dir}/benchd.sqlite",
        description="sqlite:///PATH, or postgresql://user@host/db to share one store across a fleet "
        "(query options lease_s, pool_min, pool_max, connect_timeout_s)",
    )
    record_retry_s: Duration = Field(
        120.0,
        alias="record_retry",
        ge=0,
        le=DAY_S,
        description="how long a run's end is retried while the store fails (then it is recorded failed)",
    )
    record_retry_max_delay_s: Duration = Field(
        30.0,
        alias="record_retry_max_delay",
        gt=0,
        le=HOUR_S,
        description="longest pause between those retries",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if url.startswith("sqlite:///"):
            if not url.removeprefix("sqlite:///").strip():
                raise ValueError("sqlite:/// needs a file path, e.g. sqlite:///${data_dir}/benchd.sqlite")
            return url
        if not url.startswith(("postgresql://", "postgres://")):
            raise ValueError(
                f"only sqlite:///PATH or postgresql://... is supported in this version, got {url!r}"
            )
        problems = []
        values: dict[str, float] = {}
        for key, raw in parse_qsl(urlsplit(url).query, keep_blank_values=True):
            if key not in STORE_URL_OPTIONS:
                continue
            kind, low, high = STORE_URL_OPTIONS[key]
            try:
                value = kind(raw)
            except ValueError:
                problems.append(f"option {key}={raw!r} is not {'an integer' if kind is int else 'a number'}")
                continue
            if not low <= value <= high:
                problems.append(f"option {key}={raw} must be between {low:g} and {high:g}")
            values[key] = value
        if values.get("pool_min", 0) > values.get("pool_max", 100):
            problems.append("option pool_min must be <= pool_max")
        if problems:
            raise ValueError("; ".join(problems))
        return url

    @property
    def path(self) -> str:
        """The SQLite file the URL names ("" for PostgreSQL)."""
        return self.url.removeprefix("sqlite:///") if self.url.startswith("sqlite:///") else ""


class DevicesConfig(ConfigModel):
    """The GPUs benchd measures energy and telemetry on."""

    mode: Literal["auto", "nvml", "fake", "none"] = Field(
        "auto",
        description="auto (NVML if it starts, else CPU only), nvml (required), fake (scripted GPUs), none",
    )
    require_gpu: Bool = Field(False, description="refuse to start without a GPU")
    fake: FakeDevicesConfig = Field(
        default_factory=FakeDevicesConfig,
        description="scripted GPUs for mode fake (see benchd/devices/fake.py)",
    )
    telemetry_retention_s: Duration | None = Field(
        None,
        alias="telemetry_retention",
        gt=0,
        le=DAY_S,
        description="telemetry history kept per device, about 64 bytes per 50 ms sample; a window older "
        "than this is not measured (none: max(15m, benchmark.timeout + 1m))",
    )

    @model_validator(mode="after")
    def _consistent(self) -> DevicesConfig:
        if self.require_gpu and self.mode == "none":
            raise FieldProblemsError(
                [("require_gpu", "cannot be true with mode none (no GPU is ever opened)")]
            )
        return self

    @field_serializer("fake", when_used="json")
    def _show_fake(self, fake: FakeDevicesConfig) -> dict[str, Any]:
        return fake.model_dump(mode="json", exclude_unset=True)


class VerdictConfig(ConfigModel):
    """How a candidate is compared with its baseline (README: "How verdicts are decided")."""

    mode: Literal["batch", "history", "off"] = Field(
        "batch", description="batch (re-measure the baseline interleaved), history (stored runs, weaker), off"
    )
    threshold: Fraction = Field(
        0.10,
        description="t: a change this large matters (0.10 = 10%)",
        json_schema_extra={"x-unit": "fraction"},
    )
    min_effect: Annotated[Number, Field(ge=0, lt=1)] | None = Field(
        None,
        description="m: smallest reportable change (none: threshold/2; raised to the baseline's noise)",
        json_schema_extra={"x-unit": "fraction"},
    )
    thresholds: dict[MetricName, Fraction] = Field(
        default_factory=dict,
        description="per-metric t: p99_latency, p50_latency, throughput, energy_per_sample",
        json_schema_extra={"x-unit": "fraction"},
    )
    min_pairs: Int = Field(4, ge=2, le=1000, description="pairs run before a verdict may stop the batch")
    max_pairs: Int = Field(
        40, ge=2, le=1000, description="the most pairs run; then undecided is inconclusive"
    )
    trial_s: Duration = Field(
        1.0, alias="trial", gt=0, le=10 * MINUTE_S, description="the fewest measured seconds of a trial"
    )
    trial_queries: Int = Field(
        2000,
        ge=1,
        le=10_000_000,
        description="the fewest measured queries of a trial (its P99 rests on 1% of them), within the cap",
    )
    block_queries: Literal["auto"] | Annotated[Int, Field(ge=0, le=1_000_000)] = Field(
        "auto",
        description="within a pair the sides take turns every this many queries, so host noise hits both "
        "alike; 0: each side's trial whole (its energy then compared); auto: 1 on a CPU, 0 on a GPU",
    )
    pairs_per_process: Int = Field(
        1, ge=1, le=1000, description="pairs each worker process runs; then a fresh one, load order swapped"
    )
    time_cap_s: Duration = Field(
        180.0,
        alias="time_cap",
        gt=0,
        le=DAY_S,
        description="wall time of a batch (process starts included) after which no new pair starts",
    )
    calibration_batches: Int = Field(
        3,
        ge=0,
        le=100,
        description="A/A batches measuring a model's noise floor the first time it runs on a hardware class "
        "(0: only benchd calibrate)",
    )
    inconclusive_passes: Bool = Field(False, description="benchd check exits 0 instead of 3 on inconclusive")
    require_baseline: Bool = Field(
        False,
        description="benchd check exits 3 instead of passing a first version as no_baseline "
        "(the --require-baseline flag overrides)",
    )

    @model_validator(mode="after")
    def _consistent(self) -> VerdictConfig:
        problems = []
        if self.max_pairs < self.min_pairs:
            problems.append(("max_pairs", f"must be >= min_pairs ({self.min_pairs})"))
        if self.trial_s > self.time_cap_s:
            problems.append(("trial", f"must be <= time_cap ({format_duration(self.time_cap_s)})"))
        if self.min_effect is not None:
            for metric, t in [("threshold", self.threshold), *self.thresholds.items()]:
                if self.min_effect >= t:
                    where = "threshold" if metric == "threshold" else f"thresholds.{metric}"
                    problems.append(("min_effect", f"must be < {where} ({t:g})"))
        if problems:
            raise FieldProblemsError(problems)
        return self


class ExportConfig(ConfigModel):
    """What /metrics exports."""

    latest_versions: Int = Field(
        3, ge=1, le=100, description="versions per model exported (older stay in the store)"
    )
    latency_buckets_s: tuple[Annotated[Duration, Field(gt=0, le=HOUR_S)], ...] | None = Field(
        None,
        alias="latency_buckets",
        min_length=1,
        max_length=100,
        description="histogram bucket bounds, increasing (none: benchd's 100us ... 10s)",
    )
    change_point_runs: Int = Field(
        200,
        ge=6,
        le=5000,
        description="newest runs per series searched for change points (the search costs runs^2)",
        json_schema_extra={"x-unit": "runs"},
    )
    change_point_min_magnitude: Annotated[Number, Field(ge=0, lt=1)] = Field(
        0.02,
        description="smaller change points are merged away",
        json_schema_extra={"x-unit": "ratio"},
    )

    @field_validator("latency_buckets_s")
    @classmethod
    def _increasing(cls, buckets: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if buckets and any(b <= a for a, b in zip(buckets, buckets[1:], strict=False)):
            raise ValueError("bucket bounds must be strictly increasing")
        return buckets


class DaemonConfig(ConfigModel):
    """The daemon's whole configuration (``benchd run``)."""

    data_dir: Str = Field(
        default_factory=default_data_dir,
        min_length=1,
        description="store, local registry, run outputs and the MLflow artifact cache",
        json_schema_extra={"x-default": "`$BENCHD_HOME`, else `~/.local/share/benchd`"},
    )
    http: HttpConfig = Field(default_factory=HttpConfig, description="the HTTP port")
    store: StoreConfig = Field(default_factory=StoreConfig, description="the history store")
    devices: DevicesConfig = Field(default_factory=DevicesConfig, description="GPUs to measure")
    workers: WorkersConfig = Field(default_factory=WorkersConfig, description="limits of each worker process")
    runs: RunsConfig = Field(default_factory=RunsConfig, description="how stuck runs end")
    registries: tuple[AnyRegistryConfig, ...] = Field(
        (), max_length=64, description="model registries to watch"
    )
    benchmark: BenchConfig = Field(default_factory=BenchConfig, description="how each version is benchmarked")
    verdict: VerdictConfig = Field(default_factory=VerdictConfig, description="how regressions are decided")
    export: ExportConfig = Field(default_factory=ExportConfig, description="what /metrics exports")
    champion_cron: Str | None = Field(
        None, description="crontab (UTC) re-benchmarking each champion, e.g. '0 3 * * *' (none: never)"
    )
    shutdown_grace_s: Duration = Field(
        30.0,
        alias="shutdown_grace",
        ge=0,
        le=HOUR_S,
        description="time current runs get to finish on SIGTERM",
    )
    _source: str = PrivateAttr("<python>")

    @field_validator("champion_cron")
    @classmethod
    def _cron(cls, expression: str | None) -> str | None:
        if expression is None:
            return None
        from datetime import datetime, timezone

        from apscheduler.triggers.cron import CronTrigger

        try:
            trigger = CronTrigger.from_crontab(expression, timezone=timezone.utc)
        except ValueError as e:
            raise ValueError(f"not a valid crontab line (minute hour day month weekday): {e}") from None
        if trigger.get_next_fire_time(None, datetime.now(timezone.utc)) is None:
            raise ValueError(f"{expression!r} never fires")
        return expression

    @model_validator(mode="after")
    def _expand(self) -> DaemonConfig:
        names = [r.name for r in self.registries]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise FieldProblemsError(
                [("registries", f"registry names must be unique; listed twice: {', '.join(twice)}")]
            )
        data_dir = expand_path(self.data_dir)
        registries = tuple(
            r.model_copy(update={"root": expand_path(r.root, data_dir)})
            if isinstance(r, LocalRegistryConfig)
            else r
            for r in self.registries
        )
        store = self.store.model_copy(update={"url": expand_path(self.store.url, data_dir)})
        # frozen: the expanded values replace the written ones once, here, before anyone sees the config
        object.__setattr__(self, "data_dir", data_dir)
        object.__setattr__(self, "registries", registries)
        object.__setattr__(self, "store", store)
        return self

    @property
    def source(self) -> str:
        """The file this config was read from (``<embedded default>``, ``<python>``)."""
        return self._source

    @property
    def store_path(self) -> str:
        """The SQLite file the store URL names ("" for PostgreSQL)."""
        return self.store.path
