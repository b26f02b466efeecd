"""deploy/alertmanager/alertmanager.yml: amtool checks its routes; a real Alertmanager, its inhibitions."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.mlflow_server import free_port
from tests.system_tools import require_tool

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "deploy" / "alertmanager" / "alertmanager.yml"


def _amtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([require_tool("amtool"), *args], capture_output=True, text=True, timeout=60)


def test_amtool_accepts_the_config() -> None:
    result = _amtool("check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"alertname": "BenchdP99LatencyRegression", "severity": "critical", "role": "champion"}, "pager"),
        ({"alertname": "BenchdP99LatencyRegression", "severity": "warning", "role": "candidate"}, "tickets"),
        ({"alertname": "BenchdThroughputRegression", "severity": "critical", "role": "champion"}, "pager"),
        ({"alertname": "BenchdEnergyRegression", "severity": "warning", "role": "candidate"}, "tickets"),
        ({"alertname": "BenchdDown", "severity": "critical"}, "pager"),
        ({"alertname": "BenchdAbsent", "severity": "critical"}, "pager"),
        ({"alertname": "BenchdRunsFailing", "severity": "warning"}, "tickets"),
        ({"alertname": "BenchdRegistryUnreachable", "severity": "warning"}, "tickets"),
    ],
)
def test_routes_page_for_critical_and_ticket_for_warning(labels: dict[str, str], receiver: str) -> None:
    pairs = [f"{k}={v}" for k, v in {**labels, "model": "resnet50", "version": "7"}.items()]
    result = _amtool("config", "routes", "test", f"--config.file={CONFIG}", f"--verify.receivers={receiver}",
                     *pairs)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


def test_a_wrong_receiver_is_caught() -> None:
    """The routes test can fail: a warning does not page."""
    result = _amtool("config", "routes", "test", f"--config.file={CONFIG}", "--verify.receivers=pager",
                     "alertname=BenchdRunsFailing", "severity=warning")  # fmt: skip
    assert result.returncode != 0


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[str]:
    """A real Alertmanager on 127.0.0.1 with the shipped config (clustering off)."""
    binary = require_tool("prometheus-alertmanager")
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("wb")
    proc = subprocess.Popen(
        [binary, f"--config.file={CONFIG}", f"--storage.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=", "--log.level=warn"],
        stdout=log, stderr=log, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "alertmanager.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "alertmanager did not become ready"
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def _alert(name: str, severity: str, **labels: str) -> dict:
    base = {"job": "benchd", "instance": "gpu-1:9777"}
    return {"labels": {"alertname": name, "severity": severity, **base, **labels},
            "annotations": {"summary": name}}  # fmt: skip


def _post(url: str, alerts: list[dict]) -> None:
    request = urllib.request.Request(url + "/api/v2/alerts", data=json.dumps(alerts).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as r:
        assert r.status == 200


def _states(url: str) -> dict[tuple[str, str], str]:
    with urllib.request.urlopen(url + "/api/v2/alerts", timeout=10) as r:
        alerts = json.loads(r.read())
    return {(a["labels"]["alertname"], a["labels"].get("version", a["labels"].get("registry", ""))):
            a["status"]["state"] for a in alerts}  # fmt: skip


def _settled(url: str, expected: dict[tuple[str, str], str]) -> dict[tuple[str, str], str]:
    """The alerts' states once they match ``expected`` (the inhibitor learns of new alerts asynchronously),
    or as they are after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        states = _states(url)
        if all(states.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            return states
        time.sleep(0.1)


@pytest.mark.slow
def test_one_regression_pages_once_and_benchd_down_silences_the_rest(alertmanager: str) -> None:
    version = {"model": "resnet50", "scenario": "server", "device": "cuda:0", "batch_size": "8"}
    _post(alertmanager, [
        _alert("BenchdP99LatencyRegression", "critical", role="champion", version="7", **version),
        _alert("BenchdThroughputRegression", "critical", role="champion", version="7", **version),
        _alert("BenchdEnergyRegression", "critical", role="champion", version="7", **version),
        _alert("BenchdThroughputRegression", "warning", role="candidate", version="8", **version),
    ])  # fmt: skip
    expected = {
        ("BenchdP99LatencyRegression", "7"): "active",
        ("BenchdThroughputRegression", "7"): "suppressed",  # same version: inhibited by its P99 alert
        ("BenchdEnergyRegression", "7"): "suppressed",
        ("BenchdThroughputRegression", "8"): "active",  # another version still notifies
    }
    assert _settled(alertmanager, expected) == expected

    _post(alertmanager, [_alert("BenchdRegistryUnreachable", "warning", registry="mlflow")])
    expected[("BenchdRegistryUnreachable", "mlflow")] = "active"
    assert _settled(alertmanager, expected) == expected
    _post(alertmanager, [_alert("BenchdDown", "critical")])
    down = {
        ("BenchdDown", ""): "active",
        ("BenchdP99LatencyRegression", "7"): "suppressed",
        ("BenchdRegistryUnreachable", "mlflow"): "suppressed",
        ("BenchdThroughputRegression", "8"): "suppressed",
    }
    assert _settled(alertmanager, {**expected, **down}) == {**expected, **down}
