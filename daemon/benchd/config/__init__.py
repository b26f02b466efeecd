"""benchd's configuration: every field declared once (type, default, unit, doc) as a pydantic model.

From those declarations come the parser (every problem at once, each with its field path), the defaults
the code uses (``VerdictConfig()`` is what an empty YAML gives), ``benchd config show`` (YAML with the
documented names and units, which validates back to the same config), the JSON Schema shipped for editors
(``configs/benchd.schema.json``) and the README's configuration table (:mod:`benchd.config.reference`).

Two documents share the models: the daemon config (``benchd run``, :class:`DaemonConfig`) and the
benchmark config (``benchd bench``, :func:`benchd.evaluate`, the daemon config's ``benchmark:`` section,
:class:`BenchConfig`). Importing this package imports pydantic and yaml, never torch.
"""

from __future__ import annotations

from benchd.config.bench import DTYPES, BenchConfig, ScenarioConfig
from benchd.config.daemon import (
    DaemonConfig,
    DevicesConfig,
    ExportConfig,
    StoreConfig,
    VerdictConfig,
    default_data_dir,
)
from benchd.config.fake_devices import FakeDevicesConfig, FakeGPUConfig
from benchd.config.http import HttpConfig
from benchd.config.loading import (
    EMBEDDED_SOURCE,
    bench_config_from,
    config_kind,
    embedded_default_text,
    load_bench_config,
    load_daemon_config,
    load_yaml,
    read_any_config,
    read_bench_config,
    read_daemon_config,
    show_yaml,
)
from benchd.config.problems import InvalidConfigError, Problem
from benchd.config.registries import (
    AnyRegistryConfig,
    LocalRegistryConfig,
    MLflowAuthConfig,
    MLflowRegistryConfig,
    RegistryConfig,
)
from benchd.config.units import format_duration, parse_duration_s
from benchd.config.workers import RunsConfig, WorkersConfig
from benchd.errors import ConfigError

#: The HTTP port when the config names none.
DEFAULT_PORT: int = HttpConfig.model_fields["port"].default

__all__ = [
    "DEFAULT_PORT",
    "DTYPES",
    "EMBEDDED_SOURCE",
    "AnyRegistryConfig",
    "BenchConfig",
    "ConfigError",
    "InvalidConfigError",
    "DaemonConfig",
    "DevicesConfig",
    "ExportConfig",
    "FakeDevicesConfig",
    "FakeGPUConfig",
    "HttpConfig",
    "LocalRegistryConfig",
    "MLflowAuthConfig",
    "MLflowRegistryConfig",
    "Problem",
    "RegistryConfig",
    "RunsConfig",
    "ScenarioConfig",
    "StoreConfig",
    "VerdictConfig",
    "WorkersConfig",
    "bench_config_from",
    "config_kind",
    "default_data_dir",
    "embedded_default_text",
    "format_duration",
    "load_bench_config",
    "load_daemon_config",
    "load_yaml",
    "parse_duration_s",
    "read_any_config",
    "read_bench_config",
    "read_daemon_config",
    "show_yaml",
]
