"""Soak: a real daemon takes N model versions, then idles; does anything grow that should not?

    .venv/bin/python bench/soak.py [--versions 1000] [--models 5] [--idle-s 120] [--sample-s 3]
    .venv/bin/python bench/soak.py --telemetry-hour        # an hour of 20 Hz telemetry, compressed clock

1. Daemon (default): ``benchd run`` as a subprocess with 8 fake GPUs (``devices: {mode: fake, fake:
   {count: 8}}``), one benchmark slot (``cuda:0``, the model runs on the CPU), a local registry and
   ``verdict: {mode: off}``. ``--versions`` copies of a small MLP are published across ``--models`` models
   a few at a time (each waits for the previous batch's runs to end), then the daemon idles for
   ``--idle-s``. Every ``--sample-s`` it samples the daemon's RSS, threads and open file descriptors
   (``/proc`` via psutil), the store's size (SQLite files) and the size of ``/metrics``. Printed side by
   side with the goals: after warm-up (10% of the versions, and at least enough for every model to have
   ``export.latest_versions`` (3) of them) RSS grows < 5 MB; threads and fds at the end of the idle
   phase equal their idle count at the end of warm-up (the daemon opens a store connection per thread
   on first use, so the cold count before the first version is lower: the descriptors opened since
   then are listed); ``/metrics`` exports at most ``export.latest_versions`` versions per model, so its
   size stays that of the end of warm-up.
   Wall time: about 7 s per version on a shared 2-core host (a worker process imports torch for each
   run), so the default N=1000 takes about 2 h; ``--versions 60 --idle-s 60`` took 7.8 minutes.
2. ``--telemetry-hour``: the daemon's telemetry sampler (8 fake GPUs, 20 Hz) in this process with an
   injected clock: an hour of samples in seconds of wall time; prints stored samples and RSS every 10
   simulated minutes; the goal is a flat line after the buffer fills.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import write_model  # noqa: E402
from tests.daemon.conftest import DaemonProcess, wait_until  # noqa: E402

MIB = 2**20
RSS_GOAL_BYTES = 5 * MIB
LATEST_VERSIONS = 3


@dataclass
class Sample:
    """One look at the daemon."""

    t_s: float
    done_runs: int
    rss_bytes: int
    threads: int
    fds: int
    store_bytes: int
    metrics_bytes: int
    exported_per_model: int


def _fd_targets(pid: int) -> list[str]:
    """What each open descriptor of ``pid`` is (a path, ``socket:[...]``, ``pipe:[...]``)."""
    out = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        out.append(
            "socket" if target.startswith("socket:") else "pipe" if target.startswith("pipe:") else target
        )
    return sorted(out)


@dataclass
class Sampler:
    """Samples the daemon every ``every_s`` on a thread until stopped."""

    daemon: DaemonProcess
    every_s: float
    samples: list[Sample] = field(default_factory=list)
    fds_by_phase: dict[str, list[str]] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def take(self) -> Sample:
        proc = psutil.Process(self.daemon.proc.pid)
        text = _get_text(self.daemon.url + "/metrics")
        sample = Sample(
            t_s=time.monotonic(),
            done_runs=_done_runs(text),
            rss_bytes=proc.memory_info().rss,
            threads=proc.num_threads(),
            fds=proc.num_fds(),
            store_bytes=sum(p.stat().st_size for p in (self.daemon.root / "data").glob("*.sqlite*")),
            metrics_bytes=len(text.encode()),
            exported_per_model=_max_versions_per_model(text),
        )
        self.samples.append(sample)
        return sample

    def run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                self.take()
            except (OSError, psutil.Error) as e:  # the daemon is busy or going away: skip this look
                print(f"  (sample skipped: {e})", file=sys.stderr)

    def stop(self) -> None:
        self._stop.set()


def _get_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as resp:
        return resp.read().decode()


def _done_runs(metrics_text: str) -> int:
    return round(
        sum(
            float(line.rsplit(" ", 1)[1])
            for line in metrics_text.splitlines()
            if line.startswith("benchd_runs_total{")
        )
    )


def _max_versions_per_model(metrics_text: str) -> int:
    """The most versions any one model has in ``benchd_run_latency_seconds`` series."""
    versions: dict[str, set[str]] = {}
    for line in metrics_text.splitlines():
        if not line.startswith("benchd_run_latency_seconds{"):
            continue
        labels = dict(
            part.split("=", 1)
            for part in line[line.index("{") + 1 : line.index("}")].split(",")
            if "=" in part
        )
        versions.setdefault(labels.get("model", ""), set()).add(labels.get("version", ""))
    return max((len(v) for v in versions.values()), default=0)


def _slope_per_hour(samples: list[Sample], value: str) -> float:
    if len(samples) < 3:
        return float("nan")
    ts = [s.t_s for s in samples]
    ys = [getattr(s, value) for s in samples]
    return statistics.linear_regression(ts, ys).slope * 3600.0


def _publish(source: Path, models_root: Path, model: str, version: int) -> None:
    folder = models_root / model / str(version)
    shutil.copytree(source, folder)
    (folder / "READY").touch()


def soak(root: Path, versions: int, models: int, idle_s: float, sample_s: float, batch: int) -> bool:
    source = write_model(root / "source", "mlp")
    (source / "READY").unlink(missing_ok=True)
    daemon = DaemonProcess(
        root / "daemon",
        extra={
            "devices": {"mode": "fake", "fake": {"count": 8, "power_w": 200}},
            "benchmark": {
                "device": "cuda:0",  # one slot: one worker at a time on this small host
                "scenarios": {"single_stream": {}},
                "defaults": {"warmup": "0.05s", "warmup_queries": 5, "min_duration": "0.3s",
                             "max_duration": "3s", "min_query_count": 50},
                "timeout": "60s",
            },
            "export": {"latest_versions": LATEST_VERSIONS},
        },
    )  # fmt: skip
    daemon.start()
    sampler = Sampler(daemon, sample_s)
    started_s = time.monotonic()
    try:
        time.sleep(3)
        idle_before = sampler.take()
        sampler.fds_by_phase["idle"] = _fd_targets(daemon.proc.pid)
        thread = threading.Thread(target=sampler.run, daemon=True)
        thread.start()
        warmup = max(models * LATEST_VERSIONS, versions // 10)  # every model's export is full by then
        after_warmup: Sample | None = None
        for first in range(0, versions, batch):
            for i in range(first, min(versions, first + batch)):
                _publish(source, daemon.models, f"soak{i % models}", i // models + 1)
            target = min(versions, first + batch)
            wait_until(
                lambda t=target: _done_runs(_get_text(daemon.url + "/metrics")) >= t, 600, f"{target} runs"
            )
            if after_warmup is None and target >= warmup:
                after_warmup = sampler.take()
            print(f"  {target}/{versions} versions benchmarked after {time.monotonic() - started_s:.0f} s",
                  flush=True)  # fmt: skip
        end_of_runs = sampler.take()
        time.sleep(idle_s)
        end = sampler.take()
        sampler.fds_by_phase["idle end"] = _fd_targets(daemon.proc.pid)
        sampler.stop()
        thread.join()
    finally:
        sampler.stop()
        status = daemon.stop()
    assert after_warmup is not None
    ok = report(idle_before, after_warmup, end_of_runs, end, sampler.samples, versions, models, status)
    before, after = sampler.fds_by_phase["idle"], sampler.fds_by_phase["idle end"]
    opened = [t for t in after if t not in before or after.count(t) > before.count(t)]
    closed = [t for t in before if t not in after or before.count(t) > after.count(t)]
    if opened or closed:
        print(f"descriptors opened since the cold idle: {sorted(set(opened))}; closed: {sorted(set(closed))}")
    print(f"wall time {time.monotonic() - started_s:.0f} s for {versions} versions + {idle_s:.0f} s idle")
    return ok


def report(
    idle: Sample, warm: Sample, runs_end: Sample, end: Sample, samples: list[Sample], versions: int,
    models: int, exit_status: int,
) -> bool:  # fmt: skip
    """Print the measures at four moments, their slope after warm-up and the goal; True when all hold."""
    after = [s for s in samples if s.t_s >= warm.t_s]
    moments = (idle, warm, runs_end, end)

    def row(name: str, value: str, scale: float, unit: str, goal: str, ok: bool) -> tuple[str, ...]:
        cells = [
            f"{getattr(m, value) / scale:.1f}" if scale != 1 else str(getattr(m, value)) for m in moments
        ]
        slope = _slope_per_hour(after, value) / scale
        return (name, *cells, f"{slope:+.1f} {unit}/h", goal, "yes" if ok else "NO")

    rss_growth = end.rss_bytes - warm.rss_bytes
    store_per_version = (end.store_bytes - idle.store_bytes) / max(1, versions) / 1024
    most_exported = max(s.exported_per_model for s in samples)
    rows = [
        row(
            "RSS (MiB)",
            "rss_bytes",
            MIB,
            "MiB",
            f"idle end - warm-up < 5 MiB (is {rss_growth / MIB:+.2f})",
            rss_growth < RSS_GOAL_BYTES,
        ),
        row(
            "threads", "threads", 1, "", f"idle end == warm-up ({warm.threads})", end.threads == warm.threads
        ),
        row("open fds", "fds", 1, "", f"idle end == warm-up ({warm.fds})", end.fds == warm.fds),
        row(
            "store (KiB)",
            "store_bytes",
            1024,
            "KiB",
            f"kept results: {store_per_version:.1f} KiB/version",
            True,
        ),
        row(
            "/metrics (KiB)",
            "metrics_bytes",
            1024,
            "KiB",
            f"idle end <= 1.1 x warm-up ({models} models)",
            end.metrics_bytes <= 1.1 * warm.metrics_bytes,
        ),
        row(
            "versions/model exported",
            "exported_per_model",
            1,
            "",
            f"max {most_exported} <= {LATEST_VERSIONS}",
            most_exported <= LATEST_VERSIONS,
        ),
    ]
    header = ("measure", "cold idle", "warm-up", "runs end", "idle end", "slope after warm-up", "goal", "ok")
    table = [header, *rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
    print(f"{end.done_runs} runs ended; {len(samples)} samples; daemon exit status {exit_status}")
    return all(r[-1] == "yes" for r in rows) and exit_status == 0


def telemetry_hour() -> bool:
    from benchd.devices import FakeDeviceSet, RAPLReader, WindowSampler

    class Clock:
        now_s = 1000.0

        def __call__(self) -> float:
            return self.now_s

    clock = Clock()
    sampler = WindowSampler(
        FakeDeviceSet.from_config({"count": 8, "power_w": 250}, clock=clock), RAPLReader("/nonexistent"),
        interval_s=0.05, clock=clock,
    )  # fmt: skip
    proc = psutil.Process()
    print(f"{'minute':>6}  {'stored samples':>14}  {'RSS MiB':>8}")
    rss_by_minute: dict[int, int] = {}
    for step in range(3600 * 20 + 1):
        sampler.sample_once()
        clock.now_s += 0.05
        if step % (600 * 20) == 0:
            minute = step // (60 * 20)
            rss_by_minute[minute] = proc.memory_info().rss
            print(f"{minute:>6}  {sampler.stored_samples():>14}  {rss_by_minute[minute] / MIB:>8.1f}")
    growth = rss_by_minute[60] - rss_by_minute[20]  # the default 900 s buffer is full by minute 15
    ok = growth < 1 * MIB and sampler.stored_samples() <= 8 * sampler.capacity
    buffer = f"{sampler.capacity} samples/device ({sampler.retain_s:.0f} s)"
    print(
        f"RSS from minute 20 to 60: {growth / MIB:+.2f} MiB (goal: < 1 MiB); buffer {buffer}: "
        + ("ok" if ok else "NO")
    )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--versions", type=int, default=1000, help="model versions to benchmark (default 1000)"
    )
    parser.add_argument("--models", type=int, default=5, help="models the versions are spread over")
    parser.add_argument("--idle-s", type=float, default=120.0, help="idle seconds after the last run")
    parser.add_argument("--sample-s", type=float, default=3.0, help="seconds between samples")
    parser.add_argument("--batch", type=int, default=5, help="versions published at a time")
    parser.add_argument(
        "--telemetry-hour", action="store_true", help="only the compressed-clock telemetry hour"
    )
    args = parser.parse_args()
    if args.telemetry_hour:
        return 0 if telemetry_hour() else 1
    with tempfile.TemporaryDirectory(prefix="benchd-soak-") as tmp:
        ok = soak(Path(tmp), args.versions, args.models, args.idle_s, args.sample_s, args.batch)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
