"""`benchd check`: local mode against a real local registry; daemon mode against a small fake of our API."""

from __future__ import annotations

import http.server
import json
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from benchd.cli import main
from benchd.history import RunRecord
from benchd.records import MetricVerdict, RunSpec, Verdict, to_dict
from tests.comparison.models import write_models

# --------------------------------------------------------------------------------------------- local mode


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local registry: m/1 and m/2 identical (sleep 2 ms), m/3 three times slower, champion -> 1."""
    root = tmp_path_factory.mktemp("check") / "models"
    write_models({
        root / "m" / "1": ("sleep", {"sleep_s": 0.002}),
        root / "m" / "2": ("sleep", {"sleep_s": 0.002}),
        root / "m" / "3": ("sleep", {"sleep_s": 0.006}),
    })  # fmt: skip
    (root / "m" / "champion").write_text("1\n")
    return root


@pytest.fixture(scope="module")
def config(registry: Path) -> Path:
    # Sleep models keep p50 and throughput steady even on a busy shared CPU; their P99 is not (a wake-up
    # can wait for a core), so its threshold is loose here: this tests the command, not the statistics.
    doc = {
        "data_dir": str(registry.parent / "data"),
        "devices": {"mode": "none"},
        "registries": [
            {"name": "local", "type": "local", "root": str(registry), "settle": "0s", "allow_pickle": True}
        ],
        "benchmark": {
            "device": "cpu",
            "threads": 1,
            "scenarios": {"single_stream": {}},
            "defaults": {"warmup": "0.1s", "min_duration": "0.4s", "min_query_count": 50},
        },
        "verdict": {
            "threshold": 0.1,
            "thresholds": {"p99_latency": 0.9},
            "min_pairs": 4,
            "max_pairs": 16,
            "trial": "0.4s",
            "time_cap": "60s",
        },
    }
    path = registry.parent / "benchd.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_identical_version_passes(config, capsys):
    code = main(["--log-level", "WARNING", "check", "--config", str(config), "--model", "m", "--version", "2",
                 "--baseline", "1"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out + capsys.readouterr().err
    assert "m 2 vs 1 on cpu" in out and "result: PASS" in out
    for metric in ("p99_latency", "p50_latency", "throughput"):
        assert metric in out


def test_slower_version_regresses_with_json_and_junit(config, tmp_path, capsys):
    junit = tmp_path / "junit.xml"
    code = main(["--log-level", "WARNING", "check", "--config", str(config), "--model", "m", "--version", "3",
                 "--json", "--junit", str(junit)])  # fmt: skip
    doc = json.loads(capsys.readouterr().out)
    assert code == 1
    assert doc["status"] == "regressed" and doc["exit_code"] == 1 and doc["mode"] == "local"
    assert doc["baseline"] == "1"  # the champion, not the previous version (2)
    (verdict,) = doc["verdicts"]
    states = {m["metric"]: m["state"] for m in verdict["metrics"]}
    assert states["p50_latency"] == "regressed" and states["throughput"] == "regressed"
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and int(suite.get("tests")) == len(states)
    failures = {tc.get("name") for tc in suite.iter("testcase") if tc.find("failure") is not None}
    assert {"p50_latency", "throughput"} <= failures
    assert int(suite.get("failures")) == len(failures)


def test_unknown_version_exits_2_with_a_sentence(config, registry, capsys):
    code = main(["check", "--config", str(config), "--model", "m", "--version", "7"])
    err = capsys.readouterr().err
    assert code == 2
    assert f"model 'm' has no version '7' in registry 'local' ({registry})" in err
    code = main(["check", "--config", str(config), "--model", "m", "--version", "3", "--baseline", "9"])
    assert code == 2 and "has no version '9'" in capsys.readouterr().err
    code = main(["check", "--config", str(config), "--model", "m", "--version", "1", "--registry", "prod"])
    assert code == 2 and "no registry named 'prod'" in capsys.readouterr().err


def test_first_version_has_no_baseline_and_is_inconclusive(config, tmp_path, capsys):
    champion = Path(yaml.safe_load(config.read_text())["registries"][0]["root"]) / "m" / "champion"
    args = ["check", "--config", str(config), "--model", "m", "--version", "1"]
    assert champion.read_text().strip() == "1"  # the champion is the candidate itself: look for older
    assert main(args) == 3
    assert "no baseline to compare with" in capsys.readouterr().out
    junit = tmp_path / "j.xml"
    assert main([*args, "--inconclusive-passes", "--junit", str(junit)]) == 0
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("failures") == "0" and suite.get("tests") == "1"


# -------------------------------------------------------------------------------------------- daemon mode


def _verdict(state: str) -> Verdict:
    ratio = {"regressed": 1.4, "unchanged": 1.01, "inconclusive": 1.08}[state]
    metric = MetricVerdict("p99_latency", state, ratio, ratio - 0.05, ratio + 0.05, 0.002, 0.002 * ratio,
                           0.1, 0.05, 8, 4000, 4000)  # fmt: skip
    return Verdict("m", "5", "4", "single_stream", 1, "cuda:0", "paired", (metric,), note="8 pairs")


def _record(state: str, **kw: object) -> dict:
    spec = RunSpec(model="m", version="5", model_path="/models/m/5")
    run = RunRecord(7, "m", "5", "cuda:0", state, 10, "requested over the API", spec, 1, 1.0, **kw)
    return run.to_json()


class FakeDaemon(http.server.BaseHTTPRequestHandler):
    """Our own API contract: POST /api/v1/runs -> 202 {run_id}; GET /api/v1/runs/N -> RunRecord + verdicts."""

    post_status = 202
    post_body: dict = {"run_id": 7}
    records: list[dict] = []  # returned in turn; the last one repeats
    seen: list[tuple[str, str, dict, dict]] = []

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:  # noqa: N802 - http.server names
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        type(self).seen.append(("POST", self.path, dict(self.headers), body))
        self._send(self.post_status, self.post_body)

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(("GET", self.path, dict(self.headers), {}))
        if self.path != "/api/v1/runs/7":
            self._send(404, {"error": "not_found", "reason": f"no run {self.path}"})
            return
        records = type(self).records
        self._send(200, records.pop(0) if len(records) > 1 else records[0])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeDaemon]]:
    handler = type("Handler", (FakeDaemon,), {"seen": [], "records": [], "post_status": 202,
                                              "post_body": {"run_id": 7}})  # fmt: skip
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    handler.url = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("BENCHD_API_TOKEN", "tok-123")
    yield handler
    server.shutdown()
    server.server_close()


def _check(daemon: type[FakeDaemon], *extra: str) -> int:
    return main(["--log-level", "WARNING", "check", "--daemon", daemon.url, "--model", "m", "--version", "5",
                 "--poll-interval", "0.02", *extra])  # fmt: skip


def test_daemon_regressed_run(daemon, capsys):
    daemon.records = [_record("queued"), _record("running"),
                      {**_record("ok"), "verdicts": [to_dict(_verdict("regressed"))]}]  # fmt: skip
    assert _check(daemon, "--json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["status"] == "regressed" and doc["baseline"] == "4" and doc["mode"] == "daemon"
    method, path, headers, body = daemon.seen[0]
    assert (method, path) == ("POST", "/api/v1/runs")
    assert headers["Authorization"] == "Bearer tok-123"
    assert body == {"model": "m", "version": "5", "baseline": None, "force": True}
    assert [s[1] for s in daemon.seen[1:]] == ["/api/v1/runs/7"] * 3


def test_daemon_unchanged_prints_the_table_and_passes(daemon, capsys):
    daemon.records = [{**_record("ok"), "verdicts": [to_dict(_verdict("unchanged"))]}]
    assert _check(daemon, "--baseline", "4") == 0
    out = capsys.readouterr().out
    assert "p99_latency  2.000ms   2.020ms    1.010  [0.960, 1.060]  unchanged" in out
    assert "result: PASS" in out
    assert daemon.seen[0][3]["baseline"] == "4"


def test_daemon_inconclusive_exits_3_unless_it_passes(daemon, tmp_path, capsys):
    daemon.records = [{**_record("ok"), "verdicts": [to_dict(_verdict("inconclusive"))]}]
    assert _check(daemon) == 3
    junit = tmp_path / "j.xml"
    assert _check(daemon, "--inconclusive-passes", "--junit", str(junit)) == 0
    assert ET.parse(junit).getroot().find("testsuite").get("failures") == "0"
    assert _check(daemon, "--junit", str(junit)) == 3
    failure = ET.parse(junit).getroot().find("testsuite/testcase/failure")
    assert failure is not None and failure.get("type") == "inconclusive"


def test_daemon_errors_exit_2_with_a_sentence(daemon, capsys, monkeypatch):
    reason = "no registry knows model 'm' version '5'"
    daemon.post_status, daemon.post_body = 404, {"error": "unknown_version", "reason": reason}
    assert _check(daemon) == 2
    assert "no registry knows model 'm' version '5'" in capsys.readouterr().err

    daemon.post_status, daemon.post_body = (
        401,
        {"error": "unauthorized", "reason": "missing or wrong bearer token"},
    )
    monkeypatch.delenv("BENCHD_API_TOKEN")
    assert _check(daemon) == 2
    assert "missing or wrong bearer token (BENCHD_API_TOKEN is not set here)" in capsys.readouterr().err

    monkeypatch.setenv("BENCHD_API_TOKEN", "tok-123")
    daemon.post_status, daemon.post_body = 202, {"run_id": 7}
    daemon.records = [
        _record("failed", error_kind="model_error", error="the model raised on its first query")
    ]
    assert _check(daemon) == 2
    assert "ended failed (model_error): the model raised on its first query" in capsys.readouterr().err

    daemon.records = [_record("running")]
    assert _check(daemon, "--timeout", "0.3s") == 2
    assert "gave up after --timeout 0.3s: run 7 is still running" in capsys.readouterr().err


def test_unreachable_daemon_exits_2(capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["check", "--daemon", f"http://127.0.0.1:{port}", "--model", "m", "--version", "5"])
    assert code == 2
    assert f"cannot reach the benchd daemon at http://127.0.0.1:{port}" in capsys.readouterr().err
