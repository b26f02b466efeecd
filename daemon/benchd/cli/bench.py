"""``benchd bench``: benchmark one model version folder or artifact, with a progress bar and a table."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from benchd.cli.logs import route_console
from benchd.cli.output import add_json_option, json_replaces_table, write_json
from benchd.cli.run import print_config_error
from benchd.cli.tables import format_seconds, format_table
from benchd.config import DTYPES, BenchConfig, DaemonConfig, load_yaml, parse_duration_s, read_any_config
from benchd.devices.context import DeviceContext
from benchd.devices.meter import retention_s
from benchd.errors import BenchdError, ConfigError
from benchd.evaluation import apply_overrides, infer_names, materialise, run_folder
from benchd.records import RunResult, to_dict

#: Opens the devices for runs of at most the given timeout, in seconds.
DeviceOpener = Callable[[float], DeviceContext]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_parser(sub: Any) -> None:
    """Register ``bench`` on the CLI's subparsers."""
    p = sub.add_parser(
        "bench",
        help="benchmark one model version folder or artifact",
        description="Benchmark a model version (a folder with the artifact and benchd.yaml, or an artifact "
        "whose folder has benchd.yaml) in an isolated worker process, and print a table. The artifact "
        "is recognised by its content: a torch.export program, an AOTInductor package, TorchScript, a "
        "Hugging Face folder (config.json + *.safetensors), or a pickle. "
        "Raw latencies (.npy) and a JSON summary are kept in --out.",
    )
    p.add_argument(
        "path",
        help="model version folder laid out as <model>/<version>/ (as in a local registry), or its artifact",
    )
    p.add_argument("--model", help="model name in results [default: the version folder's parent's name]")
    p.add_argument("--version", dest="model_version", help="version in results [default: the folder's name]")
    p.add_argument(
        "--config",
        metavar="FILE",
        help="a daemon config (its benchmark: section is used, and its devices: section unless --devices "
        "is given) or a bare benchmark config (scenarios, defaults, batch_sizes, device, ... at the top). "
        "A file with any daemon section at the top (http, store, devices, registries, benchmark, verdict, "
        "export, ...) is a daemon config; anything else is a bare benchmark config",
    )
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
    p.add_argument(
        "--threads",
        type=lambda text: int(text) if text.isdigit() else text,
        metavar="N|auto|none",
        help="torch intra-op threads in the worker: a count, auto (every CPU but one, the worker pinned to "
        "them) or none (torch's default) [default: from config, else auto]",
    )
    p.add_argument(
        "--dtype", choices=DTYPES, help="model and input dtype [default: from config, else float32]"
    )
    p.add_argument("--amp", action="store_true", default=None, help="run under autocast")
    p.add_argument("--compile", action="store_true", default=None, help="torch.compile the model first")
    p.add_argument(
        "--allow-pickle",
        action="store_true",
        default=None,
        help="allow loading pickled models (runs code from the file: only for trusted files)",
    )
    p.add_argument(
        "--allow-native-code",
        action="store_true",
        help="allow loading AOTInductor packages (runs the compiled code they hold: only for trusted files)",
    )
    p.add_argument(
        "--devices",
        choices=("auto", "nvml", "fake", "none"),
        help="how energy and telemetry are read [default: the daemon config's devices.mode, else auto]",
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
        elif kind == "skipped" and self.enabled and not self.tty:
            self._write(f"skipping {event['scenario']} bs={event['batch_size']}")
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
    draws = [
        f"  {r.scenario} bs={r.batch_size}: {_draws(r.drawn_dims)}" for r in result.results if r.drawn_dims
    ]
    skipped = [f"  {scenario} bs={size}: NOT RUN: {reason}" for size, scenario, reason in result.skipped]
    return "\n".join(lines + notes + extra + dev + draws + skipped)


def _draws(drawn: Any) -> str:
    """``seq drawn 32 (40%), 64 (35%), 128 (25%) over 1,000 queries``."""
    by_dim: dict[str, list[tuple[int, int]]] = {}
    for dim, value, count in drawn:
        by_dim.setdefault(dim, []).append((value, count))
    parts = []
    for dim, pairs in by_dim.items():
        total = sum(c for _, c in pairs) or 1
        shown = ", ".join(f"{v} ({c / total:.0%})" for v, c in pairs[:12])
        more = f", ... {len(pairs) - 12} more values" if len(pairs) > 12 else ""
        parts.append(f"{dim} drawn {shown}{more} over {total:,} queries")
    return "; ".join(parts)


def _artifact_line(result: RunResult) -> str:
    first = result.results[0] if result.results else None
    if first is None or not first.artifact_format:
        return ""
    note = f" ({first.artifact_note})" if first.artifact_note else ""
    return f"artifact format: {first.artifact_format}{note}"


def _read_config(path: str | None, devices: str | None) -> tuple[BenchConfig, DeviceOpener]:
    """The benchmark config of ``--config`` and how to open the devices (``--devices``, else the daemon's).

    The opener takes the longest run's timeout: the sampler keeps telemetry that long plus a margin (or
    for the daemon config's ``devices.telemetry_retention``).
    """
    config = BenchConfig() if path is None else read_any_config(load_yaml(path), path)
    if isinstance(config, DaemonConfig):
        mode = devices or config.devices.mode
        fake = config.devices.fake if mode == "fake" else None
        configured_s = config.devices.telemetry_retention_s
        return config.benchmark, lambda timeout_s: DeviceContext(
            mode, fake, retain_s=retention_s(timeout_s, configured_s)
        )
    return config, lambda timeout_s: DeviceContext(devices or "auto", retain_s=retention_s(timeout_s))


def _printed_by_bench(record: logging.LogRecord) -> bool:
    """The launcher's warning that the run failed: ``cmd_bench`` prints that failure itself, once."""
    return record.name == "benchd.runner.launch" and str(record.msg).startswith("run of ")


def cmd_bench(args: argparse.Namespace) -> int:
    """Run ``benchd bench``."""
    try:
        config, open_devices = _read_config(args.config, args.devices)
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
    except ConfigError as e:
        print_config_error("benchd bench", e)
        return EXIT_USAGE
    except (BenchdError, ValueError) as e:
        print(f"benchd bench: {e}", file=sys.stderr)
        return EXIT_USAGE
    path = Path(args.path)
    inferred_model, inferred_version = infer_names(path)
    model = args.model or inferred_model
    version = args.model_version or inferred_version
    name = f"{model}-{version}"
    out_dir = (
        Path(args.out) if args.out else Path("benchd-results") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    )
    with tempfile.TemporaryDirectory(prefix="benchd-") as tmp:
        try:
            folder = materialise(path, None, Path(tmp))
        except BenchdError as e:
            print(f"benchd bench: {e}", file=sys.stderr)
            return EXIT_USAGE
        devices = open_devices(config.timeout_s)
        try:
            with (
                Progress(sys.stderr, not args.quiet) as progress,
                route_console(progress.write_line, drop=_printed_by_bench),
            ):
                result = run_folder(
                    folder,
                    config,
                    out_dir,
                    model=model,
                    version=version,
                    devices=devices,
                    on_event=progress.on_event,
                    allow_native_code=args.allow_native_code,
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
            f"model {result.model} version {result.version} on {result.device} ({device}), "
            f"torch {result.fingerprint.get('torch_version', '?')}"
        )
        if line := _artifact_line(result):
            print(line)
        print(format_result(result))
        print(f"raw latencies and summary.json: {out_dir}")
    if result.skipped:
        sizes = sorted({size for size, _, _ in result.skipped})
        print(
            f"benchd bench: batch size(s) {', '.join(map(str, sizes))} could not run (reasons above)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return EXIT_OK
