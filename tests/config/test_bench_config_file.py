"""`benchd bench --config` and `benchd.evaluate(config=...)` read the daemon's config file or a bare one."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import benchd
from benchd.cli import build_parser
from benchd.config import (
    BenchConfig,
    ConfigError,
    bench_config_from,
    config_kind,
    load_bench_config,
    load_daemon_config,
)
from tests.conftest import REPO

DAEMON = """
http: {port: 9100}
devices: {mode: fake, fake: {count: 1}}
benchmark:
  device: cpu
  batch_sizes: [2]
  scenarios: [offline]
  defaults: {warmup: 0.05s, min_duration: 0.2s, min_query_count: 20}
"""
BARE = """
device: cpu
batch_sizes: [2]
scenarios: [offline]
defaults: {warmup: 0.05s, min_duration: 0.2s, min_query_count: 20}
"""


def test_which_kind_a_file_is_follows_from_its_top_level_keys():
    assert config_kind({"benchmark": {}}) == "daemon"
    assert config_kind({"registries": [], "http": {}}) == "daemon"
    assert config_kind({"scenarios": ["server"], "device": "cpu"}) == "bench"
    assert config_kind({}) == config_kind(None) == "bench"


def test_a_daemon_file_and_a_bare_file_give_the_same_benchmark(tmp_path):
    daemon, bare = tmp_path / "daemon.yaml", tmp_path / "bare.yaml"
    daemon.write_text(DAEMON)
    bare.write_text(BARE)
    assert load_bench_config(daemon) == load_bench_config(bare) == load_daemon_config(daemon).benchmark
    assert load_bench_config(daemon).batch_sizes == (2,)
    example = REPO / "configs" / "example.yaml"
    assert benchd.load_config(str(example)) == load_daemon_config(example).benchmark
    assert bench_config_from({"benchmark": {"seed": 3}}).seed == 3
    assert bench_config_from({"seed": 3}) == BenchConfig(seed=3)


def test_a_daemon_file_is_validated_whole(tmp_path):
    path = tmp_path / "daemon.yaml"
    path.write_text("http: {port: 70000}\nbenchmark: {device: cpu}\n")
    with pytest.raises(ConfigError, match=r"http.port: must be <= 65535"):
        load_bench_config(path)


def test_benchmark_fields_at_the_top_of_a_daemon_file_are_refused(tmp_path):
    path = tmp_path / "mixed.yaml"
    path.write_text("http: {port: 9100}\ndevice: cpu\nbatch_sizes: [4]\n")
    with pytest.raises(ConfigError) as e:
        load_bench_config(path)
    lines = str(e.value).splitlines()
    assert [line.split(": ")[1] for line in lines] == ["batch_sizes", "device"]
    assert "move it under benchmark:" in lines[0]


def test_bench_help_says_which_files_it_takes():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = " ".join(sub.choices["bench"].format_help().split())
    assert "a daemon config (its benchmark: section is used" in text
    assert "or a bare benchmark config" in text


@pytest.mark.slow
def test_bench_runs_the_benchmark_section_of_a_daemon_config(zoo, tmp_path):
    config = tmp_path / "daemon.yaml"
    config.write_text(DAEMON)
    proc = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "bench", str(zoo["mlp"]), "--config", str(config),
         "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "out"), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "r.json").read_text())
    assert [(r["scenario"], r["batch_size"], r["device"]) for r in result["results"]] == [
        ("offline", 2, "cpu")
    ]
