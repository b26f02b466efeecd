"""``benchd bench``: benchmark one model version folder or artifact, with a progress bar and a table."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from benchd.cli.logs import route_console
from benchd.cli.output import add_json_option, json_replaces_table, write_json
from benchd.cli.tables import format_seconds, format_table
from benchd.config import bench_config_from
from benchd.config_fields import parse_duration_s
from benchd.devices.context import DeviceContext
from benchd.errors import BenchdError
from benchd.evaluation import apply_overrides, materialise, run_folder
from benchd.records import RunResult, to_dict

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    """Register ``bench`` on the CLI's subparsers."""
    p = sub.add_parser(
        "bench",
        help="benchmark one model version folder or artifact",
        description="Benchmark a model version (a folder with the artifact and benchd.yaml, or an artifact "
        "whose folder has benchd.yaml) in an isolated worker process, and print a table. "
        "Raw latencies (.npy) and a JSON summary are kept in --out.",
    )
    p.add_argument("path", help="model version folder, or artifact file (.pt2, .pt, .ts)")
    p.add_argument("--config", help="benchmark config YAML (scenarios, settings, device...)")
    p.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        metavar="NAME",
        help="scenario to run (repeatable or comma-separated): single_stream, multi_stream, "
        "server, offline, concurrency [default: from config, else single_stream]",
    )
    p.add_argument("--device", help="cpu, cuda, cuda:N or auto [default: auto]")
    p.add_argument(
        "--batch-size",
        dest="batch_sizes",
        metavar="N[,N...]",
        help="batch size, or a comma-separated sweep such as 1,8,32",
    )
    p.add_argument("--duration", metavar="DURATION", help="minimum measured duration per scenario, e.g. 10s")
    p.add_argument("--target-qps", type=float, help="server scenario: Poisson arrival rate")
    p.add_argument("--concurrency", type=int, help="concurrency scenario: closed-loop streams")
    p.add_argument("--threads", type=int, help="torch intra-op threads in the worker")
    p.add_argument("--dtype", choices=("float32", "float16", "bfloat16", "float64"))
    p.add_argument("--amp", action="store_true", default=None, help="run under autocast")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model first")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        default=None,
        help="allow loading pickled models (runs code from the file: only for trusted files)",
    )
    p.add_argument(
        "--devices",
        default="auto",
        choices=("auto", "nvml", "fake", "none"),
        help="how energy and telemetry are read [default: auto]",
    )
    add_json_option(p, "the RunResult")
    p.add_argument(
        "--out",
        metavar="DIR",
        help="keep raw latencies and the summary here [default: ./benchd-results/<name>-<time>]",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=cmd_bench)


