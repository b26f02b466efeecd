"""``benchd config validate|show|schema|reference``: check a config, print it, or print its documentation."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from benchd.cli.run import EXIT_CONFIG, print_config_error
from benchd.config import embedded_default_text, load_daemon_config, show_yaml
from benchd.errors import ConfigError


def add_parser(sub: Any) -> None:
    """Register ``config validate``, ``show``, ``schema`` and ``reference`` on the CLI's subparsers."""
    config = sub.add_parser(
        "config",
        help="validate or show a daemon config, or print its JSON Schema or field reference",
        description="Check a daemon config, print the effective one, or print the documentation generated "
        "from the config's declaration.",
    )
    csub = config.add_subparsers(dest="config_command", metavar="ACTION")
    csub.required = True
    validate = csub.add_parser(
        "validate",
        help="check config files; print every problem with its field path and exit 2",
        description="Check daemon config files the way 'benchd run' reads them. Every problem is printed on "
        "its own line as FILE: field.path: problem; the exit status is 2 when any file has one.",
    )
    validate.add_argument("files", nargs="+", metavar="FILE", help="config YAML ('-' reads standard input)")
    validate.set_defaults(handler=cmd_config_validate)
    show = csub.add_parser(
        "show",
        help="print the effective config (defaults filled in) as YAML",
        description="Print the effective config with the documented names and units "
        "(poll_interval: 10s); 'benchd config validate' accepts the output as it is.",
    )
    show.add_argument("--config", help="config YAML, '-' for standard input [default: the embedded default]")
    show.add_argument("--embedded", action="store_true", help="print the embedded default file as written")
    show.set_defaults(handler=cmd_config_show)
    schema = csub.add_parser(
        "schema",
        help="print the config's JSON Schema (for editors; configs/benchd.schema.json)",
        description="Print the JSON Schema of the daemon config, generated from its declaration. Editors "
        "with the YAML language server use it via a '# yaml-language-server: $schema=...' line.",
    )
    schema.set_defaults(handler=cmd_config_schema)
    reference = csub.add_parser(
        "reference",
        help="print every config field with its default, unit and meaning (a Markdown table)",
    )
    reference.set_defaults(handler=cmd_config_reference)


def cmd_config_validate(args: argparse.Namespace) -> int:
    """``benchd config validate FILE...``: exit 0 when every file is valid, else 2."""
    status = 0
    for path in args.files:
        try:
            config = load_daemon_config(path)
        except ConfigError as e:
            print_config_error("benchd config validate", e)
            status = EXIT_CONFIG
            continue
        names = ", ".join(f"{r.name} ({r.type})" for r in config.registries) or "none"
        print(f"{path}: valid; registries: {names}; store {config.store.url}; port {config.http.port}")
    return status


def cmd_config_show(args: argparse.Namespace) -> int:
    """``benchd config show``."""
    if args.embedded:
        print(embedded_default_text(), end="")
        return 0
    try:
        config = load_daemon_config(args.config)
    except ConfigError as e:
        print_config_error("benchd config show", e)
        return EXIT_CONFIG
    sys.stdout.write(show_yaml(config))
    return 0


def cmd_config_schema(args: argparse.Namespace) -> int:
    """``benchd config schema``."""
    from benchd.config.reference import json_schema_text

    sys.stdout.write(json_schema_text())
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    """``benchd config reference``."""
    from benchd.config.reference import markdown_table

    sys.stdout.write(markdown_table())
    return 0
