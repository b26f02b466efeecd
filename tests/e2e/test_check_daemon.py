"""``benchd check --daemon`` against a real daemon: a slower version fails the gate (exit 1)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import write_model
from tests.daemon.conftest import QUICK_BENCHMARK
from tests.daemon.test_daemon import TERMINAL
from tests.e2e.test_prometheus_e2e import V2_WIDTH, VERDICT


@pytest.fixture(scope="module")
def slow_mlp(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("slow") / "mlp", "mlp", width=V2_WIDTH)


@pytest.mark.slow
def test_check_against_a_daemon_exits_1_for_a_slower_version(daemon_factory, zoo, slow_mlp, tmp_path):
    d = daemon_factory({"verdict": VERDICT, "benchmark": QUICK_BENCHMARK}).start()
    shutil.copytree(zoo["mlp"], d.models / "mlp" / "1")
    d.wait_runs(lambda rs: rs and rs[0]["state"] in TERMINAL, 120, "v1's run")
    shutil.copytree(slow_mlp, d.models / "mlp" / "2")

    def check(*extra, token="test-token"):
        env = {**os.environ, "BENCHD_API_TOKEN": token}
        return subprocess.run(
            [sys.executable, "-m", "benchd.cli", "check", "--daemon", d.url, "--model", "mlp", *extra],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
        )

    gate = check("--version", "2", "--json")
    assert gate.returncode == 1, gate.stdout + gate.stderr
    report = json.loads(gate.stdout)
    assert "regressed" in json.dumps(report)
    unknown = check("--version", "9")
    assert unknown.returncode == 2 and "'9'" in unknown.stderr + unknown.stdout
    refused = check("--version", "2", token="wrong")
    assert refused.returncode == 2
