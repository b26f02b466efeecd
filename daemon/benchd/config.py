"""YAML configuration → frozen, validated config objects. Errors name the field path.

Two documents share this module: a *benchmark* config (what ``benchd bench`` and :func:`benchd.evaluate`
take, and the ``benchmark:`` section of the daemon config) and the *daemon* config (``benchd run``).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from benchd.config_fields import FieldReader
from benchd.errors import ConfigError
from benchd.records import SCENARIOS, RunSpec, ScenarioSettings

DEFAULT_PORT = 9777
DTYPES = ("float32", "float16", "bfloat16", "float64")
DEVICE_MODES = ("auto", "nvml", "fake", "none")
VERDICT_MODES = ("batch", "history", "off")

_SCENARIO_FIELDS = {
    "warmup_queries": ("int", 0),
    "warmup": ("duration", 0),
    "min_duration": ("duration", 0),
    "max_duration": ("duration_pos", None),
    "min_query_count": ("int", 1),
    "max_query_count": ("int", 1),
    "samples_per_query": ("int", 1),
    "target_qps": ("pos", None),
    "latency_bound": ("duration_pos", None),
    "latency_percentile": ("percentile", None),
    "search_max_qps": ("bool", None),
    "concurrency": ("int", 1),
    "seed": ("int", 0),
}
_FIELD_TO_ATTR = {
    "warmup": "warmup_s",
    "min_duration": "min_duration_s",
    "max_duration": "max_duration_s",
    "latency_bound": "latency_bound_s",
}


@dataclass(frozen=True)
class BenchConfig:
    """How to benchmark a model version: scenarios, batch sizes, device and numerics."""

    scenarios: tuple[ScenarioSettings, ...] = (ScenarioSettings(),)
    batch_sizes: tuple[int, ...] = (1,)
    device: str = "auto"
    dtype: str = "float32"
    amp: bool = False
    compile: bool = False
    threads: int | None = None
    timeout_s: float = 600.0
    seed: int = 0
    allow_pickle: bool = False

    def replace(self, **changes: Any) -> BenchConfig:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def run_spec(
        self,
        *,
        model: str,
        version: str,
        model_path: str,
        device: str | None = None,
        scenarios: tuple[ScenarioSettings, ...] | None = None,
        batch_sizes: tuple[int, ...] | None = None,
        allow_pickle: bool = False,
        baseline: str | None = None,
    ) -> RunSpec:
        """The one place a :class:`RunSpec` is built: these settings applied to one model version.

        Args:
            model: the model's name.
            version: the version.
            model_path: the local version folder.
            device: the device to run on (default: this config's ``device``).
            scenarios: a subset of the scenarios (default: all of them).
            batch_sizes: a subset of the batch sizes (default: all of them).
            allow_pickle: True when the version's registry allows pickles (this config can allow them too).
            baseline: a baseline the daemon should compare with (a version or an alias).
        """
        return RunSpec(
            model=model,
            version=version,
            model_path=str(model_path),
            scenarios=scenarios or self.scenarios,
            batch_sizes=batch_sizes or self.batch_sizes,
            device=device or self.device,
            dtype=self.dtype,
            amp=self.amp,
            compile=self.compile,
            threads=self.threads,
            allow_pickle=self.allow_pickle or allow_pickle,
            timeout_s=self.timeout_s,
            seed=self.seed,
            baseline=baseline,
        )


def read_scenario(name: str, reader: FieldReader, defaults: ScenarioSettings) -> ScenarioSettings:
    """Read one scenario's settings on top of ``defaults``."""
    values: dict[str, Any] = {"name": name}
    for key, (kind, bound) in _SCENARIO_FIELDS.items():
        attr = _FIELD_TO_ATTR.get(key, key)
        default = getattr(defaults, attr)
        if kind == "int":
            values[attr] = reader.number(key, default, ge=bound, integer=True)
        elif kind == "duration":
            values[attr] = reader.duration_s(key, default, ge=bound)
        elif kind == "duration_pos":
            values[attr] = reader.duration_s(key, default, gt=0)
        elif kind == "pos":
            values[attr] = reader.number(key, default, gt=0)
        elif kind == "percentile":
            values[attr] = reader.number(key, default, gt=0, le=99.999)
        else:
            values[attr] = reader.boolean(key, default)
    settings = ScenarioSettings(**values)
    if settings.max_duration_s < settings.min_duration_s:
        raise reader.error("max_duration", f"must be >= min_duration ({settings.min_duration_s:g}s)")
    if settings.max_query_count < settings.min_query_count:
        raise reader.error("max_query_count", f"must be >= min_query_count ({settings.min_query_count})")
    reader.finish()
    return settings


def read_bench_config(reader: FieldReader, base: BenchConfig | None = None) -> BenchConfig:
    """Read a benchmark config from ``reader`` (a whole file or the daemon's ``benchmark:`` section)."""
    base = base or BenchConfig()
    defaults = read_scenario("single_stream", reader.child("defaults"), ScenarioSettings())
    scenarios = _read_scenarios(reader, defaults) or base.scenarios
    device = reader.string("device", base.device)
    if not (device in ("auto", "cpu", "cuda") or (device.startswith("cuda:") and device[5:].isdigit())):
        raise reader.error("device", f"must be auto, cpu, cuda or cuda:N; got {device!r}")
    config = BenchConfig(
        scenarios=scenarios,
        batch_sizes=reader.int_list("batch_sizes", base.batch_sizes),
        device=device,
        dtype=reader.string("dtype", base.dtype, DTYPES),
        amp=reader.boolean("amp", base.amp),
        compile=reader.boolean("compile", base.compile),
        threads=reader.number("threads", base.threads, ge=1, integer=True),
        timeout_s=reader.duration_s("timeout", base.timeout_s, gt=0),
        seed=reader.number("seed", base.seed, ge=0, integer=True),
        allow_pickle=reader.boolean("allow_pickle", base.allow_pickle),
    )
    reader.finish()
    return config


def _read_scenarios(reader: FieldReader, defaults: ScenarioSettings) -> tuple[ScenarioSettings, ...]:
    raw = reader.raw("scenarios")
    if raw is None:
        return ()
    path = reader.child_path("scenarios")
    if isinstance(raw, str):
        raw = [s.strip() for s in raw.split(",") if s.strip()]
    if isinstance(raw, list):
        raw = {name: {} for name in raw} if all(isinstance(n, str) for n in raw) else raw
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(
            path, "expected a list of scenario names or a mapping name -> settings", reader.source
        )
    out = []
    for name, body in raw.items():
        if name not in SCENARIOS:
            raise ConfigError(
                f"{path}.{name}", f"unknown scenario; known: {', '.join(SCENARIOS)}", reader.source
            )
        out.append(read_scenario(name, FieldReader(body, f"{path}.{name}", reader.source), defaults))
    return tuple(out)


def _load_yaml(path: str | os.PathLike[str]) -> Any:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", "config file not found", str(p)) from None
    except OSError as e:
        raise ConfigError("", f"cannot read config file: {e.strerror}", str(p)) from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"not valid YAML{where}: {getattr(e, 'problem', e)}", str(p)) from e


