"""The NVML adapter against an autospec'd pynvml: units, error translation, fallbacks, CUDA mapping."""

from __future__ import annotations

import logging
import subprocess
import sys
from unittest import mock

import pytest

from benchd.devices import EmptyDeviceSet, WindowSampler, host_fingerprint, nvml, open_devices
from benchd.devices.rapl import RAPLReader
from benchd.errors import DeviceError, DeviceNotFoundError, DeviceNotSupportedError, DeviceUnavailableError

from .conftest import GPU_UUIDS, FakeClock, field_value, nvml_error

NOT_SUPPORTED, FUNCTION_NOT_FOUND, DRIVER_NOT_LOADED, GPU_IS_LOST = 3, 13, 9, 15


def open_one(pynvml_mock: mock.MagicMock, clock: FakeClock | None = None) -> nvml.NVMLDeviceSet:
    return nvml.NVMLDeviceSet.open("0", "PCI_BUS_ID", clock=clock or FakeClock())


def test_info_converts_units_and_reads_capabilities(pynvml_mock: mock.MagicMock) -> None:
    device_set = open_one(pynvml_mock)
    info = device_set.by_cuda_index(0).info()
    assert info.index == 0
    assert info.uuid == GPU_UUIDS[0]
    assert info.name == "NVIDIA H200"
    assert info.driver_version == "570.86.15"
    assert info.cuda_driver_version == "12.8"
    assert info.vbios_version == "96.00.A5.00.01"
    assert info.power_limit_w == 700.0
    assert info.memory_total_bytes == 150_754_820_096
    assert info.supports_energy_counter is True
    assert info.power_period_s == 0.0  # instantaneous power field answers
    assert info.backend == "nvml"
    pynvml_mock.nvmlInit.assert_called_once_with()
    device_set.close()
    device_set.close()
    pynvml_mock.nvmlShutdown.assert_called_once_with()


def test_readings_are_converted_to_si_units(pynvml_mock: mock.MagicMock) -> None:
    pynvml_mock.nvmlDeviceGetCurrentClocksEventReasons.return_value = 0x4 | 0x20 | 0x1
    clock = FakeClock(50.0)
    device = open_one(pynvml_mock, clock).by_cuda_index(0)
    assert device.power_mw() == 312_000
    assert device.power_w() == 312.0
    assert device.energy_mj() == 123_456_789
    assert device.energy_j() == pytest.approx(123_456.789)
    assert device.temperature_c() == 54
    sample = device.sample()
    assert sample.t_mono_s == 50.0
    assert sample.power_w == 312.0
    assert sample.energy_j == pytest.approx(123_456.789)
    assert sample.utilization_ratio == pytest.approx(0.87)
    assert sample.memory_used_bytes == 1_073_741_824
    assert sample.temperature_c == 54.0
    assert sample.sm_clock_hz == pytest.approx(1.98e9)
    assert sample.throttle_reasons == ("idle", "power_cap", "thermal")
    pynvml_mock.nvmlDeviceGetFieldValues.assert_called_with("h0", [186])
    pynvml_mock.nvmlDeviceGetClockInfo.assert_called_with("h0", 1)
    pynvml_mock.nvmlDeviceGetTemperature.assert_called_with("h0", 0)


def test_pre_volta_gpu_has_no_counter_and_averaged_power(pynvml_mock: mock.MagicMock) -> None:
    pynvml_mock.nvmlDeviceGetTotalEnergyConsumption.side_effect = nvml_error(NOT_SUPPORTED)
    pynvml_mock.nvmlDeviceGetFieldValues.return_value = field_value(0, ret=NOT_SUPPORTED)
    pynvml_mock.nvmlDeviceGetArchitecture.side_effect = nvml_error(NOT_SUPPORTED)
    pynvml_mock.nvmlDeviceGetEnforcedPowerLimit.side_effect = nvml_error(NOT_SUPPORTED)
    pynvml_mock.nvmlDeviceGetPowerManagementLimit.return_value = 250_000
    device = open_one(pynvml_mock).by_cuda_index(0)
    info = device.info()
    assert info.supports_energy_counter is False
    assert info.power_period_s == nvml.NVML_POWER_AVERAGE_PERIOD_S  # unknown architecture: assume averaged
    assert info.power_limit_w == 250.0
    assert device.energy_mj() is None
    assert device.sample().energy_j is None
    assert device.power_mw() == 298_000
    assert pynvml_mock.nvmlDeviceGetTotalEnergyConsumption.call_count == 1  # probed once, then cached