class Progress:
    """A one-line progress bar driven by the worker's events (redrawn on a TTY, plain lines otherwise).

    Every other line written while the bar is up goes through :meth:`write_line`, which clears the bar
    first, so a log record and the bar never share a line.
    """

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.tty = stream.isatty()
        self.label = "starting worker"
        self.started = time.monotonic()
        self.expected_s = 0.0
        self._lock = threading.Lock()
        self._drawn = False  # the bar is on the current line
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="benchd-progress", daemon=True)

    def __enter__(self) -> Progress:
        if self.enabled and self.tty:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        with self._lock:
            self._clear()
            self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\033[K")
            self._drawn = False

    def write_line(self, text: str) -> None:
        """Write one whole line above the bar (the bar is redrawn on its next tick)."""
        with self._lock:
            self._clear()
            self.stream.write(text.rstrip("\n") + "\n")
            self.stream.flush()

    def _write(self, text: str) -> None:
        self.write_line(text)

    def on_event(self, event: dict[str, Any]) -> None:
        """Handle one worker event."""
        kind = event.get("event")
        if kind == "scenario":
            self.label = f"{event['scenario']} bs={event['batch_size']}"
            self.started = time.monotonic()
            self.expected_s = float(event.get("warmup_s", 0)) + float(event.get("min_duration_s", 0))
            if self.enabled and not self.tty:
                self._write(f"running {self.label} (about {self.expected_s:.0f} s)")
        elif kind == "progress" and event.get("message") != "measure":
            self.label = f"{event['scenario']}: {event['message']}"
        elif kind == "scenario_done" and self.enabled and not self.tty:
            self._write(f"  done: p50 {format_seconds(event['p50_s'])}  p99 {format_seconds(event['p99_s'])}")

    def _loop(self) -> None:
        while not self._stop.wait(0.2):
            elapsed = time.monotonic() - self.started
            frac = min(1.0, elapsed / self.expected_s) if self.expected_s else 0.0
            bar = "#" * int(frac * 30) + "-" * (30 - int(frac * 30))
            with self._lock:
                self.stream.write(f"\r\033[K[{bar}] {frac:4.0%} {elapsed:5.1f}s  {self.label}")
                self.stream.flush()
                self._drawn = True


def _energy(r: Any) -> str:
    e = r.energy
    if e is None:
        return "-"
    if not e.measured:
        return "not measured"
    return f"{e.energy_per_sample_j * 1e3:.3f}mJ" if e.energy_per_sample_j is not None else "-"


def format_result(result: RunResult) -> str:
    """A readable table of a run's scenario results."""
    header = (
        "scenario",
        "bs",
        "queries",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "p99 95% CI",
        "qps",
        "samples/s",
        "energy/sample",
        "valid",
    )
    rows = [header]
    for r in result.results:
        lat = r.latency
        ci = (
            f"[{format_seconds(lat.p99_ci_low_s)}, {format_seconds(lat.p99_ci_high_s)}]"
            if lat.p99_ci_low_s is not None
            else "-"
        )
        rows.append(
            (
                r.scenario,
                str(r.batch_size),
                f"{r.queries:,}",
                format_seconds(lat.p50_s),
                format_seconds(lat.p90_s),
                format_seconds(lat.p99_s),
                format_seconds(lat.p999_s),
                ci,
                f"{r.throughput_qps:,.1f}",
                f"{r.throughput_sps:,.1f}",
                _energy(r),
                "VALID" if r.valid else "INVALID",
            )
        )
    lines = [format_table(header, rows[1:])]
    notes = [
        f"  {r.scenario} bs={r.batch_size}: INVALID: {'; '.join(r.invalid_reasons)}"
        for r in result.results
        if not r.valid
    ]
    extra = [
        f"  {r.scenario} bs={r.batch_size}: max valid QPS {r.max_valid_qps:,.0f}"
        for r in result.results
        if r.max_valid_qps
    ]
    dev = [
        f"  {r.scenario} bs={r.batch_size}: device time p50 {format_seconds(r.device_time_p50_s)} "
        f"vs harness p50 {format_seconds(r.latency.p50_s)}"
        for r in result.results
        if r.device_time_p50_s is not None
    ]
    return "\n".join(lines + notes + extra + dev)


def _printed_by_bench(record: logging.LogRecord) -> bool:
    """The launcher's warning that the run failed: ``cmd_bench`` prints that failure itself, once."""
    return record.name == "benchd.runner.launch" and str(record.msg).startswith("run of ")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchd bench``."""
    try:
        config = bench_config_from(args.config)
        overrides: dict[str, Any] = {
            "device": args.device,
            "threads": args.threads,
            "dtype": args.dtype,
            "amp": args.amp,
            "compile": args.compile,
            "allow_pickle": args.allow_pickle,
            "target_qps": args.target_qps,
            "concurrency": args.concurrency,
        }
        if args.scenarios:
            overrides["scenarios"] = [n.strip() for s in args.scenarios for n in s.split(",") if n.strip()]
        if args.batch_sizes:
            overrides["batch_sizes"] = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
        if args.duration:
            overrides["duration_s"] = parse_duration_s(args.duration, "--duration")
        config = apply_overrides(config, **{k: v for k, v in overrides.items() if v is not None})
    except (BenchdError, ValueError) as e:
        print(f"benchd bench: {e}", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.path)
    name = (path if path.is_dir() else path.parent).resolve().name
    out_dir = (
        Path(args.out) if args.out else Path("benchd-results") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    with tempfile.TemporaryDirectory(prefix="benchd-") as tmp:
        try:
            folder = materialise(path, None, Path(tmp))
        except BenchdError as e:
            print(f"benchd bench: {e}", file=sys.stderr)
            return EXIT_USAGE
        devices = DeviceContext(args.devices)
        try:
            with (
                Progress(sys.stderr, not args.quiet) as progress,
                route_console(progress.write_line, drop=_printed_by_bench),
            ):
                result = run_folder(
                    folder,
                    config,
                    out_dir,
                    model=name,
                    version=path.name,
                    devices=devices,
                    on_event=progress.on_event,
                )
        finally:
            devices.close()
    doc = to_dict(result)
    (out_dir / "summary.json").write_text(json.dumps(doc, indent=1))
    if args.json:
        try:
            write_json(doc, args.json)
        except BenchdError as e:
            print(f"benchd bench: {e}", file=sys.stderr)
            return EXIT_USAGE
    if not result.ok:
        print(f"benchd bench: run failed ({result.error_kind}): {result.error}", file=sys.stderr)
        return EXIT_FAILED
    if not json_replaces_table(args.json):
        device = result.fingerprint.get("device_name") or result.device
        print(
            f"{result.model} on {result.device} ({device}), "
            f"torch {result.fingerprint.get('torch_version', '?')}"
        )
        print(format_result(result))
        print(f"raw latencies and summary.json: {out_dir}")
    return EXIT_OK
