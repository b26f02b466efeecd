"""``benchd demo`` end to end, as a newcomer runs it (shorter runs via the hidden --fast)."""

import re
import subprocess
import sys

import pytest

from tests.mlflow_server import free_port

LOG_LINE = re.compile(r"\b(DEBUG|INFO|WARNING|ERROR|CRITICAL)\b.*: ")


@pytest.mark.slow
def test_demo_tells_its_story_on_a_clean_console_and_logs_the_daemon_to_a_file(tmp_path):
    demo = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "demo", "--exit", "--fast", "--port", str(free_port()),
         "--dir", str(demo)],
        capture_output=True,
        text=True,
        timeout=400,
    )  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr[-3000:]
    # the console carries the demo's own story at the default log level, and no daemon log line
    assert proc.stderr == "", proc.stderr[-3000:]
    assert not [line for line in out.splitlines() if LOG_LINE.search(line)], out
    assert f"daemon log: {demo / 'benchd.log'}" in out
    story = [
        r"publishing demo-mlp v1 \(the baseline\)",
        r"v1: the daemon noticed it and started run 1 on cpu",
        r"v1: run 1 ok in \d+ s: single_stream p50 \S+  p99 \S+  [\d,]+ queries/s",
        r"v1: it is the first version: nothing to compare with",
        r"publishing demo-mlp v2 \(slower: wider layers\)",
        r"v2: comparing it with its baseline",
        r"v2: verdict against v1: REGRESSED",
        r"p50_latency +x\d\.\d{3}  95% interval \[\d\.\d{3}, \d\.\d{3}\]  [a-z]+",
        r"publishing demo-mlp v3 \(faster: narrower layers\)",
        r"v3: verdict against v2: IMPROVED",
        r"done\. Where to look:",
    ]
    position = 0
    for step in story:  # in this order
        match = re.compile(step).search(out, position)
        assert match, f"{step!r} missing after position {position}:\n{out}"
        position = match.end()
    assert "benchd history --config" in out and "/metrics" in out

    # the daemon's log went to the file: what it decided, and nothing per routine poll
    log = (demo / "benchd.log").read_text()
    assert re.search(r"INFO benchd\.service\.scheduler: new version demo-mlp/2 in registry demo", log)
    assert re.search(r"INFO benchd\.service\.slots: run 2 of demo-mlp/2 ended ok in [\d.]+ s: single_stream "
                     r"bs=1 p50 [\d.]+ ms, p99 [\d.]+ ms", log)  # fmt: skip
    assert re.search(
        r"INFO benchd\.service\.verdicts: verdict demo-mlp/2 vs 1 \(single_stream\): REGRESSED", log
    )
    assert "apscheduler" not in log and "Running job" not in log

    history = subprocess.run(
        [sys.executable, "-m", "benchd.cli", "history", "--config", str(demo / "benchd.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert history.returncode == 0 and history.stdout.count("demo-mlp") == 3
