"""deploy/systemd/benchd.service: systemd-analyze verify, its hardening score, the directives benchd needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import DEPLOY, tool

UNIT = DEPLOY / "systemd" / "benchd.service"
BENCHD_BIN = "/usr/local/bin/benchd"


def _runnable_copy(tmp_path: Path, text: str) -> Path:
    """The unit with ExecStart's binary swapped for one that exists here, arguments kept.

    verify checks that ExecStart's program exists; benchd is not installed at /usr/local/bin here.
    """
    true_bin = shutil.which("true")
    assert true_bin, "no `true` binary"
    assert f"ExecStart={BENCHD_BIN} " in text
    path = tmp_path / UNIT.name
    path.write_text(text.replace(f"ExecStart={BENCHD_BIN} ", f"ExecStart={true_bin} "), encoding="utf-8")
    return path


def _verify(unit: Path) -> str:
    """systemd-analyze verify's complaints about ``unit`` ("" when there are none).

    verify exits 0 on unknown keys and unparsable values (it only logs them), so any output fails.
    """
    analyze = tool("systemd-analyze")
    result = subprocess.run([analyze, "verify", "--man=no", str(unit)], capture_output=True, text=True,
                            timeout=60, cwd=unit.parent)
    output = (result.stdout + result.stderr).strip()
    return output or ("" if result.returncode == 0 else f"exit status {result.returncode}")


def _directives() -> dict[str, list[str]]:
    multi: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#"):
            key, value = line.split("=", 1)
            multi.setdefault(f"{section}.{key.strip()}", []).append(value.strip())
    return multi


def test_systemd_analyze_verify_is_clean(tmp_path):
    assert _verify(_runnable_copy(tmp_path, UNIT.read_text(encoding="utf-8"))) == ""


@pytest.mark.parametrize(("find", "replace"), [
    ("ProtectSystem=strict", "ProtectSystm=strict"),       # unknown key: verify logs, exits 0
    ("Restart=on-failure", "Restart=sometimes"),           # bad value: verify logs, exits 0
    ("[Service]", "[Servic]"),                             # no ExecStart left: verify fails
])
def test_verify_catches_unit_file_errors(tmp_path, find, replace):
    text = UNIT.read_text(encoding="utf-8")
    assert find in text
    assert _verify(_runnable_copy(tmp_path, text.replace(find, replace, 1))) != ""


def test_hardening_exposure_stays_low(tmp_path):
    analyze = tool("systemd-analyze")
    unit = _runnable_copy(tmp_path, UNIT.read_text(encoding="utf-8"))
    result = subprocess.run([analyze, "security", "--offline=true", "--no-pager", str(unit)],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    match = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout + result.stderr)
    assert match, result.stdout + result.stderr
    assert float(match.group(1)) <= 2.5, result.stdout


def test_unit_runs_benchd_restarting_with_a_state_directory_and_gpu_access():
    d = _directives()
    assert d["Service.Type"] == ["simple"]
    assert d["Service.ExecStart"] == [f"{BENCHD_BIN} run --config /etc/benchd/benchd.yaml"]
    assert d["Service.Restart"] == ["on-failure"]
    assert d["Service.StateDirectory"] == ["benchd"]
    assert d["Service.DynamicUser"] == ["yes"] or d.get("Service.User") not in (None, ["root"])
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes"}.items():
        assert d[f"Service.{key}"] == [value], key
    # PrivateDevices=yes would hide /dev/nvidia*; the device allow-list must let the GPUs through.
    assert d.get("Service.PrivateDevices", ["no"]) == ["no"]
    assert "char-nvidia* rw" in d["Service.DeviceAllow"]
    assert d["Install.WantedBy"] == ["multi-user.target"]
