"""Fixtures for the devices tests: a hand-driven clock, a fake powercap root, an autospec'd pynvml."""

from __future__ import annotations

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import pytest

from benchd.devices import nvml


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, start_s: float = 1000.0) -> None:
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, dt_s: float) -> float:
        self.now_s += dt_s
        return self.now_s


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def write_rapl_domain(
    root: Path, name: str, label: str, energy_uj: int, max_uj: int = 262_143_328_850
) -> Path:
    domain = root / name
    domain.mkdir(parents=True, exist_ok=True)
    (domain / "name").write_text(label + "\n")
    (domain / "energy_uj").write_text(f"{energy_uj}\n")
    (domain / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return domain


@pytest.fixture
def powercap(tmp_path: Path) -> Path:
    """A fake /sys/class/powercap: two packages, their sub-domains and a psys domain (not summed)."""
    root = tmp_path / "powercap"
    write_rapl_domain(root, "intel-rapl:0", "package-0", 1_000_000, max_uj=10_000_000)
    write_rapl_domain(root, "intel-rapl:0:0", "core", 700_000)
    write_rapl_domain(root, "intel-rapl:0:1", "dram", 99_000)
    write_rapl_domain(root, "intel-rapl:1", "package-1", 2_000_000, max_uj=10_000_000)
    write_rapl_domain(root, "intel-rapl:2", "psys", 5_000_000)
    return root


def set_rapl(root: Path, name: str, energy_uj: int) -> None:
    (root / name / "energy_uj").write_text(f"{energy_uj}\n")


def nvml_error(code: int) -> Exception:
    import pynvml

    return pynvml.NVMLError(code)


def field_value(value_mw: int, ret: int = 0) -> list[Any]:
    """What nvmlDeviceGetFieldValues returns for [NVML_FI_DEV_POWER_INSTANT] (valueType 1: unsigned int)."""
    return [types.SimpleNamespace(nvmlReturn=ret, valueType=1, value=types.SimpleNamespace(uiVal=value_mw))]


GPU_UUIDS = (
    "GPU-aaaaaaaa-1111-2222-3333-444444444444",
    "GPU-bbbbbbbb-1111-2222-3333-444444444444",
    "GPU-bbbbcccc-1111-2222-3333-444444444444",
    "GPU-dddddddd-1111-2222-3333-444444444444",
)


@pytest.fixture
def pynvml_mock(monkeypatch: pytest.MonkeyPatch) -> mock.MagicMock:
    """``benchd.devices.nvml.pynvml`` replaced by an autospec of the real module, scripted as 4 H200s.

    Handles are the strings ``h0``..``h3``; only the exception classes are real (so ``except`` works).
    """
    import pynvml as real

    mocked = mock.create_autospec(real)
    mocked.NVMLError = real.NVMLError
    by_handle: Callable[[dict[str, Any]], Callable[[str], Any]] = lambda table: lambda h, *a: table[h]  # noqa: E731
    mocked.nvmlDeviceGetCount.return_value = len(GPU_UUIDS)
    mocked.nvmlDeviceGetHandleByIndex.side_effect = lambda i: f"h{i}"
    mocked.nvmlDeviceGetUUID.side_effect = by_handle({f"h{i}": u for i, u in enumerate(GPU_UUIDS)})
    mocked.nvmlDeviceGetName.return_value = "NVIDIA H200"
    mocked.nvmlSystemGetDriverVersion.return_value = "570.86.15"
    mocked.nvmlSystemGetCudaDriverVersion.return_value = 12080
    mocked.nvmlDeviceGetVbiosVersion.return_value = "96.00.A5.00.01"
    mocked.nvmlDeviceGetArchitecture.return_value = 9  # Hopper
    mocked.nvmlDeviceGetEnforcedPowerLimit.return_value = 700_000
    mocked.nvmlDeviceGetMemoryInfo.return_value = types.SimpleNamespace(
        total=150_754_820_096, used=1_073_741_824
    )
    mocked.nvmlDeviceGetTotalEnergyConsumption.return_value = 123_456_789
    mocked.nvmlDeviceGetFieldValues.return_value = field_value(312_000)
    mocked.nvmlDeviceGetPowerUsage.return_value = 298_000
    mocked.nvmlDeviceGetTemperature.return_value = 54
    mocked.nvmlDeviceGetUtilizationRates.return_value = types.SimpleNamespace(gpu=87, memory=40)
    mocked.nvmlDeviceGetClockInfo.return_value = 1980
    mocked.nvmlDeviceGetCurrentClocksEventReasons.return_value = 0
    monkeypatch.setattr(nvml, "pynvml", mocked)
    return mocked
