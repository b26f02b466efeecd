"""Real-GPU checks, run by bench/gpu_check.sh: skipped only on a host with no NVIDIA GPU (tests/gpu.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from benchd.devices import DeviceSet, RAPLReader, WindowSampler, host_fingerprint
from tests.gpu import open_gpus_or_fail

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def gpus() -> Iterator[DeviceSet]:
    """The host's GPUs through NVML; a GPU that is there but unusable fails (tests/conftest.py skips none)."""
    device_set = open_gpus_or_fail()
    yield device_set
    device_set.close()


def test_gpu_info_is_plausible(gpus: DeviceSet) -> None:
    info = gpus.get("cuda:0").info()
    assert info.backend == "nvml"
    assert info.uuid.startswith("GPU-")
    assert info.name
    assert info.driver_version and info.driver_version[0].isdigit()
    assert info.memory_total_bytes and info.memory_total_bytes > 2**30
    assert info.power_limit_w is None or 10.0 < info.power_limit_w < 2000.0


def test_gpu_sample_has_si_values(gpus: DeviceSet) -> None:
    sample = gpus.get("cuda:0").sample()
    assert sample.power_w is not None and 1.0 < sample.power_w < 2000.0
    assert sample.temperature_c is not None and 0.0 < sample.temperature_c < 120.0
    assert sample.utilization_ratio is None or 0.0 <= sample.utilization_ratio <= 1.0
    assert sample.sm_clock_hz is None or 1e8 < sample.sm_clock_hz < 5e9
    assert sample.memory_used_bytes is None or sample.memory_used_bytes >= 0


def test_gpu_idle_energy_over_one_second_is_measured(gpus: DeviceSet) -> None:
    device = gpus.get("cuda:0")
    with WindowSampler(gpus, RAPLReader(), interval_s=0.02) as sampler:
        start_s = time.monotonic()
        time.sleep(1.2)
        end_s = time.monotonic()
    report = sampler.energy_for_window("cuda:0", start_s, end_s, samples=1)
    assert report.measured, report.reason
    expected = "nvml_energy_counter" if device.info().supports_energy_counter else "nvml_power_integration"
    assert report.source == expected
    assert report.mean_power_w is not None and 1.0 < report.mean_power_w < 2000.0
    summary = sampler.telemetry_for_window("cuda:0", start_s, end_s)
    assert summary.samples >= 20


def test_gpu_fingerprint_class(gpus: DeviceSet) -> None:
    fp = host_fingerprint(gpus, "cuda:0")
    assert fp["hardware_class"].startswith("nvidia-")
    assert "-drv" in fp["hardware_class"]
