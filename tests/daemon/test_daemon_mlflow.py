"""``benchd run`` against a real MLflow server: new versions are downloaded, benchmarked and recorded."""

from __future__ import annotations

import json
import time

import yaml

from benchd.registry.mlflow import cache_folder_name
from benchd.registry.webhook import sign_mlflow_payload
from tests.daemon.test_daemon import TERMINAL


def files_of(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and p.name != "READY"}


def test_versions_registered_in_mlflow_are_benchmarked(daemon_factory, seeder, zoo):
    seeder.create_model("daemon-mlp")
    seeder.create_version("daemon-mlp", files_of(zoo["mlp"]))
    d = daemon_factory()
    config = yaml.safe_load(d.config_path.read_text())
    config["registries"] = [
        {
            "name": "mlflow",
            "type": "mlflow",
            "tracking_uri": seeder.base_url,
            "models": ["daemon-mlp"],
            "poll_interval": "1s",
        }
    ]
    d.config_path.write_text(yaml.safe_dump(config))
    d.start()
    d.wait_runs(lambda rs: any(r["state"] in TERMINAL for r in rs), 120, "the first MLflow version's run")
    seeder.create_version("daemon-mlp", files_of(zoo["mlp"]))
    runs = d.wait_runs(lambda rs: len([r for r in rs if r["state"] in TERMINAL]) == 2, 120, "both runs")
    assert {(r["model"], r["version"], r["state"]) for r in runs} == {
        ("daemon-mlp", "1", "ok"),
        ("daemon-mlp", "2", "ok"),
    }
    cached = d.root / "data" / "cache" / "mlflow" / cache_folder_name("daemon-mlp") / "2"
    assert (cached / "benchd.yaml").is_file()
    assert d.stop() == 0


def test_a_webhook_delivery_gets_a_new_version_benchmarked_long_before_the_next_poll(
    daemon_factory, seeder, zoo
):
    seeder.create_model("hook-mlp")
    seeder.create_version("hook-mlp", files_of(zoo["mlp"]))
    d = daemon_factory(env={"HOOK_SECRET": "s3cret"})
    config = yaml.safe_load(d.config_path.read_text())
    config["registries"] = [
        {
            "name": "mlflow",
            "type": "mlflow",
            "tracking_uri": seeder.base_url,
            "models": ["hook-mlp"],
            "poll_interval": "1h",  # the start-up poll, then none for an hour: only the webhook polls
            "webhook_secret_env": "HOOK_SECRET",
        }
    ]
    d.config_path.write_text(yaml.safe_dump(config))
    d.start()
    d.wait_runs(lambda rs: any(r["state"] in TERMINAL for r in rs), 120, "the start-up poll's run of v1")
    seeder.create_version("hook-mlp", files_of(zoo["mlp"]))  # v2, registered after the start-up poll
    assert [r["version"] for r in d.runs()] == ["1"]
    body = json.dumps(
        {
            "entity": "model_version",
            "action": "created",
            "timestamp": "2026-11-28T00:00:00Z",
            "data": {"name": "hook-mlp", "version": "2"},
        }
    ).encode()
    now = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": "delivery-2",
        "X-MLflow-Timestamp": now,
        "X-MLflow-Signature": sign_mlflow_payload(b"s3cret", "delivery-2", now, body),
    }
    assert d.request("POST", "/api/v1/hooks/mlflow", body, headers)[0] == 202
    runs = d.wait_runs(
        lambda rs: any(r["version"] == "2" and r["state"] in TERMINAL for r in rs), 120, "v2's run"
    )
    assert {(r["version"], r["state"]) for r in runs} == {("1", "ok"), ("2", "ok")}
    assert "webhook: hook-mlp/2 created in mlflow; polling now" in d.log()
    assert d.stop() == 0
