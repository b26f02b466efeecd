"""Devices: the ``Device`` interface, NVML GPUs, fake GPUs, RAPL CPU energy, telemetry and fingerprints.

:func:`open_devices` is the entry point. Importing this package imports neither ``pynvml`` nor torch and
starts nothing; NVML is loaded only when ``open_devices`` tries it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from benchd.config.fake_devices import FakeDevicesConfig
from benchd.devices.base import (
    THROTTLE_REASONS,
    THROTTLING_REASONS,
    Device,
    DeviceInfo,
    DeviceSet,
    EmptyDeviceSet,
    TelemetrySample,
    visible_device_indices,
)
from benchd.devices.fake import FakeDevice, FakeDeviceSet
from benchd.devices.fingerprint import host_fingerprint
from benchd.devices.meter import WindowSampler
from benchd.devices.rapl import RAPLReader
from benchd.errors import ConfigError, DeviceError, DeviceNotFoundError, DeviceUnavailableError

logger = logging.getLogger(__name__)

MODES = ("auto", "nvml", "fake", "none")

__all__ = [
    "MODES",
    "THROTTLE_REASONS",
    "THROTTLING_REASONS",
    "Device",
    "DeviceInfo",
    "DeviceSet",
    "EmptyDeviceSet",
    "FakeDevice",
    "FakeDeviceSet",
    "RAPLReader",
    "TelemetrySample",
    "WindowSampler",
    "host_fingerprint",
    "open_devices",
    "visible_device_indices",
]

_FROM_ENV: Any = object()


def open_devices(
    mode: str = "auto",
    require_gpu: bool = False,
    cuda_visible_devices: str | None = _FROM_ENV,
    fake: FakeDevicesConfig | Mapping[str, Any] | None = None,
    clock: Callable[[], float] | None = None,
) -> DeviceSet:
    """Open the GPUs benchd may measure.

    Args:
        mode: ``auto`` (NVML if it starts, else no devices), ``nvml`` (NVML or an error), ``fake`` (the
            scripted devices of ``fake``, see :mod:`benchd.devices.fake`) or ``none``.
        require_gpu: raise instead of returning an empty set when there is no GPU.
        cuda_visible_devices: the ``CUDA_VISIBLE_DEVICES`` the benchmark process will see; defaults to
            this process's environment (``None``: unset, every GPU). Fake devices ignore the environment
            and take ``cuda_visible_devices`` from their own config.
        fake: the ``devices.fake`` config mapping (mode ``fake`` only).
        clock: the monotonic clock samples are stamped with (default ``time.monotonic``).

    Returns:
        A :class:`DeviceSet` in CUDA order; an :class:`EmptyDeviceSet` (after one INFO log) when NVML
        cannot start in mode ``auto``.

    Raises:
        ConfigError: an unknown mode or an invalid fake config.
        DeviceUnavailableError: NVML cannot start and the mode is ``nvml`` or a GPU is required.
        DeviceNotFoundError: a GPU is required and none is visible.
    """
    clock = clock or time.monotonic
    if mode not in MODES:
        raise ConfigError("devices.mode", f"must be one of {', '.join(MODES)}, got {mode!r}")
    if cuda_visible_devices is _FROM_ENV:
        cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    if mode == "none":
        device_set: DeviceSet = EmptyDeviceSet("devices.mode is none")
    elif mode == "fake":
        device_set = FakeDeviceSet.from_config(fake, clock=clock)
    else:
        device_set = _open_nvml(mode, require_gpu, cuda_visible_devices, clock)
    if require_gpu and len(device_set) == 0:
        device_set.close()
        reason = getattr(device_set, "reason", f"no visible GPU in mode {mode}")
        raise DeviceNotFoundError(f"devices.require_gpu is true but there is no GPU: {reason}")
    return device_set


def _open_nvml(
    mode: str, require_gpu: bool, cuda_visible_devices: str | None, clock: Callable[[], float]
) -> DeviceSet:
    from benchd.devices.nvml import NVMLDeviceSet

    try:
        device_set: DeviceSet = NVMLDeviceSet.open(
            cuda_visible_devices, os.environ.get("CUDA_DEVICE_ORDER"), clock=clock
        )
    except DeviceError as e:
        if mode == "nvml" or require_gpu:
            raise DeviceUnavailableError(f"NVML cannot start: {e}") from e
        logger.info("no GPU telemetry: NVML cannot start (%s); running without GPU devices", e)
        return EmptyDeviceSet(f"NVML cannot start: {e}")
    if len(device_set) == 0:
        device_set.close()
        logger.info(
            "no GPU telemetry: NVML sees no visible GPU (CUDA_VISIBLE_DEVICES=%r)", cuda_visible_devices
        )
        return EmptyDeviceSet(f"no visible GPU (CUDA_VISIBLE_DEVICES={cuda_visible_devices!r})")
    return device_set
