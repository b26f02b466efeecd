"""``benchd bench`` and ``benchd.evaluate`` as a user calls them."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import benchd
from benchd.errors import ConfigError, RunFailedError
from tests.conftest import write_model


def bench(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "benchd.cli", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
    )


def test_bench_prints_a_table_and_keeps_raw_latencies(zoo, tmp_path):
    out = tmp_path / "out"
    proc = bench(
        str(zoo["mlp"]),
        "--scenario",
        "single_stream,offline",
        "--batch-size",
        "1,4",
        "--duration",
        "0.3s",
        "--json",
        str(tmp_path / "r.json"),
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout
    assert "scenario" in table and "p99.9" in table and "samples/s" in table
    assert table.count("VALID") >= 4
    assert "not measured" in table  # no RAPL here: energy is never made up
    result = json.loads((tmp_path / "r.json").read_text())
    assert {(r["scenario"], r["batch_size"]) for r in result["results"]} == {
        ("single_stream", 1),
        ("offline", 1),
        ("single_stream", 4),
        ("offline", 4),
    }
    assert result["fingerprint"]["hardware_class"].startswith("cpu-")
    for r in result["results"]:
        assert len(np.load(r["latencies_file"])) == r["queries"]
    assert (out / "summary.json").is_file()


def test_bench_on_an_artifact_file_uses_its_folder(zoo, tmp_path):
    proc = bench(str(zoo["mlp"] / "model.pt2"), "--duration", "0.2s", "--out", str(tmp_path / "o"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "single_stream" in proc.stdout


def test_bench_errors_are_clear(zoo, tmp_path):
    bad = bench(str(zoo["mlp"]), "--scenario", "warp", "--out", str(tmp_path / "a"))
    assert bad.returncode == 2 and "unknown scenario 'warp'" in bad.stderr
    refused = bench(str(zoo["mlp_pickle"]), "--duration", "0.2s", "--out", str(tmp_path / "b"), "--quiet")
    assert refused.returncode == 1 and "pickle_refused" in refused.stderr
    missing = bench(str(tmp_path / "nope"), "--out", str(tmp_path / "c"))
    assert missing.returncode == 2 and "does not exist" in missing.stderr


def test_evaluate_a_folder_and_an_in_memory_module(zoo, tmp_path):
    result = benchd.evaluate(
        str(zoo["mlp"]),
        config={
            "scenarios": ["single_stream"],
            "defaults": {"min_duration": "0.2s", "warmup": "0.05s", "min_query_count": 50},
        },
    )
    assert result.ok and result.results[0].latency.p99_s > 0
    import torch  # the test process may import torch; the daemon never does
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU())
    r2 = benchd.evaluate(
        model,
        inputs=torch.randn(2, 8),
        scenarios=["offline"],
        duration_s=0.2,
        batch_sizes=[4],
        out_dir=tmp_path / "eval",
    )
    assert r2.results[0].scenario == "offline" and r2.results[0].batch_size == 4
    assert (tmp_path / "eval" / "result.json").is_file()
    with pytest.raises(ConfigError, match="example inputs"):
        benchd.evaluate(model)


def test_evaluate_raises_a_typed_error_when_the_run_fails(tmp_path):
    folder = write_model(tmp_path / "faulty", "faulty", mode="raise")
    with pytest.raises(RunFailedError) as e:
        benchd.evaluate(str(folder), allow_pickle=True, duration_s=0.2)
    assert e.value.kind == "model_error"


def test_load_config_names_the_bad_field(tmp_path):
    path = tmp_path / "b.yaml"
    path.write_text("scenarios:\n  server: {target_qps: -5}\n")
    with pytest.raises(ConfigError, match=r"scenarios.server.target_qps: must be > 0"):
        benchd.load_config(str(path))
