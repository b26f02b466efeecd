"""docker-compose.yml: schema, mounts, profiles, and how benchd, Prometheus, Alertmanager, Grafana connect."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from deploy_support import DEPLOY, REPO, RULES_FILE, load_yaml, tool

BENCHD_SERVICES = {"gpu": "benchd-gpu", "cpu": "benchd-cpu"}


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container target) of each volume in short syntax."""
    out = []
    for spec in service.get("volumes", []):
        assert isinstance(spec, str), f"use the short volume syntax: {spec!r}"
        source, target = spec.split(":")[:2]
        out.append((source, target))
    return out


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    """The repo path a bind mount puts at ``container_path`` in ``service`` (longest mount wins)."""
    want = PurePosixPath(container_path)
    best: tuple[str, str] | None = None
    for source, target in _mounts(service):
        covers = want == PurePosixPath(target) or PurePosixPath(target) in want.parents
        if source.startswith((".", "/")) and covers and (best is None or len(target) > len(best[1])):
            best = (source, target)
    assert best is not None, f"nothing is bind-mounted at {container_path}"
    return (DEPLOY / best[0] / want.relative_to(best[1])).resolve()


def test_compose_file_matches_the_compose_spec_schema(compose, compose_schema):
    jsonschema.Draft202012Validator.check_schema(compose_schema)
    errors = [e.message for e in jsonschema.Draft202012Validator(compose_schema).iter_errors(compose)]
    assert errors == []


def test_schema_rejects_a_misspelt_service_key(compose, compose_schema):
    # The validator must be able to fail: a typo in a service is caught.
    broken = copy.deepcopy(compose)
    broken["services"]["prometheus"]["volumne"] = broken["services"]["prometheus"].pop("volumes")
    assert not jsonschema.Draft202012Validator(compose_schema).is_valid(broken)


def test_every_bind_mount_source_exists_and_named_volumes_are_declared(compose):
    declared = set(compose.get("volumes") or {})
    for name, service in compose["services"].items():
        for source, _target in _mounts(service):
            if source.startswith((".", "/")):
                path = (DEPLOY / source).resolve()
                assert path.exists(), f"{name} mounts {source}, missing at {path.relative_to(REPO)}"
                assert REPO in path.parents, f"{name} mounts {source} from outside the repository"
            else:
                assert source in declared, f"{name} uses volume {source!r}, not declared under volumes:"


def test_build_contexts_and_dockerfiles_exist(compose):
    for name in BENCHD_SERVICES.values():
        build = compose["services"][name]["build"]
        context = (DEPLOY / build["context"]).resolve()
        assert context == REPO, f"{name} must build from the repository root"
        assert (context / build["dockerfile"]).is_file()


def test_each_profile_runs_exactly_one_benchd_reachable_as_benchd(compose):
    services = compose["services"]
    for profile, name in BENCHD_SERVICES.items():
        in_profile = [n for n, s in services.items() if profile in s.get("profiles", [])]
        assert in_profile == [name]
        service = services[name]
        assert "benchd" in service["networks"]["default"]["aliases"]
        assert "9777:9777" in service["ports"]
        assert _host_path(service, "/etc/benchd/benchd.yaml") == DEPLOY / "benchd.yaml"
        assert any(target == "/var/lib/benchd" for _s, target in _mounts(service))
    # The rest of the stack runs whatever the profile.
    always = {n for n, s in services.items() if not s.get("profiles")}
    assert always == {"prometheus", "alertmanager", "grafana"}
    env = (DEPLOY / ".env").read_text(encoding="utf-8")
    assert "COMPOSE_PROFILES=gpu" in env.splitlines(), "a plain `docker compose up` must start the GPU stack"


def test_gpu_service_reserves_nvidia_gpus_and_cpu_service_none(compose):
    devices = compose["services"]["benchd-gpu"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert "deploy" not in compose["services"]["benchd-cpu"]


def test_prometheus_loads_the_rules_file_and_scrapes_benchd(compose):
    service = compose["services"]["prometheus"]
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    config_in_container = config_arg.split("=", 1)[1]
    config_path = _host_path(service, config_in_container)
    assert config_path == DEPLOY / "prometheus" / "prometheus.yml"
    config = load_yaml(config_path)
    rules_dir = PurePosixPath(config_in_container).parent
    rule_files = [_host_path(service, str(rules_dir / f)) for f in config["rule_files"]]
    assert rule_files == [RULES_FILE], "Prometheus must load deploy/prometheus/benchd-rules.yml, and only it"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["benchd"]["static_configs"][0]["targets"] == ["benchd:9777"]
    for target in config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]:
        host, port = target.split(":")
        assert host in compose["services"] and f"{port}:{port}" in compose["services"][host]["ports"]


def test_promtool_accepts_the_prometheus_config_and_its_rules():
    assert RULES_FILE.is_file(), f"{RULES_FILE.relative_to(REPO)} is missing"
    promtool = tool("promtool")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and str(RULES_FILE.name) in result.stdout


def test_amtool_accepts_the_alertmanager_config(compose):
    service = compose["services"]["alertmanager"]
    config_arg = next(a for a in service["command"] if a.startswith("--config.file="))
    path = _host_path(service, config_arg.split("=", 1)[1])
    amtool = tool("amtool")
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_datasource_points_at_the_compose_prometheus(compose):
    grafana = compose["services"]["grafana"]
    doc = load_yaml(_host_path(grafana, "/etc/grafana/provisioning/datasources/benchd.yml"))
    prometheus = [d for d in doc["datasources"] if d.get("type") == "prometheus"]
    assert [d.get("uid") for d in prometheus] == ["prometheus"]
    url = urlsplit(prometheus[0]["url"])
    assert url.hostname in compose["services"], f"{url.hostname} is not a compose service"
    assert f"{url.port}:{url.port}" in compose["services"][url.hostname]["ports"]


def test_grafana_dashboard_provider_path_is_mounted_with_the_dashboards(compose):
    grafana = compose["services"]["grafana"]
    doc = load_yaml(_host_path(grafana, "/etc/grafana/provisioning/dashboards/benchd.yml"))
    paths = [p["options"]["path"] for p in doc["providers"]]
    assert paths, "no dashboard provider"
    for path in paths:
        host_dir = _host_path(grafana, path)
        assert sorted(p.name for p in host_dir.glob("*.json")), f"no dashboards at {host_dir}"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(grafana, home).is_file()
    alerting = _host_path(grafana, "/etc/grafana/provisioning/alerting")
    assert sorted(alerting.glob("*.yml")), "no Grafana alert provisioning files are mounted"


@pytest.mark.parametrize("image", ["prometheus", "alertmanager", "grafana"])
def test_third_party_images_are_pinned(compose, image):
    ref = compose["services"][image]["image"]
    assert ":" in ref and not ref.endswith(":latest"), ref
