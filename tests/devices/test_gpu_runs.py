"""A real benchd run on cuda:0: torch runs the model on the GPU, the parent meters the window through NVML.

Run by bench/gpu_check.sh. Skipped only on a host with no NVIDIA GPU (tests/gpu.py); where a GPU is, a
CPU-only torch build, a driver NVML cannot use or a run that fails on the GPU fails these tests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchd.devices import DeviceSet, RAPLReader, WindowSampler, host_fingerprint
from benchd.records import RunSpec
from benchd.runner.launch import run_spec
from tests.conftest import quick, write_model
from tests.gpu import open_gpus_or_fail

pytestmark = [pytest.mark.gpu, pytest.mark.slow]


@pytest.fixture(scope="module")
def gpus() -> Iterator[DeviceSet]:
    device_set = open_gpus_or_fail()
    yield device_set
    device_set.close()


def test_the_worker_torch_build_can_use_the_gpu(gpus: DeviceSet) -> None:
    probe = (
        "import json, torch; print(json.dumps({'torch': torch.__version__, 'cuda': torch.version.cuda,"
        " 'available': torch.cuda.is_available(), 'count': torch.cuda.device_count()}))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout.strip().splitlines()[-1])
    assert info["cuda"], (
        f"torch {info['torch']} is a CPU-only build: install the CUDA build (README) to use the GPU"
    )
    assert info["available"] and info["count"] >= len(gpus), f"torch cannot use the GPU NVML sees: {info}"


def test_a_run_on_cuda_0_is_timed_on_the_gpu_and_metered_through_nvml(
    gpus: DeviceSet, tmp_path: Path
) -> None:
    model = write_model(tmp_path / "mlp", "mlp")
    spec = RunSpec(
        model="mlp",
        version="1",
        model_path=str(model),
        device="cuda:0",
        scenarios=(quick(min_duration_s=2.0, max_duration_s=10.0, min_query_count=200),),
        timeout_s=300,
    )
    with WindowSampler(gpus, RAPLReader(), interval_s=0.02) as sampler:
        result = run_spec(
            spec,
            tmp_path / "out",
            meter=sampler,
            host_fingerprint=host_fingerprint(gpus, "cuda:0"),
            meter_device="cuda:0",
        )
    assert result.ok, f"{result.error_kind}: {result.error}"
    (r,) = result.results
    assert r.device == "cuda:0" and r.queries >= 200
    # CUDA events time the device's part of each query, which is inside the harness's time
    assert r.device_time_p50_s is not None and 0 < r.device_time_p50_s <= r.latency.p50_s
    assert r.energy is not None and r.energy.measured, r.energy
    assert r.energy.source.startswith("nvml_") and r.energy.mean_power_w and r.energy.mean_power_w > 1.0
    assert r.telemetry is not None and r.telemetry.samples >= 20
    assert result.fingerprint["hardware_class"].startswith("nvidia-")
    assert result.fingerprint.get("torch_cuda_version")
