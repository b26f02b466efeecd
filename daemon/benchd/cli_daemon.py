"""``benchd run``, ``benchd history`` and ``benchd config validate|show``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import yaml

from benchd.config import DaemonConfig, embedded_default_text, load_daemon_config
from benchd.errors import BenchdError, ConfigError

EXIT_CONFIG = 2


def add_parser(sub: Any) -> None:
    """Register ``run``, ``history`` and ``config`` on the CLI's subparsers."""
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

    history = sub.add_parser(
        "history",
        help="print recent runs from the store",
        description="Print recent runs (newest first) with their headline figures.",
    )
    history.add_argument("--config", help="daemon config YAML (to find the store)")
    history.add_argument("--model", help="only this model")
    history.add_argument("--limit", type=int, default=20, help="how many runs [default: 20]")
    history.add_argument("--json", action="store_true", help="print JSON instead of a table")
    history.set_defaults(handler=cmd_history)

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


def _load(path: str | None, **overrides: Any) -> DaemonConfig:
    import dataclasses

    config = load_daemon_config(path)
    changes = {k: v for k, v in overrides.items() if v is not None}
    if "data_dir" in changes and path is None:
        import os

        os.environ["BENCHD_HOME"] = changes.pop("data_dir")
        config = load_daemon_config(None)
    return dataclasses.replace(config, **changes) if changes else config


def cmd_run(args: argparse.Namespace) -> int:
    """``benchd run``."""
    try:
        config = _load(args.config, http_port=args.port, data_dir=args.data_dir)
    except ConfigError as e:
        print(f"benchd run: invalid config: {e}", file=sys.stderr)
        return EXIT_CONFIG
    from benchd.app import BenchdApp

    try:
        app = BenchdApp(config)
    except BenchdError as e:
        print(f"benchd run: cannot start: {e}", file=sys.stderr)
        return EXIT_CONFIG
    return app.run_forever()


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1e3:.3f}"


def cmd_history(args: argparse.Namespace) -> int:
    """``benchd history``."""
    from benchd.history import open_store

    try:
        config = _load(args.config)
        store = open_store(config.store_url)
    except BenchdError as e:
        print(f"benchd history: {e}", file=sys.stderr)
        return EXIT_CONFIG
    with store:
        runs = store.list_runs(model=args.model, limit=args.limit)
        if args.json:
            print(json.dumps([r.to_json() for r in runs], indent=1))
            return 0
        if not runs:
            print(f"no runs yet in {config.store_url}" + (f" for model {args.model!r}" if args.model else ""))
            return 0
        rows = [
            (
                "run",
                "model",
                "version",
                "device",
                "state",
                "ended",
                "scenario",
                "bs",
                "p50 ms",
                "p99 ms",
                "samples/s",
                "note",
            )
        ]
        for r in runs:
            ended = (
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ended_unix_s)) if r.ended_unix_s else "-"
            )
            results = r.result.results if r.result else ()
            note = (r.error or "").splitlines()[0][:60] if r.error else ""
            if not results:
                rows.append(
                    (str(r.id), r.model, r.version, r.device, r.state, ended, "-", "-", "-", "-", "-", note)
                )
            for s in results:
                rows.append(
                    (
                        str(r.id),
                        r.model,
                        r.version,
                        r.device,
                        r.state,
                        ended,
                        s.scenario,
                        str(s.batch_size),
                        _ms(s.latency.p50_s),
                        _ms(s.latency.p99_s),
                        f"{s.throughput_sps:,.1f}",
                        note or ("" if s.valid else "INVALID"),
                    )
                )
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return 0


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
    import dataclasses

    print(
        yaml.safe_dump(json.loads(json.dumps(dataclasses.asdict(config), default=str)), sort_keys=False),
        end="",
    )
    return 0
