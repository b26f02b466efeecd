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

from benchd.cli.logs import log_to_file
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
        "verdict": demo_verdict(fast),
        "shutdown_grace": "5s",
    }


def demo_verdict(fast: bool = False) -> dict[str, Any]:
    """The demo's verdict settings: short batches (shorter with ``fast``), no calibration batches.

    ``benchd calibrate`` measures the noise floor on demand; the demo skips it to show its story in minutes.
    """
    scale = 0.4 if fast else 1.0
    return {
        "mode": "batch",
        "threshold": 0.10,
        "min_pairs": 4,
        "max_pairs": 12,
        "trial": 1.0 * scale,
        "trial_queries": 2000,
        "time_cap": 60.0 * scale,
        "calibration_batches": 0,
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


class Story:
    """The demo's own lines on stdout, each stamped with the seconds since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        """Print a stamped line."""
        print(f"[{time.monotonic() - self.started:4.0f} s] {text}", flush=True)

    def more(self, text: str) -> None:
        """Print a continuation line under the last stamped one."""
        print(f"         {text}", flush=True)


def _follow(app: Any, version: str, first: bool, story: Story, stop: threading.Event) -> Any:
    """Tell the run of ``version`` as it happens; return its record once the daemon is done with it."""
    told = set()
    while not stop.is_set():
        runs = [r for r in app.store.list_runs(model=MODEL, limit=20) if r.version == version]
        record = runs[0] if runs else None
        if record is not None:
            busy = app.is_busy(record.id)
            if "started" not in told and record.state != "queued":
                told.add("started")
                story.say(f"v{version}: the daemon noticed it and started run {record.id} on {record.device}")
            if record.finished and "ended" not in told:
                told.add("ended")
                _report_run(story, version, record)
                if busy and not first and record.state in COMPLETED_RUN_STATES:
                    story.say(
                        f"v{version}: comparing it with its baseline in one batch of short interleaved "
                        "trials (A B, B A, ...) on the same device"
                    )
            if record.finished and not busy:
                return record
        stop.wait(0.3)
    return None


def cmd_demo(args: argparse.Namespace) -> int:
    """Run the demo."""
    from benchd.service.app import BenchdApp

    root = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="benchd-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    raw = demo_config(root, args.port, args.fast)
    config = read_daemon_config(raw, "<demo>")
    (root / "benchd.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    log_path = root / "benchd.log"
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"benchd demo: a local registry, three versions of a small MLP, and the daemon deciding on each.\n"
        f"  folder:     {root}\n"
        f"  registry:   {root / 'models'}\n"
        f"  config:     {root / 'benchd.yaml'}\n"
        f"  daemon log: {log_path}   (tail -f it to watch the daemon work)",
        flush=True,
    )
    with log_to_file(log_path, getattr(args, "log_format", "text")):
        return _run_demo(BenchdApp(config), root, args, stop)


def _run_demo(app: Any, root: Path, args: argparse.Namespace, stop: threading.Event) -> int:
    app.start()
    url = app.http.url
    print(f"  daemon:     {url}/metrics  {url}/api/v1/runs\n", flush=True)
    story = Story()
    config_path = root / "benchd.yaml"
    try:
        for i, (version, width, what) in enumerate(VERSIONS):
            if stop.is_set():
                break
            story.say(f"publishing {MODEL} v{version} ({what}) into the registry")
            _write_version(root, version, width)
            record = _follow(app, version, i == 0, story, stop)
            if record is None:
                break
            _report_verdict(app, story, record, first=i == 0)
        if not stop.is_set():
            story.say("done. Where to look:")
            story.more(f"curl -s {url}/metrics | grep benchd_regression")
            story.more(f"benchd history --config {config_path}")
            story.more(
                f"benchd check --config {config_path} --model {MODEL} --version 2   # exits 1: regressed"
            )
        if not args.exit and not stop.is_set():
            print("\nthe daemon keeps running; Ctrl-C stops it", flush=True)
            stop.wait()
    finally:
        app.stop()
        print(f"the demo's registry, store, runs and log stay in {root} (delete it when done)", flush=True)
    return 0


def _report_run(story: Story, version: str, record: Any) -> None:
    if record.state not in COMPLETED_RUN_STATES or record.result is None:
        story.say(f"v{version}: run {record.id} {record.state}: {record.error}")
        return
    duration_s = record.result.duration_s
    for r in record.result.results:
        story.say(
            f"v{version}: run {record.id} {record.state} in {duration_s:.0f} s: {r.scenario} "
            f"p50 {format_seconds(r.latency.p50_s)}  p99 {format_seconds(r.latency.p99_s)}  "
            f"{r.throughput_qps:,.0f} queries/s"
        )


def _report_verdict(app: Any, story: Story, record: Any, first: bool) -> None:
    if record.state not in COMPLETED_RUN_STATES:
        return
    verdict = app.store.verdict_for(MODEL, record.version)
    if verdict is None:
        reason = "it is the first version: nothing to compare with" if first else "no verdict (see the log)"
        story.say(f"v{record.version}: {reason}")
        return
    story.say(f"v{record.version}: verdict against v{verdict.baseline_version}: {verdict.state.upper()}")
    for m in verdict.metrics:
        story.more(
            f"  {m.metric:<18} x{m.ratio:.3f}  95% interval "
            f"[{m.ratio_low:.3f}, {m.ratio_high:.3f}]  {m.state}"
        )
