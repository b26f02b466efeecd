"""The README's commands are the real ones: CI runs its test command, and every benchd command parses."""

import re
import shlex

import pytest
import yaml

from benchd.cli import build_parser
from tests.conftest import REPO

README = (REPO / "README.md").read_text()


def code_blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_install_and_test_commands():
    first, second = code_blocks("bash")[:2]
    steps = [part.strip() for part in first.strip().split("&&")]
    assert steps[0] == "python3.11 -m venv .venv"
    assert steps[1] == ".venv/bin/pip install torch==2.13.0"  # torch pinned, before the project
    assert steps[2].startswith(".venv/bin/pip install") and steps[2].split()[-1] == "."
    assert steps[3] == ".venv/bin/benchd demo" and len(steps) == 4
    assert second.strip() == "bash .ci/run"


def test_ci_run_installs_everything_then_lints_and_runs_the_whole_suite():
    ci = (REPO / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    script = "\n".join(lines)
    for package in ("prometheus", "prometheus-alertmanager", "systemd", "postgresql"):
        assert re.search(rf"apt-get install[^\n]*\\\n[^\n]*\b{package}\b", script), package
    assert 'SUDO="sudo"' in script and "id -u" in script
    order = [
        ci.index('pip install -q "torch==${TORCH_VERSION}"'),
        ci.index("pip install -q -e '.[test]'"),
        ci.index("ruff check daemon tests bench"),
        ci.index("Type check"),
        ci.index('python -m pytest "$@"'),
    ]
    assert order == sorted(order), "torch, then the test extra, ruff, the type check slot, pytest"
    assert "TORCH_VERSION=2.13.0" in ci


def test_a_missing_tool_fails_with_one_sentence_naming_the_debian_package():
    from tests.system_tools import missing_tool_message, require_tool

    for tool, package in (("promtool", "prometheus"), ("amtool", "prometheus-alertmanager"),
                          ("systemd-analyze", "systemd"), ("initdb", "postgresql")):  # fmt: skip
        sentence = missing_tool_message(tool)
        assert f"install the Debian package {package} " in sentence
        assert sentence.endswith(".") and "\n" not in sentence
    with pytest.raises(pytest.fail.Exception, match="is not installed: install"):
        require_tool("benchd-no-such-tool")


def benchd_commands():
    out = []
    for block in code_blocks("bash") + code_blocks("yaml"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip().removeprefix("- ").removeprefix("run: ")
            if line.startswith("benchd "):
                out.append(line)
    return out


@pytest.mark.parametrize("command", benchd_commands())
def test_every_benchd_command_in_the_readme_parses(command):
    words = shlex.split(re.sub(r"\$\{\{[^}]*\}\}", "X", command))  # CI template expressions
    args = build_parser().parse_args(words[1:])
    assert callable(args.handler)


def test_there_are_readme_commands_for_each_subcommand():
    used = {shlex.split(c)[1] for c in benchd_commands()}
    assert {"run", "bench", "check", "history", "demo", "config"} <= used


def test_every_alert_runbook_points_at_a_readme_section():
    rules = yaml.safe_load((REPO / "deploy" / "prometheus" / "benchd-rules.yml").read_text())
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert alerts
    for alert in alerts:
        anchor = alert["annotations"]["runbook_url"].split("#", 1)[1]
        assert anchor == f"alert-{alert['alert'].lower()}"
        assert f'<a id="{anchor}"></a>' in README, anchor


def documented_metric_names(text):
    """Every ``benchd_*`` name the text spells out, whole, plus the table's sibling shorthand.

    ``benchd_scrape_collector_success`` / ``_duration_seconds`` documents
    ``benchd_scrape_collector_duration_seconds`` too: the stem is the first name without its last word.
    """
    found = set(re.findall(r"\bbenchd_[a-z0-9_]*[a-z0-9]\b", text))
    for first, rest in re.findall(r"`(benchd_[a-z0-9_]+)`((?:\s*/\s*`_[a-z0-9_]+`)+)", text):
        stem = first.rsplit("_", 1)[0]
        found |= {stem + suffix for suffix in re.findall(r"`(_[a-z0-9_]+)`", rest)}
    return found


def test_every_metric_in_the_contract_is_in_the_readme():
    from benchd.metrics.names import ALL_METRICS

    documented = documented_metric_names(README)
    missing = [spec.name for spec in ALL_METRICS if spec.name not in documented]
    assert not missing, f"metrics of the contract the README never names: {missing}"


def test_the_metric_name_check_reads_whole_names_and_the_shorthand():
    names = documented_metric_names(
        "`benchd_run_timestamp_seconds` and `benchd_x_success` / `_duration_seconds`"
    )
    assert names == {"benchd_run_timestamp_seconds", "benchd_x_success", "benchd_x_duration_seconds"}
    assert "benchd_run_duration_seconds" not in documented_metric_names("benchd_run_duration_seconds_total")


def test_every_config_field_is_in_the_readme_reference():
    for field in (
        "data_dir",
        "http.host",
        "api_token_env",
        "max_body_bytes",
        "store.url",
        "devices.mode",
        "require_gpu",
        "poll_interval",
        "allow_pickle",
        "settle",
        "tracking_uri",
        "champion_alias",
        "verify_tls",
        "max_artifact_bytes",
        "webhook_secret_env",
        "batch_sizes",
        "min_duration",
        "target_qps",
        "latency_bound",
        "search_max_qps",
        "samples_per_query",
        "concurrency",
        "verdict.mode",
        "min_pairs",
        "time_cap",
        "inconclusive_passes",
        "latest_versions",
        "latency_buckets",
        "champion_cron",
        "shutdown_grace",
    ):
        assert field in README, field
