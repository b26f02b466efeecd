"""End-to-end runs through the real worker process, on small real torch models on the CPU."""

import json
import signal

import numpy as np
import pytest

from benchd.records import RunSpec
from benchd.runner.launch import run_spec
from tests.conftest import quick, write_model

ALL_SCENARIOS = tuple(quick(n) for n in ("single_stream", "multi_stream", "server", "offline", "concurrency"))


def spec(folder, **kw):
    base = dict(model=folder.name, version="1", model_path=str(folder), scenarios=(quick(),), timeout_s=120)
    base.update(kw)
    return RunSpec(**base)


@pytest.mark.parametrize("kind", ["mlp", "cnn", "transformer"])
def test_every_scenario_runs_on_real_models(zoo, tmp_path, kind):
    events = []
    result = run_spec(
        spec(zoo[kind], scenarios=ALL_SCENARIOS, batch_sizes=(1, 4)), tmp_path / "out", on_event=events.append
    )
    assert result.ok, result.error
    # multi_stream runs once (its query size is samples_per_query), the rest once per batch size
    got = sorted((r.scenario, r.batch_size) for r in result.results)
    assert got == sorted(
        [("multi_stream", 4)]
        + [(s, b) for s in ("single_stream", "server", "offline", "concurrency") for b in (1, 4)]
    )
    for r in result.results:
        assert r.queries > 0 and r.latency.p50_s > 0
        assert r.latency.p50_s <= r.latency.p99_s <= r.latency.max_s
        assert r.window_end_mono_s > r.window_start_mono_s
        raw = np.load(r.latencies_file)
        assert len(raw) == r.queries and raw.dtype == np.int64
    assert result.fingerprint["torch_version"].startswith("2.")
    assert {"loaded", "scenario", "scenario_done"} <= {e["event"] for e in events}
    written = json.loads((tmp_path / "out" / "result.json").read_text())
    assert len(written["results"]) == len(result.results)


def test_torchscript_loads_and_pickle_needs_permission(zoo, tmp_path):
    assert run_spec(spec(zoo["mlp_ts"]), tmp_path / "ts").ok
    refused = run_spec(spec(zoo["mlp_pickle"]), tmp_path / "p1")
    assert refused.outcome == "failed" and refused.error_kind == "pickle_refused"
    assert "allow_pickle" in refused.error
    assert run_spec(spec(zoo["mlp_pickle"], allow_pickle=True), tmp_path / "p2").ok


def test_a_known_sleep_is_measured_with_small_bias(zoo, tmp_path):
    result = run_spec(
        spec(zoo["sleep"], allow_pickle=True, scenarios=(quick(min_query_count=100),)), tmp_path / "out"
    )
    assert result.ok, result.error
    lat = result.results[0].latency
    assert lat.min_s >= 0.002
    assert lat.p50_s < 0.002 + 0.001


@pytest.mark.parametrize(
    ("mode", "kind", "outcome"),
    [
        ("raise", "model_error", "failed"),
        ("oom", "out_of_memory", "failed"),
        ("segfault", "worker_crashed", "failed"),
    ],
)
def test_model_failures_fail_the_run_not_the_caller(tmp_path, mode, kind, outcome):
    folder = write_model(tmp_path / mode, "faulty", mode=mode)
    result = run_spec(spec(folder, allow_pickle=True), tmp_path / "out")
    assert (result.outcome, result.error_kind) == (outcome, kind)
    if mode == "segfault":
        assert signal.Signals.SIGSEGV.name in result.error
    if mode == "raise":
        assert "deliberate failure" in result.error


def test_a_hanging_model_times_out_and_is_killed(tmp_path):
    folder = write_model(tmp_path / "hang", "faulty", mode="hang")
    result = run_spec(spec(folder, allow_pickle=True, timeout_s=8), tmp_path / "out")
    assert (result.outcome, result.error_kind) == ("timeout", "timeout")
    assert "8 s" in result.error
    assert result.duration_s < 30


def test_input_mismatch_missing_and_corrupt_artifacts(zoo, tmp_path):
    import shutil

    bad = tmp_path / "mismatch"
    shutil.copytree(zoo["mlp"], bad)
    (bad / "benchd.yaml").write_text("inputs: [{name: x, shape: [batch, 5]}]\n")
    r = run_spec(spec(bad), tmp_path / "o1")
    assert r.error_kind == "input_mismatch", r.error

    corrupt = tmp_path / "corrupt"
    shutil.copytree(zoo["mlp"], corrupt)
    (corrupt / "model.pt2").write_bytes(b"PK\x03\x04 not really a zip")
    r = run_spec(spec(corrupt), tmp_path / "o2")
    assert r.error_kind == "corrupt_artifact", r.error

    r = run_spec(spec(tmp_path / "nowhere"), tmp_path / "o3")
    assert r.error_kind == "artifact_not_found" and "does not exist" in r.error


def test_cuda_device_without_cuda_is_device_unavailable(zoo, tmp_path):
    # CUDA hidden from this worker only (added to its allow-listed environment), so a GPU host holds too
    r = run_spec(spec(zoo["mlp"], device="cuda:0"), tmp_path / "out", env={"CUDA_VISIBLE_DEVICES": ""})
    assert r.error_kind == "device_unavailable"
    assert "CUDA is not available" in r.error


def test_cancel_interrupts_the_worker(zoo, tmp_path):
    import threading

    cancel = threading.Event()
    timer = threading.Timer(3.0, cancel.set)
    timer.start()
    r = run_spec(
        spec(zoo["mlp"], scenarios=(quick(min_duration_s=60, max_duration_s=120),)),
        tmp_path / "out",
        cancel=cancel,
    )
    assert r.error_kind == "interrupted" and r.duration_s < 30