def test_unsupported_query_is_none_in_samples_and_not_asked_again(pynvml_mock: mock.MagicMock) -> None:
    pynvml_mock.nvmlDeviceGetUtilizationRates.side_effect = nvml_error(NOT_SUPPORTED)
    device = open_one(pynvml_mock).by_cuda_index(0)
    first, second = device.sample(), device.sample()
    assert first.utilization_ratio is None and second.utilization_ratio is None
    assert second.power_w == 312.0
    assert pynvml_mock.nvmlDeviceGetUtilizationRates.call_count == 1
    with pytest.raises(DeviceNotSupportedError):
        device.utilization_ratio()


def test_old_driver_falls_back_to_throttle_reasons_call(pynvml_mock: mock.MagicMock) -> None:
    pynvml_mock.nvmlDeviceGetCurrentClocksEventReasons.side_effect = nvml_error(FUNCTION_NOT_FOUND)
    pynvml_mock.nvmlDeviceGetCurrentClocksThrottleReasons.return_value = 0x40 | 0x8
    device = open_one(pynvml_mock).by_cuda_index(0)
    assert device.throttle_reasons() == ("hw_slowdown", "hw_thermal")
    assert device.throttle_reasons() == ("hw_slowdown", "hw_thermal")
    assert pynvml_mock.nvmlDeviceGetCurrentClocksEventReasons.call_count == 1


@pytest.mark.parametrize(
    ("code", "error_type"),
    [
        (GPU_IS_LOST, DeviceUnavailableError),
        (DRIVER_NOT_LOADED, DeviceUnavailableError),
        (6, DeviceNotFoundError),
        (NOT_SUPPORTED, DeviceNotSupportedError),
        (999, DeviceError),
    ],
)
def test_nvml_errors_become_device_errors(pynvml_mock: mock.MagicMock, code: int, error_type: type) -> None:
    device = open_one(pynvml_mock).by_cuda_index(0)
    pynvml_mock.nvmlDeviceGetTemperature.side_effect = nvml_error(code)
    with pytest.raises(DeviceError) as caught:
        device.temperature_c()
    assert type(caught.value) is error_type
    assert isinstance(caught.value.__cause__, pynvml_mock.NVMLError)
    assert "nvmlDeviceGetTemperature" in str(caught.value)
    assert f"code {code}" in str(caught.value)


def test_lost_gpu_fails_the_sample_not_just_one_field(pynvml_mock: mock.MagicMock) -> None:
    device = open_one(pynvml_mock).by_cuda_index(0)
    pynvml_mock.nvmlDeviceGetTotalEnergyConsumption.side_effect = nvml_error(GPU_IS_LOST)
    with pytest.raises(DeviceUnavailableError):
        device.sample()


def test_auto_mode_without_driver_gives_empty_set_with_one_info_log(
    pynvml_mock: mock.MagicMock, caplog: pytest.LogCaptureFixture
) -> None:
    pynvml_mock.nvmlInit.side_effect = nvml_error(DRIVER_NOT_LOADED)
    with caplog.at_level(logging.INFO, logger="benchd.devices"):
        device_set = open_devices("auto", cuda_visible_devices=None)
    assert isinstance(device_set, EmptyDeviceSet)
    assert len(device_set) == 0
    records = [r for r in caplog.records if r.name.startswith("benchd.devices")]
    assert [r.levelno for r in records] == [logging.INFO]
    assert "NVML cannot start" in records[0].getMessage()
    with pytest.raises(DeviceNotFoundError, match="Driver Not Loaded"):
        device_set.by_cuda_index(0)


def test_required_gpu_or_nvml_mode_raise_without_driver(pynvml_mock: mock.MagicMock) -> None:
    pynvml_mock.nvmlInit.side_effect = nvml_error(DRIVER_NOT_LOADED)
    with pytest.raises(DeviceUnavailableError, match="NVML cannot start"):
        open_devices("auto", require_gpu=True, cuda_visible_devices=None)
    with pytest.raises(DeviceUnavailableError):
        open_devices("nvml", cuda_visible_devices=None)


def test_missing_bindings_count_as_no_nvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(nvml, "pynvml", None)
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml -> ImportError
    device_set = open_devices("auto", cuda_visible_devices=None)
    assert isinstance(device_set, EmptyDeviceSet)
    assert "nvidia-ml-py" in device_set.reason


