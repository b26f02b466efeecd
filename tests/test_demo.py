"""``benchd demo`` end to end, as a newcomer runs it (shorter runs via the hidden --fast)."""

import re
import subprocess
import sys

from tests.mlflow_server import free_port


def test_demo_shows_the_regression_and_the_improvement(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchd.cli",
            "--log-level",
            "WARNING",
            "demo",
            "--exit",
            "--fast",
            "--port",
            str(free_port()),
            "--dir",
            str(tmp_path / "demo"),
        ],
        capture_output=True,
        text=True,
        timeout=400,
    )
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "verdict: none (the first version has no baseline)" in out
    assert re.search(r"verdict vs v1: REGRESSED", out), out
    assert re.search(r"verdict vs v2: IMPROVED", out), out
    assert "benchd history --config" in out and "/metrics" in out
    history = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "history", "--config", str(tmp_path / "demo" / "benchd.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert history.returncode == 0 and history.stdout.count("demo-mlp") == 3
