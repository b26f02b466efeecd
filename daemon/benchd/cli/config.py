"""``benchd config validate|show``: check a daemon config, or print the effective one."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

import yaml

from benchd.cli.run import EXIT_CONFIG
from benchd.config import embedded_default_text, load_daemon_config
from benchd.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register ``config validate`` and ``config show`` on the CLI's subparsers."""
    config = sub.add_parser("config", help="validate or show a daemon config")
    csub = config.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    validate = csub.add_parser("validate", help="check a config file; exit 2 naming the bad field")
    validate.add_argument("file")
    validate.set_defaults(handler=cmd_config_validate)
    show = csub.add_parser("show", help="print the effective config (defaults filled in)")
    show.add_argument("--config", help="config YAML [default: the embedded default]")
    show.add_argument("--embedded", action="store_true", help="print the embedded default file as written")
    show.set_defaults(handler=cmd_config_show)


def cmd_config_validate(args: argparse.Namespace) -> int:
    """``benchd config validate FILE``."""
    try:
        config = load_daemon_config(args.file)
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return EXIT_CONFIG
    names = ", ".join(f"{r.name} ({r.type})" for r in config.registries) or "none"
    print(f"{args.file}: valid; registries: {names}; store {config.store_url}; port {config.http_port}")
    return 0


def cmd_config_show(args: argparse.Namespace) -> int:
    """``benchd config show``."""
    if args.embedded:
        print(embedded_default_text(), end="")
        return 0
    try:
        config = load_daemon_config(args.config)
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return EXIT_CONFIG
    print(
        yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(config), default=str)), sort_keys=False),
        end="",
    )
    return 0
