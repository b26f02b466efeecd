"""The rule for ``gpu`` tests, shown on any host: skip only without any NVIDIA GPU, fail loudly otherwise.

Each case runs ``pytest -m gpu`` on tests/devices/test_gpu_devices.py in a subprocess with the GPU evidence
pointed elsewhere (tests/gpu.py's test-only overrides).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO
from tests.gpu import DEVICE_NODES_ENV, NVML_LIBRARY_ENV


def _gpu_tests(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "gpu"]
        + ["tests/devices/test_gpu_devices.py", "-k", "info"],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_any_nvidia_gpu_the_gpu_tests_skip_with_the_reason(tmp_path: Path) -> None:
    proc = _gpu_tests(
        {
            DEVICE_NODES_ENV: str(tmp_path / "nvidia[0-9]*"),
            NVML_LIBRARY_ENV: str(tmp_path / "libnvidia-ml.so.1"),
        }
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 skipped" in proc.stdout and "no NVIDIA GPU on this host" in proc.stdout


def test_a_gpu_that_is_there_but_unusable_fails_the_gpu_tests(tmp_path: Path) -> None:
    (tmp_path / "nvidia0").write_text("")  # a device node; no driver answers for it here
    # CUDA_VISIBLE_DEVICES="" hides any real GPU too, so this holds on a GPU host as well
    proc = _gpu_tests({DEVICE_NODES_ENV: str(tmp_path / "nvidia[0-9]*"), "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "1 error" in proc.stdout and "skipped" not in proc.stdout
    assert f"an NVIDIA GPU is here (device node(s) {tmp_path / 'nvidia0'})" in proc.stdout
    assert "NVML cannot use it" in proc.stdout