def load_bench_config(path: str | os.PathLike[str]) -> BenchConfig:
    """Load a benchmark config file.

    Raises:
        ConfigError: naming the file and field path of the first problem.
    """
    return read_bench_config(FieldReader(_load_yaml(path), "", str(path)))


def bench_config_from(value: Any) -> BenchConfig:
    """Return a BenchConfig from a BenchConfig, a YAML path, a dict of fields, or None (defaults)."""
    if value is None:
        return BenchConfig()
    if isinstance(value, BenchConfig):
        return value
    if isinstance(value, (str, os.PathLike)):
        return load_bench_config(value)
    if isinstance(value, dict):
        return read_bench_config(FieldReader(value, "", "<dict>"))
    raise ConfigError("", f"config must be a BenchConfig, a path or a dict, not {type(value).__name__}")


# ---------------------------------------------------------------- daemon config


@dataclass(frozen=True)
class RegistryConfig:
    """One model registry to watch; ``options`` holds the type-specific fields, validated."""

    name: str
    type: str
    poll_interval_s: float
    allow_pickle: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VerdictConfig:
    """How candidates are compared with their baseline (see README "How verdicts are decided")."""

    mode: str = "batch"
    threshold: float = 0.10
    min_effect: float | None = None
    min_pairs: int = 6
    max_pairs: int = 20
    trial_s: float = 2.0
    time_cap_s: float = 300.0
    thresholds: dict[str, float] = field(default_factory=dict)
    inconclusive_passes: bool = False


