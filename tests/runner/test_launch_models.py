"""The sandbox end to end: real worker processes, real (pickled, hostile) torch models on the CPU."""

from __future__ import annotations

import os
import subprocess
import sys

import psutil
import pytest

from benchd.records import RunSpec
from benchd.runner.launch import WorkerLimits, run_spec
from tests.conftest import REPO, quick

pytestmark = pytest.mark.slow
ENV = {"PYTHONPATH": str(REPO)}


def hostile(tmp_path, kind):
    folder, out = tmp_path / kind, tmp_path / "out"
    subprocess.run(
        [sys.executable, "-m", "tests.runner.hostile_models", str(folder), kind, str(out)],
        check=True,
        capture_output=True,
        timeout=120,
        env={**os.environ, **ENV},
    )
    return folder, out


def spec(folder, **kw):
    base = dict(
        model=folder.name,
        version="1",
        model_path=str(folder),
        scenarios=(quick(),),
        timeout_s=120,
        allow_pickle=True,
    )
    base.update(kw)
    return RunSpec(**base)


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_a_model_forking_a_child_that_ignores_sigterm_leaves_nothing_after_a_normal_end(tmp_path):
    folder, out = hostile(tmp_path, "fork")
    result = run_spec(spec(folder), out, env=ENV, limits=WorkerLimits(grace_s=1.0))
    assert result.ok, result.error
    child = int((out / "child.pid").read_text())
    assert not alive(child), f"the model's child {child} outlived its run"


def test_a_model_whose_child_leaves_the_session_leaves_nothing_after_a_timeout(tmp_path):
    folder, out = hostile(tmp_path, "setsid_hang")
    result = run_spec(spec(folder, timeout_s=20), out, env=ENV, limits=WorkerLimits(grace_s=1.0))
    assert (result.outcome, result.error_kind) == ("timeout", "timeout")
    assert (out / "child.pid").exists(), "the worker timed out before the model's first query"
    child = int((out / "child.pid").read_text())
    assert not alive(child), f"the model's setsid child {child} outlived the timeout"


def test_a_model_past_the_memory_limit_fails_as_out_of_memory_and_a_normal_one_runs(tmp_path, zoo):
    limits = WorkerLimits(memory_limit_bytes=1 << 30)
    folder, out = hostile(tmp_path, "greedy")
    result = run_spec(spec(folder), out, env=ENV, limits=limits)
    assert (result.outcome, result.error_kind) == ("failed", "out_of_memory"), result.error
    assert "at most 1 GiB" in result.error
    normal = run_spec(spec(zoo["mlp"], allow_pickle=False), tmp_path / "mlp", limits=limits)
    assert normal.ok, normal.error
