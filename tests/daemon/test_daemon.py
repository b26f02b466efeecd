"""``benchd run`` end to end: a real daemon process, a local folder registry, real CPU models."""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import sys
import time

import yaml
from prometheus_client.parser import text_string_to_metric_families

from benchd.registry.webhook import sign_mlflow_payload
from tests.daemon.conftest import wait_until

TERMINAL = {"ok", "failed", "timeout", "invalid", "interrupted"}


def publish(daemon, zoo_folder, model, version):
    target = daemon.models / model / version
    shutil.copytree(zoo_folder, target)
    return target


def test_two_versions_are_benchmarked_and_visible_in_history_and_api(daemon_factory, zoo):
    d = daemon_factory().start()
    publish(d, zoo["mlp"], "mlp", "1")
    publish(d, zoo["mlp"], "mlp", "2")
    runs = d.wait_runs(
        lambda rs: len([r for r in rs if r["state"] in TERMINAL]) == 2, 120, "two finished runs"
    )
    assert {(r["model"], r["version"], r["state"]) for r in runs} == {("mlp", "1", "ok"), ("mlp", "2", "ok")}
    status, one = d.get(f"/api/v1/runs/{runs[0]['id']}")
    assert status == 200 and one["id"] == runs[0]["id"]
    assert d.get("/api/v1/runs/999999")[0] == 404
    # fake devices: the scripted 200 W reaches the stored result through the meter
    energy = one["result"]["results"][0]["energy"]
    assert energy["measured"] and abs(energy["mean_power_w"] - 200) < 1e-6
    history = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "history", "--config", str(d.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert history.returncode == 0, history.stderr
    lines = [line for line in history.stdout.splitlines() if line.split()[:1] and line.split()[0].isdigit()]
    assert {tuple(line.split()[1:3]) for line in lines} == {("mlp", "1"), ("mlp", "2")}
    assert d.stop() == 0


def test_faulty_versions_fail_with_reasons_and_the_daemon_carries_on(daemon_factory, zoo, tmp_path):
    d = daemon_factory().start()
    corrupt = publish(d, zoo["mlp"], "broken", "1")
    (corrupt / "model.pt2").write_bytes(b"PK\x03\x04garbage")
    badspec = publish(d, zoo["mlp"], "badspec", "1")
    (badspec / "benchd.yaml").write_text("inputs:\n  - name: x\n    shape: [batch, 64]\n    dtyp: float32\n")
    missing = publish(d, zoo["mlp"], "missing", "1")
    (missing / "model.pt2").unlink()
    (missing / "benchd.yaml").write_text("artifact: model.pt2\ninputs: [{name: x, shape: [batch, 64]}]\n")
    publish(d, zoo["mlp"], "good", "1")
    runs = d.wait_runs(
        lambda rs: len([r for r in rs if r["state"] in TERMINAL]) == 4, 120, "four finished runs"
    )
    by_model = {r["model"]: r for r in runs}
    assert by_model["good"]["state"] == "ok"
    assert (by_model["broken"]["state"], by_model["broken"]["error_kind"]) == ("failed", "corrupt_artifact")
    assert by_model["badspec"]["error_kind"] == "invalid_model_spec"
    assert (
        "inputs[0].dtyp" in by_model["badspec"]["error"]
        and "did you mean 'dtype'" in by_model["badspec"]["error"]
    )
    assert by_model["missing"]["error_kind"] == "artifact_not_found"
    assert d.get("/healthz")[0] == 200


def test_bad_daemon_config_exits_2_naming_the_field(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("registries:\n  - {type: local, root: /tmp/x, poll_interval: -1s}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "run", "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "registries[0].poll_interval: must be > 0" in proc.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "run", "--config", str(tmp_path / "nope.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 2 and "config file not found" in missing.stderr


def polls(daemon, registry, outcome):
    """The daemon's benchd_registry_polls_total{registry, outcome}, read from /metrics (0 when absent)."""
    for family in text_string_to_metric_families(daemon.get("/metrics")[1]):
        for sample in family.samples:
            if sample.name == "benchd_registry_polls_total" and sample.labels == {
                "registry": registry,
                "outcome": outcome,
            }:
                return sample.value
    return 0.0


def test_webhooks_are_verified_and_only_trigger_a_poll(daemon_factory):
    secret = "s3cret"
    registry = {
        "name": "ml",
        "type": "mlflow",
        "tracking_uri": "http://127.0.0.1:9",  # nothing listens: every poll of it fails, and is counted
        "poll_interval": "1h",  # after the start-up poll, only a webhook makes it poll within the test
        "webhook_secret_env": "HOOK_SECRET",
    }
    d = daemon_factory(env={"HOOK_SECRET": secret})
    config = yaml.safe_load(d.config_path.read_text())
    config["registries"].append(registry)  # keep the local registry, add the MLflow one
    d.config_path.write_text(yaml.safe_dump(config))
    d.start()
    assert polls(d, "ml", "error") == 1  # ready means polled once: the start-up poll
    body = json.dumps(
        {
            "entity": "model_version",
            "action": "created",
            "timestamp": "2026-11-28T00:00:00Z",
            "data": {"name": "m", "version": "1"},
        }
    ).encode()
    now = str(int(time.time()))

    def post(headers, data=body):
        return d.request(
            "POST", "/api/v1/hooks/mlflow", data, {"Content-Type": "application/json", **headers}
        )

    good = {
        "X-MLflow-Delivery-Id": "d-1",
        "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign_mlflow_payload(secret.encode(), "d-1", now, body),
    }
    assert post(good)[0] == 202
    # the delivery made the registry poll now: a second poll, an hour before the schedule's
    wait_until(lambda: polls(d, "ml", "error") == 2, 30, "the poll the webhook triggered")
    assert post(good)[0] == 400  # replay of the same delivery
    forged = dict(
        good,
        **{
            "X-MLflow-Delivery-Id": "d-2",
            "X-MLflow-Signature": sign_mlflow_payload(b"wrong", "d-2", now, body),
        },
    )
    assert post(forged)[0] == 401
    old = str(int(time.time()) - 3600)
    stale = {
        "X-MLflow-Delivery-Id": "d-3",
        "X-MLflow-Timestamp": old,
        "X-MLflow-Signature": sign_mlflow_payload(secret.encode(), "d-3", old, body),
    }
    assert post(stale)[0] == 400
    # an oversized body is refused from its Content-Length, before it is read
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=10)
    conn.putrequest("POST", "/api/v1/hooks/mlflow")
    conn.putheader("Content-Length", str(2 << 20))
    conn.endheaders()
    assert conn.getresponse().status == 413
    conn.close()
    # refused deliveries poll nothing (tests/service/test_api.py proves it without a race); a new good one
    # polls again
    assert polls(d, "ml", "error") == 2
    now = str(int(time.time()))
    fresh = {
        "X-MLflow-Delivery-Id": "d-4",
        "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign_mlflow_payload(secret.encode(), "d-4", now, body),
    }
    assert post(fresh)[0] == 202
    wait_until(lambda: polls(d, "ml", "error") == 3, 30, "the poll of the second delivery")
    assert polls(d, "ml", "ok") == 0 and d.runs() == []


def test_api_requests_need_the_token_and_a_known_version(daemon_factory, zoo):
    d = daemon_factory().start()
    publish(d, zoo["mlp"], "mlp", "1")
    d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "the first run")
    body = json.dumps({"model": "mlp", "version": "1"}).encode()
    assert d.request("POST", "/api/v1/runs", body)[0] == 401
    assert d.request("POST", "/api/v1/runs", body, {"Authorization": "Bearer wrong"})[0] == 401
    auth = {"Authorization": "Bearer test-token", "Content-Type": "application/json"}
    status, answer = d.request(
        "POST", "/api/v1/runs", json.dumps({"model": "mlp", "version": "9"}).encode(), auth
    )
    assert status == 404 and "version '9'" in answer["reason"]
    status, answer = d.request("POST", "/api/v1/runs", body, auth)
    assert status == 202
    rerun = wait_until(
        lambda: (lambda r: r if r["state"] in TERMINAL else None)(
            d.get(f"/api/v1/runs/{answer['run_id']}")[1]
        ),
        120,
        "the requested run",
    )
    assert rerun["state"] == "ok" and rerun["reason"] == "requested over the API"


def test_kill_9_mid_run_loses_nothing_and_requeues_the_run_once(daemon_factory, zoo):
    slow = {**__import__("tests.daemon.conftest", fromlist=["QUICK_BENCHMARK"]).QUICK_BENCHMARK}
    slow["defaults"] = {**slow["defaults"], "min_duration": "6s", "max_duration": "20s"}
    d = daemon_factory({"benchmark": slow}).start()
    publish(d, zoo["mlp"], "mlp", "1")
    d.wait_runs(lambda rs: rs and rs[0]["state"] == "running", 60, "the run to start")
    time.sleep(1.0)
    d.kill9()
    d.start()
    runs = d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "the re-queued run to finish")
    assert len(runs) == 1
    assert runs[0]["state"] == "ok" and runs[0]["attempts"] == 2
    assert "re-queued" in d.log()
    assert d.stop() == 0


def test_two_versions_published_at_the_same_instant_both_run_once(daemon_factory, zoo):
    d = daemon_factory().start()
    staging = d.root / "staging"
    for v in ("1", "2"):
        shutil.copytree(zoo["mlp"], staging / v)
    (d.models / "twin").mkdir()
    for v in ("1", "2"):
        (staging / v).rename(d.models / "twin" / v)
    runs = d.wait_runs(lambda rs: len([r for r in rs if r["state"] in TERMINAL]) >= 2, 120, "both runs")
    time.sleep(2.0)  # several more polls: nothing may be queued twice
    runs = d.runs()
    assert sorted(r["version"] for r in runs) == ["1", "2"]


def test_the_daemon_process_never_imports_torch(daemon_factory, zoo):
    d = daemon_factory().start()
    publish(d, zoo["mlp"], "mlp", "1")
    d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "a run")
    try:
        with open(f"/proc/{d.proc.pid}/maps") as f:
            maps = f.read()
    except PermissionError:  # not root: the daemon hides its /proc from its own user (make_undumpable)
        import psutil

        rss_mib = psutil.Process(d.proc.pid).memory_info().rss / 2**20
        assert rss_mib < 180, f"daemon RSS {rss_mib:.0f} MiB: importing torch alone takes about 220 MiB"
        return
    assert "libtorch" not in maps
    assert "torch" not in " ".join(line.split()[-1] for line in maps.splitlines() if "/" in line)


