"""Reading config files: YAML -> validated config, every problem at once; and back to YAML (``config show``).

One file format serves both commands: ``benchd run`` reads a daemon config; ``benchd bench`` and
:func:`benchd.evaluate` read its ``benchmark:`` section, or a bare benchmark file. Which one a file is
follows from its top-level keys, since the two sets of names do not overlap (:func:`config_kind`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from benchd.config.bench import BenchConfig
from benchd.config.daemon import DaemonConfig
from benchd.config.problems import InvalidConfigError, Problem, field_names, raise_problems
from benchd.errors import ConfigError

EMBEDDED_SOURCE = "<embedded default>"
DAEMON_KEYS = frozenset(field_names(DaemonConfig))
BENCH_KEYS = frozenset(field_names(BenchConfig))


def embedded_default_text() -> str:
    """The embedded default daemon config (identical to ``configs/default.yaml``)."""
    return resources.files("benchd").joinpath("defaults/default.yaml").read_text(encoding="utf-8")


def load_yaml(path: str | os.PathLike[str]) -> Any:
    """Parse a YAML file (``-``: standard input).

    Raises:
        ConfigError: the file is missing, unreadable or not YAML (naming the line).
    """
    p = Path(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("", "config file not found", str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError("", f"cannot read config file: {getattr(e, 'strerror', None) or e}", str(p)) from e
    return parse_yaml(text, str(path))


def parse_yaml(text: str, source: str) -> Any:
    """Parse YAML text.

    Raises:
        ConfigError: not YAML, naming the line and column.
    """
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError("", f"not valid YAML{where}: {getattr(e, 'problem', e)}", source) from e


def apply_overrides(data: Any, overrides: Mapping[str, Any]) -> Any:
    """``data`` with each ``dotted.path: value`` of ``overrides`` set (None values are skipped)."""
    if not overrides:
        return data
    out = dict(data) if isinstance(data, Mapping) else ({} if data is None else data)
    if not isinstance(out, dict):
        return out  # not a mapping: validation reports it
    for dotted, value in overrides.items():
        if value is None:
            continue
        *parents, key = dotted.split(".")
        node = out
        for part in parents:
            child = node.get(part)
            node[part] = dict(child) if isinstance(child, Mapping) else {}
            node = node[part]
        node[key] = value
    return out


def _validate(model: type[BaseModel], data: Any, source: str | None) -> Any:
    try:
        return model.model_validate({} if data is None else data)
    except ValidationError as e:
        raise_problems(e, model, source)


def read_daemon_config(
    data: Any, source: str = "<dict>", overrides: Mapping[str, Any] | None = None
) -> DaemonConfig:
    """Validate a parsed daemon config document.

    Args:
        data: the parsed YAML (a mapping; None is the empty config).
        source: where it came from, for error messages.
        overrides: ``dotted.path: value`` applied first (``{"http.port": 9000}``); None values are skipped.

    Raises:
        InvalidConfigError: every invalid field, each with its path.
    """
    config: DaemonConfig = _validate(DaemonConfig, apply_overrides(data, overrides or {}), source)
    config._source = source
    return config


def load_daemon_config(
    path: str | os.PathLike[str] | None = None, overrides: Mapping[str, Any] | None = None
) -> DaemonConfig:
    """Load the daemon config from ``path`` (``-``: stdin), or the embedded default when ``path`` is None.

    Raises:
        ConfigError: the file cannot be read or parsed; InvalidConfigError (a ConfigError) listing every
            invalid field, each with its path.
    """
    if path is None:
        return read_daemon_config(
            parse_yaml(embedded_default_text(), EMBEDDED_SOURCE), EMBEDDED_SOURCE, overrides
        )
    return read_daemon_config(load_yaml(path), str(path), overrides)


def config_kind(data: Any) -> Literal["daemon", "bench"]:
    """``daemon`` when a document has a daemon section (``http``, ``registries``, ``benchmark``, ...).

    Anything else (a bare benchmark config, an empty file) is ``bench``.
    """
    return "daemon" if isinstance(data, Mapping) and DAEMON_KEYS & set(data) else "bench"


def read_any_config(data: Any, source: str = "<dict>") -> DaemonConfig | BenchConfig:
    """Validate a daemon config or a bare benchmark config, whichever ``data`` is (see :func:`config_kind`).

    Raises:
        InvalidConfigError: every invalid field; a benchmark field at the top of a daemon config is one.
    """
    if config_kind(data) == "bench":
        return _validate(BenchConfig, data, source)
    misplaced = sorted(BENCH_KEYS & set(data))
    if misplaced:
        daemon_keys = ", ".join(sorted(DAEMON_KEYS & set(data)))
        raise InvalidConfigError(
            [
                Problem(key, f"a benchmark field at the top of a daemon config (it has {daemon_keys}): "
                        f"move it under benchmark:")
                for key in misplaced
            ],
            source,
        )  # fmt: skip
    return read_daemon_config(data, source)


def read_bench_config(data: Any, source: str = "<dict>") -> BenchConfig:
    """The benchmark config of a daemon config document (its ``benchmark:``) or of a bare benchmark one."""
    config = read_any_config(data, source)
    return config.benchmark if isinstance(config, DaemonConfig) else config


def load_bench_config(path: str | os.PathLike[str]) -> BenchConfig:
    """Load a benchmark config: a daemon config file (its ``benchmark:`` section) or a bare benchmark file.

    Raises:
        ConfigError: the file cannot be read; InvalidConfigError listing every invalid field.
    """
    return read_bench_config(load_yaml(path), str(path))


def bench_config_from(value: Any) -> BenchConfig:
    """A BenchConfig from a BenchConfig, a DaemonConfig, a YAML path, a dict, or None (the defaults).

    Paths and dicts may be a daemon config (its ``benchmark:`` section is used) or a bare benchmark config.

    Raises:
        ConfigError: an unreadable file or an invalid config (every problem, each with its path).
    """
    if value is None:
        return BenchConfig()
    if isinstance(value, BenchConfig):
        return value
    if isinstance(value, DaemonConfig):
        return value.benchmark
    if isinstance(value, (str, os.PathLike)):
        return load_bench_config(value)
    if isinstance(value, Mapping):
        return read_bench_config(dict(value), "<dict>")
    raise ConfigError("", f"config must be a BenchConfig, a path or a dict, not {type(value).__name__}")


def show_yaml(config: DaemonConfig) -> str:
    """The effective config as YAML with the documented names and units (``poll_interval: 10s``).

    ``benchd config validate`` accepts it, and showing what it validates to prints the same text.
    """
    data = config.model_dump(mode="json", by_alias=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