@dataclass(frozen=True)
class DaemonConfig:
    """The daemon's whole configuration (``benchd run``)."""

    data_dir: str
    http_host: str = "127.0.0.1"
    http_port: int = DEFAULT_PORT
    api_token_env: str = "BENCHD_API_TOKEN"
    max_body_bytes: int = 1 << 20
    store_url: str = ""
    device_mode: str = "auto"
    require_gpu: bool = False
    fake_devices: dict[str, Any] = field(default_factory=dict)
    registries: tuple[RegistryConfig, ...] = ()
    benchmark: BenchConfig = BenchConfig()
    verdict: VerdictConfig = VerdictConfig()
    latest_versions: int = 3
    latency_buckets_s: tuple[float, ...] | None = None
    champion_cron: str | None = None
    grace_s: float = 30.0
    source: str = "<embedded default>"

    @property
    def store_path(self) -> str:
        """The SQLite file the store URL names."""
        return self.store_url.removeprefix("sqlite:///") if self.store_url.startswith("sqlite:///") else ""


_REGISTRY_FIELDS = {
    "local": ("root", "settle"),
    "mlflow": (
        "tracking_uri",
        "models",
        "champion_alias",
        "auth",
        "verify_tls",
        "ca_bundle",
        "max_artifact_bytes",
        "webhook_secret_env",
        "timeout",
    ),
}


def default_data_dir() -> str:
    """``$BENCHD_HOME`` or ``~/.local/share/benchd``."""
    return os.environ.get("BENCHD_HOME") or str(Path.home() / ".local" / "share" / "benchd")


def _expand(value: str, data_dir: str) -> str:
    return os.path.expanduser(os.path.expandvars(value.replace("${data_dir}", data_dir)))


def read_daemon_config(data: Any, source: str) -> DaemonConfig:
    """Validate a parsed daemon config document."""
    top = FieldReader(data, "", source)
    data_dir = _expand(top.string("data_dir", "") or default_data_dir(), "")
    http, store, devices, export = (
        top.child("http"),
        top.child("store"),
        top.child("devices"),
        top.child("export"),
    )
    registries = _read_registries(top, data_dir)
    names = [r.name for r in registries]
    if len(set(names)) != len(names):
        raise ConfigError("registries", f"registry names must be unique, got {names}", source)
    verdict_r = top.child("verdict")
    verdict = VerdictConfig(
        mode=verdict_r.string("mode", "batch", VERDICT_MODES),
        threshold=verdict_r.number("threshold", 0.10, gt=0, le=1),
        min_effect=verdict_r.number("min_effect", None, gt=0, le=1),
        min_pairs=verdict_r.number("min_pairs", 6, ge=2, integer=True),
        max_pairs=verdict_r.number("max_pairs", 20, ge=2, integer=True),
        trial_s=verdict_r.duration_s("trial", 2.0, gt=0),
        time_cap_s=verdict_r.duration_s("time_cap", 300.0, gt=0),
        thresholds=_read_thresholds(verdict_r.child("thresholds")),
        inconclusive_passes=verdict_r.boolean("inconclusive_passes", False),
    )
    if verdict.max_pairs < verdict.min_pairs:
        raise verdict_r.error("max_pairs", f"must be >= min_pairs ({verdict.min_pairs})")
    buckets = export.raw("latency_buckets")
    config = DaemonConfig(
        data_dir=data_dir,
        http_host=http.string("host", "127.0.0.1"),
        http_port=http.number("port", DEFAULT_PORT, ge=0, le=65535, integer=True),
        api_token_env=http.string("api_token_env", "BENCHD_API_TOKEN"),
        max_body_bytes=http.number("max_body_bytes", 1 << 20, ge=1024, integer=True),
        store_url=_expand(store.string("url", "sqlite:///${data_dir}/benchd.sqlite"), data_dir),
        device_mode=devices.string("mode", "auto", DEVICE_MODES),
        require_gpu=devices.boolean("require_gpu", False),
        fake_devices=dict(devices.raw("fake", {})),
        registries=registries,
        benchmark=read_bench_config(top.child("benchmark"), BenchConfig(timeout_s=600.0)),
        verdict=verdict,
        latest_versions=export.number("latest_versions", 3, ge=1, integer=True),
        latency_buckets_s=_read_buckets(export, buckets) if buckets is not None else None,
        champion_cron=top.string("champion_cron", None),
        grace_s=top.duration_s("shutdown_grace", 30.0, ge=0),
        source=source,
    )
    if not config.store_url.startswith(("sqlite:///", "postgresql://", "postgres://")):
        raise store.error(
            "url",
            f"only sqlite:///PATH or postgresql://... is supported in this version, got {config.store_url!r}",
        )
    for r in (http, store, devices, export, top):
        r.finish()
    return config


