"""``benchd run`` against a real MLflow server: new versions are downloaded, benchmarked and recorded."""

from __future__ import annotations

import yaml

from benchd.registry.mlflow import cache_folder_name
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
