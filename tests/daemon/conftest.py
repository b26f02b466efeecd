"""A real ``benchd run`` subprocess on 127.0.0.1 with its own data dir, local registry and config."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.mlflow_server import free_port

QUICK_BENCHMARK = {
    "device": "auto",  # fake GPUs: the meter reads cuda:0, the worker runs on the CPU
    "scenarios": {"single_stream": {}},
    "defaults": {
        "warmup": "0.05s",
        "warmup_queries": 5,
        "min_duration": "0.3s",
        "max_duration": "30s",  # binds only when 50 queries take longer: on a loaded machine, not "invalid"
        "min_query_count": 50,
    },
    "timeout": "60s",
}


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


class DaemonProcess:
    """Starts/stops ``benchd run`` and talks to its HTTP API."""

    def __init__(
        self, root: Path, extra: dict[str, Any] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.root = root
        self.models = root / "models"
        self.models.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config: dict[str, Any] = {
            "data_dir": str(root / "data"),
            "http": {"host": "127.0.0.1", "port": self.port},
            "devices": {"mode": "fake", "fake": {"power_w": 200}},
            "registries": [
                {
                    "name": "local",
                    "type": "local",
                    "root": str(self.models),
                    "poll_interval": "0.5s",
                    "settle": "0.3s",
                    "allow_pickle": True,
                }
            ],
            "benchmark": QUICK_BENCHMARK,
            "verdict": {"mode": "off"},
            "shutdown_grace": "10s",
        }
        for key, value in (extra or {}).items():
            config[key] = value
        self.config_path = root / "benchd.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.env = {**os.environ, "BENCHD_API_TOKEN": "test-token", **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "daemon.log"

    def start(self, ready_timeout_s: float = 60.0) -> DaemonProcess:
        """Start the daemon and wait for /readyz."""
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "benchd.cli", "run", "--config", str(self.config_path)],
            stdout=log,
            stderr=log,
            env=self.env,
            start_new_session=True,
        )
        wait_until(lambda: self._ready() or self._died(), ready_timeout_s, "the daemon to be ready")
        assert self.proc.poll() is None, f"daemon exited early:\n{self.log()[-6000:]}"
        return self

    def _ready(self) -> bool:
        try:
            return self.get("/readyz")[0] == 200
        except OSError:
            return False

    def _died(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def log(self) -> str:
        """Everything the daemon logged (across restarts)."""
        return self.log_path.read_text(errors="replace")

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                status = resp.status
        except urllib.error.HTTPError as e:
            raw, status = e.read(), e.code
        try:
            return status, json.loads(raw)
        except ValueError:
            return status, raw.decode("utf-8", "replace")

    def get(self, path: str) -> tuple[int, Any]:
        return self.request("GET", path)

    def runs(self) -> list[dict[str, Any]]:
        return self.get("/api/v1/runs?limit=200")[1]["runs"]

    def wait_runs(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float, what: str
    ) -> list:
        return wait_until(lambda: (lambda rs: rs if predicate(rs) else None)(self.runs()), timeout_s, what)

    def stop(self, timeout_s: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout_s)

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=30)

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(
        extra: dict[str, Any] | None = None, env: dict[str, str] | None = None, name: str = "d"
    ) -> DaemonProcess:
        d = DaemonProcess(tmp_path / name, extra, env)
        made.append(d)
        return d

    yield make
    for d in made:
        d.close()
