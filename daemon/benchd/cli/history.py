"""``benchd history``: recent runs from the store, as a table or JSON."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from benchd.cli.output import add_json_option, json_replaces_table, write_json
from benchd.cli.run import EXIT_CONFIG, load_with_overrides
from benchd.cli.tables import format_seconds, format_table
from benchd.errors import BenchdError

HEADER = (
    "run",
    "model",
    "version",
    "device",
    "state",
    "ended",
    "scenario",
    "bs",
    "p50",
    "p99",
    "samples/s",
    "note",
)


def add_parser(sub: Any) -> None:
    """Register ``history`` on the CLI's subparsers."""
    history = sub.add_parser(
        "history",
        help="print recent runs from the store",
        description="Print recent runs (newest first) with their headline figures.",
    )
    history.add_argument("--config", help="daemon config YAML (to find the store)")
    history.add_argument("--model", help="only this model")
    history.add_argument("--limit", type=int, default=20, help="how many runs [default: 20]")
    add_json_option(history, "the runs")
    history.set_defaults(handler=cmd_history)


def history_rows(runs: list[Any]) -> list[tuple[str, ...]]:
    """One row per (run, scenario result); a run without results gets one row with its note."""
    rows: list[tuple[str, ...]] = []
    for r in runs:
        ended = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(r.ended_unix_s)) if r.ended_unix_s else "-"
        results = r.result.results if r.result else ()
        note = (r.error or "").splitlines()[0][:60] if r.error else ""
        head = (str(r.id), r.model, r.version, r.device, r.state, ended)
        if not results:
            rows.append((*head, "-", "-", "-", "-", "-", note))
        for s in results:
            rows.append(
                (
                    *head,
                    s.scenario,
                    str(s.batch_size),
                    format_seconds(s.latency.p50_s),
                    format_seconds(s.latency.p99_s),
                    f"{s.throughput_sps:,.1f}",
                    note or ("" if s.valid else "INVALID"),
                )
            )
    return rows


def cmd_history(args: argparse.Namespace) -> int:
    """``benchd history``."""
    from benchd.history import open_store

    try:
        config = load_with_overrides(args.config)
        store = open_store(config.store.url)
    except BenchdError as e:
        print(f"benchd history: {e}", file=sys.stderr)
        return EXIT_CONFIG
    with store:
        runs = store.list_runs(model=args.model, limit=args.limit)
    if args.json:
        try:
            write_json([r.to_json() for r in runs], args.json)
        except BenchdError as e:
            print(f"benchd history: {e}", file=sys.stderr)
            return EXIT_CONFIG
        if json_replaces_table(args.json):
            return 0
    if not runs:
        print(f"no runs yet in {config.store.url}" + (f" for model {args.model!r}" if args.model else ""))
        return 0
    print(format_table(HEADER, history_rows(runs), rule=False))
    return 0
