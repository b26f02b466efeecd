"""``benchd demo``: a local registry, three versions of a real model, the daemon deciding on each.

The demo writes model versions with ``python -m benchd.runner.zoo`` (so this process never imports
torch), runs the daemon in this process on a demo config, publishes v1, then a v2 that is measurably
slower and a v3 that is faster, and prints what the daemon decided. It keeps serving /metrics until
Ctrl-C (or exits when done with ``--exit``).
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from benchd.cli.tables import format_seconds
from benchd.config import DEFAULT_PORT, read_daemon_config
from benchd.records import COMPLETED_RUN_STATES

#: (version, MLP width, what it shows). Width scales the hidden layers, so compute grows ~width^2.
VERSIONS = (
    ("1", 6.0, "the baseline"),
    ("2", 8.0, "slower: wider layers"),
    ("3", 4.0, "faster: narrower layers"),
)
MODEL = "demo-mlp"


def add_parser(sub: Any) -> None:
    """Register ``demo`` on the CLI's subparsers."""
    p = sub.add_parser(
        "demo",
        help="see benchd catch a regression on a local registry (about two minutes on a CPU)",
        description="Create a local registry with three versions of a small real model "
        "(v2 slower, v3 faster), run the daemon on it, and show the runs and verdicts as they happen. "
        "Ctrl-C stops it.",
    )
    p.add_argument("--dir", help="where to put the demo's registry and store [default: a new temp folder]")
    p.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"HTTP port for /metrics and the API [default: {DEFAULT_PORT}]",
    )
    p.add_argument("--exit", action="store_true", help="exit when the demo is done instead of serving on")
    p.add_argument("--fast", action="store_true", help=argparse.SUPPRESS)  # shorter runs, for the test suite
    p.set_defaults(handler=cmd_demo)


def demo_config(root: Path, port: int, fast: bool = False) -> dict[str, Any]:
    """The daemon config the demo runs with: short runs and short verdict trials (shorter with ``fast``)."""
    scale = 0.4 if fast else 1.0
    return {
        "data_dir": str(root / "data"),
        "http": {"host": "127.0.0.1", "port": port},
        "devices": {"mode": "auto"},
        "registries": [
            {
                "name": "demo",
                "type": "local",
                "root": str(root / "models"),
                "poll_interval": "1s",
                "settle": "0.5s",
            }
        ],
        "benchmark": {
            "device": "auto",
            "threads": 1,
            "scenarios": {"single_stream": {}},
            "defaults": {
                "warmup": 0.5 * scale,
                "min_duration": 3.0 * scale,
                "max_duration": "10s",
                "min_query_count": 500,
            },
        },
        "verdict": {
            "mode": "batch",
            "threshold": 0.10,
            "min_pairs": 4,
            "max_pairs": 10,
            "trial": 1.0 * scale,
            "time_cap": 40.0 * scale,
        },
        "shutdown_grace": "5s",
    }


def _write_version(root: Path, version: str, width: float) -> None:
    staging = root / "staging" / version
    subprocess.run(
        [sys.executable, "-m", "benchd.runner.zoo", str(staging), "mlp", "--width", str(width)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    target = root / "models" / MODEL / version
    target.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(target)  # appears complete at once (READY marker inside)


def _wait_run(app: Any, version: str, stop: threading.Event) -> Any:
    while not stop.is_set():
        runs = [r for r in app.store.list_runs(model=MODEL, limit=20) if r.version == version]
        if runs and runs[0].finished and not app.workers[0].current:
            return runs[0]
        stop.wait(0.5)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo."""
    from benchd.service.app import BenchdApp

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="benchd-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    raw = demo_config(root, args.port, args.fast)
    config = read_daemon_config(raw, "<demo>")
    (root / "benchd.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(f"benchd demo in {root}\n  registry: {root / 'models'}\n  config:   {root / 'benchd.yaml'}")
    app = BenchdApp(config)
    app.start()
    url = app.http.url
    print(f"  daemon:   {url}/metrics  {url}/api/v1/runs\n")
    started = time.monotonic()
    try:
        for version, width, what in VERSIONS:
            if stop.is_set():
                break
            print(f"[{time.monotonic() - started:5.0f}s] publishing {MODEL} v{version} ({what})", flush=True)
            _write_version(root, version, width)
            record = _wait_run(app, version, stop)
            if record is None:
                break
            _report(app, record)
        print(f"\ndone in {time.monotonic() - started:.0f} s. Where to look:")
        print(f"  curl -s {url}/metrics | grep benchd_regression")
        print(f"  benchd history --config {root / 'benchd.yaml'}")
        print(
            f"  benchd check --config {root / 'benchd.yaml'} --model {MODEL} --version 2"
            "   # exits 1: regressed"
        )
        if not args.exit and not stop.is_set():
            print("\nthe daemon keeps running; Ctrl-C stops it")
            stop.wait()
    finally:
        app.stop()
        print(f"the demo's registry, store and run outputs stay in {root} (delete it when done)")
    return 0


def _report(app: Any, record: Any) -> None:
    if record.state not in COMPLETED_RUN_STATES or record.result is None:
        print(f"        run {record.id}: {record.state}: {record.error}")
        return
    for r in record.result.results:
        print(
            f"        run {record.id}: {r.scenario} p50 {format_seconds(r.latency.p50_s)}  "
            f"p99 {format_seconds(r.latency.p99_s)}  {r.throughput_qps:,.0f} queries/s"
        )
    verdict = app.store.verdict_for(MODEL, record.version)
    if verdict is None:
        print("        verdict: none (the first version has no baseline)")
        return
    print(f"        verdict vs v{verdict.baseline_version}: {verdict.state.upper()}")
    for m in verdict.metrics:
        print(f"          {m.metric:<18} x{m.ratio:.3f}  [{m.ratio_low:.3f}, {m.ratio_high:.3f}]  {m.state}")
