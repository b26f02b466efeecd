"""A real Prometheus (Debian package) on 127.0.0.1 for end-to-end tests: 1 s scrapes and rule evaluation."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from tests.mlflow_server import free_port
from tests.system_tools import require_tool


def start_prometheus(
    tmp_dir: Path, targets: Sequence[str], rule_files: Sequence[Path] = (), timeout_s: float = 60.0
) -> tuple[str, Callable[[], None]]:
    """Start Prometheus scraping ``targets`` (host:port) as job ``benchd``; return (base URL, stop).

    Raises:
        AssertionError: the ``prometheus`` binary is missing (install Debian's ``prometheus``) or it does
            not become ready.
    """
    binary = require_tool("prometheus")
    tmp_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": "benchd", "static_configs": [{"targets": list(targets)}]}],
    }
    (tmp_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = (tmp_dir / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_dir / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_dir / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def stop() -> None:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
        log.close()

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited: {(tmp_dir / 'prometheus.log').read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                if r.status == 200:
                    return url, stop
        except OSError:
            time.sleep(0.1)
    stop()
    raise AssertionError("prometheus did not become ready")


def api(url: str, path: str, **params: str) -> Any:
    """GET a Prometheus API path and return its ``data`` (asserting ``status == success``)."""
    query = ("?" + urllib.parse.urlencode(params)) if params else ""
    with urllib.request.urlopen(url + path + query, timeout=10) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]
