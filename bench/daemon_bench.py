"""The idle daemon's footprint, and the time from an MLflow webhook to the run starting.

    .venv/bin/python bench/daemon_bench.py [--idle-s 30] [--repeats 5]

1. Idle: ``benchd run`` on an empty local registry; after it settles, RSS and CPU share over ``--idle-s``
   (from /proc), and whether torch is mapped into the daemon process (it must not be).
2. Webhook: a real MLflow server (``pip install -e '.[test]'``), the daemon watching it with a 1 h poll
   interval; each repeat registers a version and delivers a signed webhook; printed: time from the
   delivery to the run's start (its ``started_unix_s``) and to the run's end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.conftest import write_model  # noqa: E402
from tests.daemon.conftest import DaemonProcess, wait_until  # noqa: E402
from tests.mlflow_server import MLflowSeeder, mlflow_server  # noqa: E402

from benchd.registry.webhook import sign_mlflow_payload  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def idle(root: Path, idle_s: float) -> None:
    d = DaemonProcess(root / "idle").start()
    try:
        time.sleep(5)
        pid = d.proc.pid
        c0, t0 = cpu_s(pid), time.monotonic()
        samples = []
        while time.monotonic() - t0 < idle_s:
            samples.append(rss_bytes(pid))
            time.sleep(1)
        share = (cpu_s(pid) - c0) / (time.monotonic() - t0)
        maps = Path(f"/proc/{pid}/maps").read_text()
        rss = f"RSS median {statistics.median(samples) / 2**20:.1f} MiB, max {max(samples) / 2**20:.1f} MiB"
        cpu = f"CPU {share * 100:.2f}% of one core over {idle_s:.0f} s"
        print(f"idle daemon: {rss}; {cpu}; torch mapped: {'torch' in maps}")
    finally:
        d.stop()


def webhook(root: Path, repeats: int) -> None:
    model_dir = write_model(root / "model", "mlp")
    files = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file() and p.name != "READY"}
    with mlflow_server(root / "mlflow") as url:
        seeder = MLflowSeeder(url)
        seeder.create_model("hooked")
        d = DaemonProcess(root / "hook", env={"HOOK_SECRET": "s"})
        config = json.loads(json.dumps(__import__("yaml").safe_load(d.config_path.read_text())))
        config["registries"] = [
            {
                "name": "ml",
                "type": "mlflow",
                "tracking_uri": url,
                "models": ["hooked"],
                "poll_interval": "1h",
                "webhook_secret_env": "HOOK_SECRET",
            }
        ]
        d.config_path.write_text(__import__("yaml").safe_dump(config))
        d.start()
        try:
            to_start, to_end = [], []
            for _ in range(repeats):
                version = seeder.create_version("hooked", files)
                body = json.dumps(
                    {
                        "entity": "model_version",
                        "action": "created",
                        "timestamp": "",
                        "data": {"name": "hooked", "version": version},
                    }
                ).encode()
                now = str(int(time.time()))
                sent = time.time()
                status, _ = d.request(
                    "POST",
                    "/api/v1/hooks/mlflow",
                    body,
                    {
                        "X-MLflow-Delivery-Id": f"bench-{version}",
                        "X-MLflow-Timestamp": now,
                        "X-MLflow-Signature": sign_mlflow_payload(b"s", f"bench-{version}", now, body),
                    },
                )
                assert status == 202, status
                run = wait_until(
                    lambda v=version: next(
                        (
                            r
                            for r in d.runs()
                            if r["version"] == v and r["state"] not in ("queued", "running")
                        ),
                        None,
                    ),
                    120,
                    "the run",
                    interval_s=0.02,
                )
                to_start.append(run["started_unix_s"] - sent)
                to_end.append(run["ended_unix_s"] - sent)
            print(
                f"webhook -> run started: median {statistics.median(to_start) * 1e3:.0f} ms "
                f"(min {min(to_start) * 1e3:.0f}, max {max(to_start) * 1e3:.0f}) over {repeats}; "
                f"-> run ended: median {statistics.median(to_end):.1f} s"
            )
        finally:
            d.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle-s", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="benchd-bench-") as tmp:
        idle(Path(tmp), args.idle_s)
        webhook(Path(tmp), args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
