"""Hardware fingerprint and hardware class keys."""

from __future__ import annotations

import importlib.metadata
import platform
import re
import subprocess
import sys
from pathlib import Path

import pytest

import benchd
from benchd.devices import EmptyDeviceSet, FakeDeviceSet, host_fingerprint
from benchd.devices.fingerprint import cpu_hardware_class, cpu_model, gpu_hardware_class, label_safe

LABEL_SAFE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@pytest.fixture
def proc_root(tmp_path: Path) -> Path:
    (tmp_path / "cpuinfo").write_text(
        "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz\n"
        "\nprocessor\t: 1\nmodel name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz\n"
    )
    return tmp_path


def test_cpu_fingerprint(proc_root: Path) -> None:
    fp = host_fingerprint(EmptyDeviceSet(), "cpu", proc_root=proc_root)
    assert fp["device"] == "cpu"
    assert fp["cpu_model"] == fp["device_name"] == "Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    assert fp["hardware_class"] == "cpu-intel-core-i7-8700"
    assert fp["device_uuid"] is None and fp["driver_version"] is None and fp["power_limit_w"] is None
    assert fp["benchd_version"] == benchd.__version__
    assert fp["python_version"] == platform.python_version()
    assert fp["torch_version"] == importlib.metadata.version("torch")


def test_gpu_fingerprint_from_device_info(proc_root: Path) -> None:
    device_set = FakeDeviceSet.from_config(
        {
            "name": "NVIDIA H200",
            "driver_version": "570.86.15",
            "cuda_driver_version": "12.8",
            "power_limit_w": 700,
        }
    )
    fp = host_fingerprint(device_set, "cuda:0", proc_root=proc_root)
    assert fp["device_name"] == "NVIDIA H200"
    assert fp["device_uuid"] == device_set.get("cuda:0").info().uuid
    assert fp["device_backend"] == "fake"
    assert fp["driver_version"] == "570.86.15"
    assert fp["cuda_driver_version"] == "12.8"
    assert fp["power_limit_w"] == 700.0
    assert fp["vbios_version"] is not None
    assert fp["hardware_class"] == "fake-nvidia-h200-drv570"  # a fake GPU never matches a real one
    assert fp["cpu_model"].startswith("Intel(R) Core(TM)")


def test_missing_gpu_still_fingerprints(proc_root: Path) -> None:
    fp = host_fingerprint(EmptyDeviceSet("no NVML"), "cuda:0", proc_root=proc_root)
    assert fp["hardware_class"] == "cuda-unknown"
    assert fp["device_name"] is None
    assert fp["cpu_model"]


@pytest.mark.parametrize(
    ("name", "driver", "backend", "expected"),
    [
        ("NVIDIA H200", "570.86.15", "nvml", "nvidia-h200-drv570"),
        ("Tesla V100-SXM2-16GB", "535.54.03", "nvml", "nvidia-tesla-v100-sxm2-16gb-drv535"),
        ("NVIDIA GeForce RTX 4090", None, "nvml", "nvidia-geforce-rtx-4090"),
        ("Fake GPU", "550.54.15", "fake", "fake-gpu-drv550"),
    ],
)
def test_gpu_hardware_class(name: str, driver: str | None, backend: str, expected: str) -> None:
    assert gpu_hardware_class(name, driver, backend) == expected


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("Intel(R) Xeon(R) Platinum 8480+", "cpu-intel-xeon-platinum-8480"),
        ("AMD EPYC 7763 64-Core Processor", "cpu-amd-epyc-7763-64-core"),
        ("AMD EPYC", "cpu-amd-epyc"),
        ("Neoverse-V2", "cpu-neoverse-v2"),
    ],
)
def test_cpu_hardware_class(model: str, expected: str) -> None:
    assert cpu_hardware_class(model) == expected


@pytest.mark.parametrize(
    "text", ["", "   ", "ÜBER GPU™ (rev 2) " * 10, "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "--x--"]
)
def test_classes_are_label_safe_and_bounded(text: str) -> None:
    for key in (label_safe(text), gpu_hardware_class(text, "999.1"), cpu_hardware_class(text)):
        assert LABEL_SAFE.match(key), key
        assert len(key) <= 63


def test_cpu_model_falls_back_without_cpuinfo(tmp_path: Path) -> None:
    assert cpu_model(tmp_path) == (platform.processor() or platform.machine() or "unknown")
    (tmp_path / "cpuinfo").write_text("processor\t: 0\nHardware\t: BCM2835\n")
    assert cpu_model(tmp_path) == "BCM2835"


def test_fingerprint_does_not_import_torch() -> None:
    code = (
        "import sys; from benchd.devices import EmptyDeviceSet, host_fingerprint;"
        "fp = host_fingerprint(EmptyDeviceSet(), 'cpu'); assert fp['torch_version'];"
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
