"""The ``benchd`` command line: ``run``, ``bench``, ``check``, ``history``, ``demo``, ``config``."""

from __future__ import annotations

import argparse
import sys

from benchd.cli import bench, calibrate, check, config, demo, history, run
from benchd.cli.logs import LOG_FORMATS, setup_logging
from benchd.version import __version__

#: Modules that each add one or more subcommands with ``add_parser(subparsers)``, in ``--help`` order.
COMMAND_MODULES = (run, bench, check, calibrate, history, demo, config)


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser, subcommands included."""
    parser = argparse.ArgumentParser(
        prog="benchd",
        description="benchd benchmarks every new model version a registry reports (MLPerf-style scenarios, "
        "latency percentiles, throughput, energy), decides whether it regressed against its "
        "baseline, and exports everything as Prometheus metrics.",
        epilog="Run 'benchd COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"benchd {__version__}")
    parser.add_argument(
        "--log-level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="log verbosity [default: INFO]",
    )
    parser.add_argument(
        "--log-format",
        default="text",
        choices=LOG_FORMATS,
        help="text: one line per record for people; json: one JSON object per line (time, level, logger, "
        "message and the record's fields) for log collectors [default: text]",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for module in COMMAND_MODULES:
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``benchd`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