def _read_thresholds(reader: FieldReader) -> dict[str, float]:
    out = {key: reader.number(key, None, gt=0, le=1) for key in list(reader.data)}
    reader.finish(("p99_latency", "p50_latency", "throughput", "energy_per_sample"))
    return out


def _read_buckets(export: FieldReader, raw: Any) -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise export.error("latency_buckets", "expected a non-empty list of durations")
    from benchd.config_fields import parse_duration_s

    values = [parse_duration_s(v, f"export.latency_buckets[{i}]", export.source) for i, v in enumerate(raw)]
    if any(b <= a for a, b in zip(values, values[1:], strict=False)):
        raise export.error("latency_buckets", "bucket bounds must be strictly increasing")
    return tuple(values)


def _read_registries(top: FieldReader, data_dir: str) -> tuple[RegistryConfig, ...]:
    raw = top.raw("registries", [])
    if not isinstance(raw, list):
        raise top.error("registries", "expected a list of registries")
    out = []
    for i, item in enumerate(raw):
        r = FieldReader(item, f"registries[{i}]", top.source)
        kind = r.string("type", None, tuple(_REGISTRY_FIELDS))
        if kind is None:
            raise r.error("type", f"is required: one of {', '.join(_REGISTRY_FIELDS)}")
        name = r.string("name", kind)
        options: dict[str, Any] = {}
        if kind == "local":
            options["root"] = _expand(r.string("root", "${data_dir}/models"), data_dir)
            options["settle_s"] = r.duration_s("settle", 5.0, ge=0)
        else:
            uri = r.string("tracking_uri", None)
            if not uri or not uri.startswith(("http://", "https://")):
                raise r.error("tracking_uri", f"must be an http(s) URL, got {uri!r}")
            options["tracking_uri"] = uri
            models = r.raw("models")
            if models is not None and not (
                isinstance(models, list) and all(isinstance(m, str) for m in models)
            ):
                raise r.error("models", "expected a list of registered model names")
            options["models"] = models
            options["champion_alias"] = r.string("champion_alias", "champion")
            options["verify_tls"] = r.boolean("verify_tls", True)
            options["ca_bundle"] = r.string("ca_bundle", None)
            options["max_artifact_bytes"] = r.number("max_artifact_bytes", 2 << 30, ge=1, integer=True)
            options["webhook_secret_env"] = r.string("webhook_secret_env", None)
            options["timeout_s"] = r.duration_s("timeout", 10.0, gt=0)
            auth = r.child("auth")
            options["auth"] = {
                k: auth.string(k, None) for k in ("username_env", "password_env", "bearer_token_env")
            }
            auth.finish()
        out.append(
            RegistryConfig(
                name=name,
                type=kind,
                poll_interval_s=r.duration_s("poll_interval", 10.0 if kind == "local" else 30.0, gt=0),
                allow_pickle=r.boolean("allow_pickle", False),
                options=options,
            )
        )
        r.finish()
    return tuple(out)


def embedded_default_text() -> str:
    """The embedded default daemon config (identical to ``configs/default.yaml``)."""
    return resources.files("benchd").joinpath("defaults/default.yaml").read_text(encoding="utf-8")


def load_daemon_config(path: str | os.PathLike[str] | None = None) -> DaemonConfig:
    """Load the daemon config from ``path``, or the embedded default when ``path`` is None.

    Raises:
        ConfigError: naming the file and field path of the first problem.
    """
    if path is None:
        return read_daemon_config(yaml.safe_load(embedded_default_text()), "<embedded default>")
    return read_daemon_config(_load_yaml(path), str(path))