def test_sigterm_interrupts_a_long_run_after_the_grace_period(daemon_factory, zoo):
    slow = {**__import__("tests.daemon.conftest", fromlist=["QUICK_BENCHMARK"]).QUICK_BENCHMARK}
    slow["defaults"] = {**slow["defaults"], "min_duration": "60s", "max_duration": "90s"}
    d = daemon_factory({"benchmark": slow, "shutdown_grace": "1s"}).start()
    publish(d, zoo["mlp"], "mlp", "1")
    d.wait_runs(lambda rs: rs and rs[0]["state"] == "running", 60, "the run to start")
    started = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - started < 30
    d.start()
    runs = d.runs()
    assert runs[0]["state"] == "interrupted" and runs[0]["error_kind"] == "interrupted"


def test_history_mode_verdicts_say_they_are_weaker(daemon_factory, zoo):
    d = daemon_factory({"verdict": {"mode": "history"}}).start()
    publish(d, zoo["mlp"], "mlp", "1")
    d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "v1's run")
    publish(d, zoo["mlp"], "mlp", "2")
    run2 = d.wait_runs(lambda rs: len(rs) == 2 and rs[0]["state"] in TERMINAL, 120, "v2's run")[0]
    verdicts = wait_until(lambda: d.get(f"/api/v1/runs/{run2['id']}")[1]["verdicts"], 60, "v2's verdict")
    (verdict,) = verdicts
    assert verdict["method"] == "history" and verdict["weaker"] is True
    assert (verdict["candidate_version"], verdict["baseline_version"]) == ("2", "1")
    # one stored run per side cannot decide: inconclusive, never a silent pass
    assert {m["state"] for m in verdict["metrics"]} == {"inconclusive"}
