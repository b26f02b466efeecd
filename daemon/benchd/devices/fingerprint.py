"""The hardware/software fingerprint stored with every run, and the hardware class used to pick baselines.

Results are only comparable on the same kind of hardware and driver: ``hardware_class`` is a stable,
label-safe key (``[a-z0-9-]``, at most 63 characters) built from the GPU model and the driver's major
version (``nvidia-h200-drv570``), or from the CPU model for CPU runs (``cpu-amd-epyc-7763-64-core``).
Nothing here imports torch: its version comes from the installed distribution's metadata (the worker
process, which does import torch, may add the CUDA runtime version it was built with).
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import platform
import re
from pathlib import Path
from typing import Any

from benchd.devices.base import DeviceSet
from benchd.errors import DeviceError

logger = logging.getLogger(__name__)

_MAX_CLASS_LEN = 63
_NOISE = re.compile(r"\((?:r|tm|c)\)|\b(?:cpu|processor)\b|@.*$", re.IGNORECASE)


def label_safe(text: str, max_len: int = _MAX_CLASS_LEN) -> str:
    """Lower-case ``text`` and reduce it to ``[a-z0-9-]`` words joined by single dashes."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].rstrip("-") or "unknown"


def cpu_model(proc_root: str | os.PathLike[str] = "/proc") -> str:
    """Return the CPU model name from ``<proc_root>/cpuinfo``, else ``platform.processor()``/machine."""
    try:
        text = (Path(proc_root) / "cpuinfo").read_text(errors="replace")
    except OSError:
        text = ""
    for key in ("model name", "Model", "Hardware", "cpu model", "uarch"):
        match = re.search(rf"^{re.escape(key)}\s*:\s*(.+)$", text, re.MULTILINE)
        if match and match.group(1).strip():
            return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


def gpu_hardware_class(name: str, driver_version: str | None, backend: str = "nvml") -> str:
    """Return ``<vendor>-<model>-drv<major>`` (``nvidia-h200-drv570``) for a GPU.

    The vendor prefix is ``nvidia`` for NVML devices whose name lacks it (``Tesla V100-SXM2-16GB``) and
    the backend name otherwise (fake devices: ``fake-gpu-drv550``).
    """
    vendor = "nvidia" if backend == "nvml" else backend
    model = label_safe(name)
    if not model.startswith(vendor):
        model = f"{vendor}-{model}"
    major = (driver_version or "").split(".")[0]
    suffix = f"-drv{label_safe(major)}" if major else ""
    return label_safe(model, _MAX_CLASS_LEN - len(suffix)) + suffix


def cpu_hardware_class(model: str) -> str:
    """Return ``cpu-<model>`` with trademark marks, ``CPU``/``Processor`` and the clock removed."""
    return label_safe("cpu-" + _NOISE.sub(" ", model))


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def host_fingerprint(
    device_set: DeviceSet, device: str, proc_root: str | os.PathLike[str] = "/proc"
) -> dict[str, Any]:
    """Describe the hardware and software a run on ``device`` (``cpu`` or ``cuda:N``) used.

    Keys: ``device, device_name, device_uuid, device_backend, driver_version, cuda_driver_version,
    vbios_version, power_limit_w, memory_total_bytes, cpu_model, cpu_count, torch_version,
    benchd_version, python_version, os, hardware_class``. GPU fields are ``None`` for CPU runs and for a
    GPU that NVML cannot see (its class is then ``cuda-unknown``). Never raises for a missing device.
    """
    from benchd.version import __version__

    model = cpu_model(proc_root)
    result: dict[str, Any] = {
        "device": device,
        "device_name": None,
        "device_uuid": None,
        "device_backend": None,
        "driver_version": None,
        "cuda_driver_version": None,
        "vbios_version": None,
        "power_limit_w": None,
        "memory_total_bytes": None,
        "cpu_model": model,
        "cpu_count": os.cpu_count(),
        "torch_version": _distribution_version("torch"),
        "benchd_version": __version__,
        "python_version": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}".strip(),
        "hardware_class": cpu_hardware_class(model),
    }
    if device.strip().lower() == "cpu":
        result["device_name"] = model
        return result
    try:
        info = device_set.get(device).info()
    except DeviceError as e:
        logger.info("no device information for %s: %s", device, e)
        result["hardware_class"] = "cuda-unknown"
        return result
    result.update(
        device_name=info.name,
        device_uuid=info.uuid,
        device_backend=info.backend,
        driver_version=info.driver_version,
        cuda_driver_version=info.cuda_driver_version,
        vbios_version=info.vbios_version,
        power_limit_w=info.power_limit_w,
        memory_total_bytes=info.memory_total_bytes,
        hardware_class=gpu_hardware_class(info.name, info.driver_version, info.backend),
    )
    return result
