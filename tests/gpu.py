"""Is there an NVIDIA GPU on this host at all? Decides whether a ``gpu`` test skips or must pass.

A GPU test skips only where there is no NVIDIA GPU whatsoever: no ``/dev/nvidia*`` device node and no
NVML library. Where either is present, the host has (or claims) a GPU, so a driver, NVML or CUDA that
does not work is a failure to report loudly, never a skip.
"""

from __future__ import annotations

import ctypes
import glob
import os

import pytest

from benchd.devices import DeviceSet, open_devices
from benchd.errors import DeviceError

#: The NVML library the driver installs (nvidia-ml-py loads the same name).
NVML_LIBRARY = "libnvidia-ml.so.1"
#: Where the driver's device nodes are.
DEVICE_NODES = "/dev/nvidia[0-9]*"
#: Test-only overrides of the two (tests/devices/test_gpu_gate.py shows both outcomes on any host).
DEVICE_NODES_ENV = "BENCHD_TEST_NVIDIA_DEVICE_NODES"
NVML_LIBRARY_ENV = "BENCHD_TEST_NVML_LIBRARY"

NO_GPU_REASON = (
    f"no NVIDIA GPU on this host: no /dev/nvidia* device node and no NVML library ({NVML_LIBRARY})"
)


def nvidia_gpu_evidence() -> str | None:
    """Say what shows an NVIDIA GPU is here (device nodes, the NVML library); None when nothing does."""
    nodes = sorted(glob.glob(os.environ.get(DEVICE_NODES_ENV, DEVICE_NODES)))
    if nodes:
        return f"device node(s) {', '.join(nodes)}"
    library = os.environ.get(NVML_LIBRARY_ENV, NVML_LIBRARY)
    try:
        ctypes.CDLL(library)
    except OSError:
        return None
    return f"the NVML library {library} loads"


def open_gpus_or_fail() -> DeviceSet:
    """The host's GPUs through NVML; fails the test (one line, no traceback) when NVML cannot use them."""
    try:
        return open_devices("nvml", require_gpu=True)
    except DeviceError as e:
        message = f"an NVIDIA GPU is here ({nvidia_gpu_evidence()}) but NVML cannot use it: {e}"
    pytest.fail(message, pytrace=False)  # outside the except: no chained traceback
