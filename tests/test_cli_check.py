"""`benchd check`: local mode against a real local registry; daemon mode against a small fake of our API."""

from __future__ import annotations

import http.server
import json
import re
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


def test_first_version_passes_as_no_baseline_unless_a_baseline_is_required(config, tmp_path, capsys):
    champion = Path(yaml.safe_load(config.read_text())["registries"][0]["root"]) / "m" / "champion"
    args = ["check", "--config", str(config), "--model", "m", "--version", "1"]
    assert champion.read_text().strip() == "1"  # the champion is the candidate itself: look for older
    junit, report = tmp_path / "j.xml", tmp_path / "report.json"
    assert main([*args, "--junit", str(junit), "--json", str(report)]) == 0
    out = capsys.readouterr().out  # --json FILE: the table still prints
    assert "result: NO_BASELINE (no verdict) (passes: nothing to compare with yet" in out
    assert re.search(r"^all +- +- +- +- +- +no_baseline$", out, flags=re.M), out
    doc = json.loads(report.read_text())
    assert (doc["status"], doc["exit_code"], doc["verdicts"]) == ("no_baseline", 0, [])
    assert "no older version" in doc["no_baseline"]
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("1", "0", "1")
    assert suite.find("testcase/skipped").get("type") == "no_baseline"
    assert suite.find("properties/property[@name='status']").get("value") == "no_baseline"

    assert main([*args, "--require-baseline", "--junit", str(junit), "--json"]) == 3
    doc = json.loads(capsys.readouterr().out)  # bare --json: the report on stdout instead of the table
    assert (doc["status"], doc["exit_code"], doc["require_baseline"]) == ("no_baseline", 3, True)
    suite = ET.parse(junit).getroot().find("testsuite")
    assert (suite.get("failures"), suite.get("skipped")) == ("1", "0")
    assert suite.find("testcase/failure").get("type") == "no_baseline"


def test_the_config_can_require_a_baseline(config, tmp_path, capsys):
    strict = tmp_path / "strict.yaml"
    doc = yaml.safe_load(config.read_text())
    doc["verdict"]["require_baseline"] = True
    strict.write_text(yaml.safe_dump(doc))
    args = ["check", "--config", str(strict), "--model", "m", "--version", "1", "--json"]
    assert main(args) == 3  # the model's first version: nothing to compare with, and the config says fail
    doc = json.loads(capsys.readouterr().out)
    assert (doc["status"], doc["exit_code"], doc["require_baseline"]) == ("no_baseline", 3, True)


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
    runs: list[dict] = []  # GET /api/v1/runs?model=...
    failures: dict[str, list[int | str]] = {}  # per method, answered first: an HTTP status, or "drop"
    seen: list[tuple[str, str, dict, dict]] = []

    def _failed(self) -> bool:
        failures = type(self).failures.get(self.command)
        if not failures:
            return False
        failure = failures.pop(0)
        if failure == "drop":  # close the connection without an answer: a connection error
            self.close_connection = True
            self.connection.shutdown(2)
        else:
            self._send(int(failure), {"error": "unavailable", "reason": "warming up"})
        return True

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
        if not self._failed():
            self._send(self.post_status, self.post_body)

    def do_GET(self) -> None:  # noqa: N802
        type(self).seen.append(("GET", self.path, dict(self.headers), {}))
        if self._failed():
            return
        if self.path.startswith("/api/v1/runs?"):
            self._send(200, {"runs": type(self).runs})
            return
        if self.path != "/api/v1/runs/7":
            self._send(404, {"error": "not_found", "reason": f"no run {self.path}"})
            return
        records = type(self).records
        self._send(200, records.pop(0) if len(records) > 1 else records[0])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def daemon(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeDaemon]]:
    handler = type("Handler", (FakeDaemon,), {"seen": [], "records": [], "runs": [], "failures": {},
                                              "post_status": 202, "post_body": {"run_id": 7}})  # fmt: skip
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
                 "--poll-interval", "0.02", "--retry-initial-s", "0.05", *extra])  # fmt: skip


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


def test_unreachable_daemon_is_retried_until_the_timeout_then_exits_2(capsys):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code = main(["check", "--daemon", f"http://127.0.0.1:{port}", "--model", "m", "--version", "5",
                 "--timeout", "1s", "--retry-initial-s", "0.1"])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert f"asking the daemon at http://127.0.0.1:{port} failed (ConnectionError" in err
    assert "retrying in 0.1 s (attempt 1)" in err and "retrying in 0.2 s (attempt 2)" in err
    assert "gave up after --timeout 1s: asking the daemon at" in err and "last: ConnectionError" in err


def test_daemon_transient_failures_are_retried_with_backoff_and_said(daemon, capsys):
    daemon.failures = {"POST": [503, "drop"], "GET": [500, "drop"]}
    daemon.records = [_record("running"), {**_record("ok"), "verdicts": [to_dict(_verdict("regressed"))]}]
    assert _check(daemon, "--json") == 1
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["status"] == "regressed" and doc["retries"] == 4
    retries = [line for line in captured.err.splitlines() if "retrying in" in line]
    assert len(retries) == 4, captured.err
    assert "asking the daemon at" in retries[0] and "HTTP 503: warming up" in retries[0]
    assert "ConnectionError" in retries[1] and "reading run 7" in retries[2] and "HTTP 500" in retries[2]
    waits = [float(re.search(r"retrying in ([0-9.]+) s", line).group(1)) for line in retries]
    assert waits == [0.05, 0.1, 0.05, 0.1]  # exponential per request, from --retry-initial-s
    assert [m for m, *_ in daemon.seen].count("POST") == 3  # two failed tries, then the queued run


def test_daemon_failing_past_the_timeout_gives_up_with_the_last_error(daemon, capsys):
    daemon.failures = {"POST": [503] * 1000}
    assert _check(daemon, "--timeout", "0.5s") == 2
    err = capsys.readouterr().err
    assert "retrying in" in err
    assert re.search(r"gave up after --timeout 0.5s: asking the daemon at \S+ failed \d+ time\(s\), "
                     r"last: HTTP 503: warming up", err), err  # fmt: skip


def test_daemon_without_another_version_passes_as_no_baseline(daemon, tmp_path, capsys):
    daemon.records = [_record("ok")]  # benchmarked, no verdict
    daemon.runs = [_record("ok")]  # and no other version has a run
    assert _check(daemon, "--json", str(tmp_path / "r.json")) == 0
    assert "result: NO_BASELINE" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "no_baseline"
    assert _check(daemon, "--require-baseline") == 3
    capsys.readouterr()

    other = {**_record("ok"), "version": "4"}
    daemon.runs = [_record("ok"), other]  # an older version has runs: no verdict is undecided, not a pass
    assert _check(daemon) == 3
    out = capsys.readouterr().out
    assert "result: INCONCLUSIVE" in out and "although versions 4 have runs" in out


def test_a_refused_verdict_fails_the_gate_with_its_sentence():
    from benchd.cli.check_report import EXIT_ERROR, CheckReport, format_report

    refused = Verdict(
        model="m", candidate_version="2", baseline_version="1", scenario="single_stream", batch_size=1,
        device="cpu", method="refused", metrics=(),
        note="refused: the P99 threshold 10% is below this host's noise floor 14.0% for model m",
    )  # fmt: skip
    report = CheckReport(model="m", version="2", mode="daemon", verdicts=[refused])
    assert (report.status, report.exit_code) == ("error", EXIT_ERROR)
    assert "noise floor 14.0%" in format_report(report)
