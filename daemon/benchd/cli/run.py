"""``benchd run``: the daemon, until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from benchd.config import DaemonConfig, load_daemon_config
from benchd.errors import BenchdError, ConfigError
from benchd.redaction import install_log_redaction, redact, secret_values

EXIT_CONFIG = 2
logger = logging.getLogger(__name__)


def add_parser(sub: Any) -> None:
    """Register ``run`` on the CLI's subparsers."""
    run = sub.add_parser(
        "run",
        help="run the daemon: watch registries, benchmark new versions, export metrics",
        description="Run benchd's main job until SIGTERM/SIGINT. With no --config it uses the embedded "
        "default (configs/default.yaml): a local folder registry under $BENCHD_HOME (else "
        "~/.local/share/benchd)/models, a SQLite store beside it, the GPUs NVML finds (else the "
        "CPU), and /metrics plus the API on 127.0.0.1:9777. Exits 2, with one sentence on stderr, "
        "when it cannot start: a bad config, another benchd on the same data dir, the port in use, "
        "an unwritable data dir, or a store it cannot open or read.",
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
    lines = redact(str(error), secret_values()).splitlines()
    count = len(getattr(error, "problems", ())) or 1
    print(f"{command}: invalid config ({count} problem{'s' if count > 1 else ''}):", file=sys.stderr)
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> int:
    """``benchd run``."""
    install_log_redaction()  # every line the daemon logs: URL passwords, tokens, secret env values
    try:
        config = load_with_overrides(args.config, http_port=args.port, data_dir=args.data_dir)
    except ConfigError as e:
        print_config_error("benchd run", e)
        return EXIT_CONFIG
    from benchd.service.app import BenchdApp
    from benchd.service.lifecycle import make_undumpable, one_line

    make_undumpable()  # a worker (same user) must not read our environment or memory through /proc

    app = None
    try:
        app = BenchdApp(config)
        app.start()
    except Exception as e:  # noqa: BLE001 - every start-up failure: one sentence, exit 2
        logger.debug("start-up failed", exc_info=True)
        if app is not None:
            try:
                app.close()
            except Exception:  # noqa: BLE001 - the first failure is the one to report
                logger.debug("closing after the failed start failed too", exc_info=True)
        why = one_line(str(e)) if isinstance(e, (BenchdError, OSError)) else f"{type(e).__name__}: {e}"
        print(f"benchd run: cannot start: {redact(why, secret_values())}", file=sys.stderr)
        return EXIT_CONFIG
    return app.serve_forever()
