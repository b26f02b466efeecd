"""docker-compose.yml: schema, mounts, profiles, and how benchd, Prometheus, Alertmanager, Grafana connect."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
from deploy_support import DEPLOY, REPO, RULES_FILE, load_yaml, tool

BENCHD_SERVICES = {"gpu": "benchd-gpu", "cpu": "benchd-cpu"}


INIT = DEPLOY / "init.py"
GENERATED = {
    "./rendered/benchd-rules.yml",
    "./rendered/grafana-alerts.yml",
    "./secrets/grafana-admin-password",
}
"""Files the compose stack uses that deploy/init.py makes (git-ignored): they are missing in a clean clone."""


def _mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, container target) of each volume, short or long syntax."""
    out = []
    for spec in service.get("volumes", []):
        if isinstance(spec, dict):
            assert spec["type"] in ("bind", "volume"), spec
            if spec["type"] == "bind":  # a generated file: compose must not create a folder in its place
                assert spec["bind"]["create_host_path"] is False, spec
            out.append((spec["source"], spec["target"]))
        else:
            source, target = spec.split(":")[:2]
            out.append((source, target))
    return out


def _published(service: dict[str, Any], port: int) -> bool:
    return f"127.0.0.1:{port}:{port}" in service.get("ports", [])


@pytest.fixture(scope="module")
def initialised(tmp_path_factory) -> Path:
    """deploy/init.py run into a copy's folder: what the compose stack finds after the one set-up step."""
    out = tmp_path_factory.mktemp("deploy")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BENCHD_")}
    result = subprocess.run([sys.executable, str(INIT), "--out-dir", str(out)], capture_output=True,
                            text=True, timeout=60, env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
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
            if source in GENERATED:
                continue  # made by init.py (test_init_makes_what_compose_needs)
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
        assert service["ports"] == ["127.0.0.1:9777:9777"]
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
    # the rendered copy of deploy/prometheus/benchd-rules.yml (init.py), and only it
    assert rule_files == [DEPLOY / "rendered" / "benchd-rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["benchd"]["static_configs"][0]["targets"] == ["benchd:9777"]
    for target in config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]:
        host, port = target.split(":")
        assert host in compose["services"] and _published(compose["services"][host], int(port))


def test_promtool_accepts_the_prometheus_config_and_its_rules(initialised, tmp_path):
    assert RULES_FILE.is_file(), f"{RULES_FILE.relative_to(REPO)} is missing"
    promtool = tool("promtool")
    config = tmp_path / "prometheus.yml"  # beside the rendered rules, as in the container
    config.write_text((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    (tmp_path / RULES_FILE.name).write_text((initialised / "rendered" / RULES_FILE.name).read_text())
    result = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True,
                            timeout=60)  # fmt: skip
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
    assert _published(compose["services"][url.hostname], url.port)


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
    # Grafana-managed alerts are the alternative to Prometheus's rules, not an addition: none is loaded
    alerting = _host_path(grafana, "/etc/grafana/provisioning/alerting")
    assert not sorted(alerting.glob("*.y*ml")), "Grafana alert rules are provisioned next to Prometheus's"


def test_every_port_is_published_on_loopback_only(compose):
    for name, service in compose["services"].items():
        for spec in service.get("ports", []):
            assert isinstance(spec, str) and spec.startswith("127.0.0.1:"), f"{name} publishes {spec!r}"


def test_grafana_never_starts_with_admin_admin(compose, initialised):
    grafana = compose["services"]["grafana"]
    env = grafana["environment"]
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env and "admin" not in str(
        env.get("GF_SECURITY_ADMIN_PASSWORD")
    )
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert grafana["secrets"] == ["grafana_admin_password"]
    assert compose["secrets"]["grafana_admin_password"]["file"] in {
        f"./{p}" for p in ("secrets/grafana-admin-password",)
    }
    password = (initialised / "secrets" / "grafana-admin-password").read_text().strip()
    assert len(password) >= 24 and password != "admin"
    assert (initialised / "secrets").stat().st_mode & 0o777 == 0o700


def test_init_makes_what_compose_needs_and_keeps_the_password(compose, initialised):
    made = {str(p.relative_to(initialised)) for p in initialised.rglob("*") if p.is_file()}
    assert {g.removeprefix("./") for g in GENERATED} == made
    ignored = (DEPLOY / ".gitignore").read_text().split()
    assert "secrets/" in ignored and "rendered/" in ignored
    first = (initialised / "secrets" / "grafana-admin-password").read_text()
    rerun = subprocess.run([sys.executable, str(INIT), "--out-dir", str(initialised)], capture_output=True,
                           text=True, timeout=60)  # fmt: skip
    assert rerun.returncode == 0 and "password kept" in rerun.stdout
    assert (initialised / "secrets" / "grafana-admin-password").read_text() == first
    for rendered in ("benchd-rules.yml", "grafana-alerts.yml"):
        text = (initialised / "rendered" / rendered).read_text()
        assert "${BENCHD_" not in text and "http://localhost:3000/d/benchd-model?" in text
    promtool = tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(initialised / "rendered" / "benchd-rules.yml")],
                           capture_output=True, text=True, timeout=60)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.parametrize("image", ["prometheus", "alertmanager", "grafana"])
def test_third_party_images_are_pinned(compose, image):
    ref = compose["services"][image]["image"]
    assert ":" in ref and not ref.endswith(":latest"), ref