@pytest.mark.parametrize(
    ("visible", "nvml_indices"),
    [
        (None, [0, 1, 2, 3]),
        ("2,0", [2, 0]),
        ("GPU-dddddddd-1111-2222-3333-444444444444,1", [3, 1]),
        ("GPU-aaaa,bbbbcccc", [0, 2]),
        ("3,GPU-bbbb,0", [3]),  # ambiguous prefix ends the list, as in CUDA
        ("1,7,2", [1]),
    ],
)
def test_cuda_visible_devices_map_to_nvml_indices(
    pynvml_mock: mock.MagicMock, visible: str | None, nvml_indices: list[int]
) -> None:
    device_set = open_devices("nvml", cuda_visible_devices=visible)
    assert [d.info().index for d in device_set] == nvml_indices
    assert device_set.get("cuda:0").info().index == nvml_indices[0]
    assert device_set.get("cuda").info().index == nvml_indices[0]
    assert device_set.by_cuda_index(len(nvml_indices) - 1).info().uuid == GPU_UUIDS[nvml_indices[-1]]
    with pytest.raises(DeviceNotFoundError):
        device_set.by_cuda_index(len(nvml_indices))


def test_no_visible_gpu_is_an_empty_set_and_nvml_is_shut_down(pynvml_mock: mock.MagicMock) -> None:
    device_set = open_devices("auto", cuda_visible_devices="")
    assert isinstance(device_set, EmptyDeviceSet)
    pynvml_mock.nvmlShutdown.assert_called_once_with()
    with pytest.raises(DeviceNotFoundError):
        open_devices("auto", require_gpu=True, cuda_visible_devices="")


def test_mixed_models_without_pci_order_warn(
    pynvml_mock: mock.MagicMock, caplog: pytest.LogCaptureFixture
) -> None:
    pynvml_mock.nvmlDeviceGetName.side_effect = lambda h: "NVIDIA H200" if h == "h0" else "NVIDIA L4"
    with caplog.at_level(logging.WARNING, logger="benchd.devices"):
        nvml.NVMLDeviceSet.open("1", None).close()
        assert "CUDA_DEVICE_ORDER=PCI_BUS_ID" in caplog.text
        caplog.clear()
        nvml.NVMLDeviceSet.open("1", "PCI_BUS_ID").close()
        nvml.NVMLDeviceSet.open(GPU_UUIDS[1], None).close()
    assert caplog.text == ""


def test_counter_reset_read_through_nvml_is_bridged(pynvml_mock: mock.MagicMock, tmp_path) -> None:
    clock = FakeClock(0.0)
    # mJ at t = 0, 1, 2, 3 s: +1000, reset (driver reload), +1000; power reads 1 W throughout
    pynvml_mock.nvmlDeviceGetTotalEnergyConsumption.side_effect = [5_000, 5_000, 6_000, 500, 1_500]
    pynvml_mock.nvmlDeviceGetFieldValues.return_value = field_value(1_000)
    device_set = open_one(pynvml_mock, clock)  # first value consumed by the capability probe
    sampler = WindowSampler(device_set, RAPLReader(tmp_path / "none"), clock=clock)
    for _ in range(4):
        sampler.sample_once()
        clock.advance(1.0)
    report = sampler.energy_for_window("cuda:0", 0.0, 3.0, samples=3)
    assert report.measured is True
    assert report.source == "nvml_energy_counter"
    assert report.energy_j == pytest.approx(1.0 + 1.0 + 1.0)  # reset interval bridged with 1 W x 1 s
    assert report.energy_per_sample_j == pytest.approx(1.0)
    assert "reset" in (report.reason or "")


def test_fingerprint_of_nvml_gpu(pynvml_mock: mock.MagicMock, tmp_path) -> None:
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Platinum 8480+\n")
    device_set = open_devices("nvml", cuda_visible_devices="2")
    fp = host_fingerprint(device_set, "cuda:0", proc_root=tmp_path)
    assert fp["device_uuid"] == GPU_UUIDS[2]
    assert fp["hardware_class"] == "nvidia-h200-drv570"
    assert fp["driver_version"] == "570.86.15"
    assert fp["cuda_driver_version"] == "12.8"
    assert fp["power_limit_w"] == 700.0
    assert fp["cpu_model"] == "Intel(R) Xeon(R) Platinum 8480+"


def test_importing_benchd_devices_loads_neither_pynvml_nor_torch() -> None:
    code = (
        "import sys, benchd.devices, benchd.devices.meter, benchd.devices.fingerprint;"
        "benchd.devices.open_devices('fake');"
        "print(sorted(m for m in ('pynvml', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
