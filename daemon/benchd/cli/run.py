"""``benchd run``: the daemon, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchd.config import DaemonConfig, load_daemon_config
from benchd.errors import BenchdError, ConfigError

EXIT_CONFIG = 2


def add_parser(sub: Any) -> None:
    """Register ``run`` on the CLI's subparsers."""
    run = sub.add_parser(
        "run",
        help="run the daemon: watch registries, benchmark new versions, export metrics",
        description="Run benchd's main job until SIGTERM/SIGINT. With no --config it uses the embedded "
        "default (configs/default.yaml): a local folder registry under $BENCHD_HOME (else "
        "~/.local/share/benchd)/models, a SQLite store beside it, the GPUs NVML finds (else the "
        "CPU), and /metrics plus the API on 127.0.0.1:9777. Exits 2 on a bad config.",
    )
    run.add_argument("--config", help="daemon config YAML [default: the embedded default]")
    run.add_argument("--port", type=int, help="override http.port")
    run.add_argument("--data-dir", help="override data_dir (store, local registry, run outputs)")
    run.set_defaults(handler=cmd_run)


def load_with_overrides(path: str | None, **overrides: Any) -> DaemonConfig:
    """Load the daemon config (the embedded default when ``path`` is None) with CLI overrides applied.

    ``http_port`` and ``data_dir`` are applied before validation, so they are checked like the file's
    values and ``${data_dir}`` in the store URL and registry roots follows an overridden data_dir.

    Raises:
        ConfigError: the config is invalid (every problem, each with its field path).
    """
    dotted = {"http_port": "http.port", "data_dir": "data_dir"}
    return load_daemon_config(path, overrides={dotted[k]: v for k, v in overrides.items()})


def print_config_error(command: str, error: ConfigError) -> None:
    """Print a config error to stderr: a header, then one ``FILE: path: problem`` line per problem."""
    lines = str(error).splitlines()
    count = len(getattr(error, "problems", ())) or 1
    print(f"{command}: invalid config ({count} problem{'s' if count > 1 else ''}):", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """``benchd run``."""
    try:
        config = load_with_overrides(args.config, http_port=args.port, data_dir=args.data_dir)
    except ConfigError as e:
        print_config_error("benchd run", e)
        return EXIT_CONFIG
    from benchd.service.app import BenchdApp

    try:
        app = BenchdApp(config)
    except BenchdError as e:
        print(f"benchd run: cannot start: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return app.run_forever()
