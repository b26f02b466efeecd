"""RAPL against a fake powercap root: package domains only, wrap-around, unreadable hosts."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchd.devices.rapl import RAPLReader
from benchd.errors import DeviceUnavailableError

from .conftest import set_rapl, write_rapl_domain


def test_sums_top_level_package_domains_only(powercap: Path) -> None:
    reader = RAPLReader(powercap)
    assert [d.name for d in reader.domains()] == ["package-0", "package-1"]
    assert reader.is_available()
    assert reader.read_energy_uj() == 3_000_000  # not core, dram (parts of a package) or psys
    assert reader.read_energy_j() == pytest.approx(3.0)


def test_deltas_accumulate_and_wraps_add_the_range(powercap: Path) -> None:
    reader = RAPLReader(powercap)
    assert reader.read_energy_uj() == 3_000_000
    set_rapl(powercap, "intel-rapl:0", 9_500_000)
    set_rapl(powercap, "intel-rapl:1", 2_250_000)
    assert reader.read_energy_uj() == 3_000_000 + 8_500_000 + 250_000
    set_rapl(powercap, "intel-rapl:0", 500_000)  # wrapped at 10_000_000: +1_000_000
    assert reader.read_energy_uj() == 3_000_000 + 8_500_000 + 250_000 + 1_000_000


def test_missing_root_or_domains_is_not_available(tmp_path: Path) -> None:
    for root in (tmp_path / "missing", tmp_path):
        reader = RAPLReader(root)
        assert not reader.is_available()
        assert "not readable on this host" in reader.unavailable_reason()
        with pytest.raises(DeviceUnavailableError):
            reader.read_energy_uj()


def test_unreadable_counter_is_not_available(tmp_path: Path) -> None:
    domain = write_rapl_domain(tmp_path, "intel-rapl:0", "package-0", 0)
    (domain / "energy_uj").unlink()
    (domain / "energy_uj").mkdir()  # a read fails like a root-only file does for a normal user
    reader = RAPLReader(tmp_path)
    assert reader.domains()
    assert not reader.is_available()
    assert "root" in reader.unavailable_reason()
    with pytest.raises(DeviceUnavailableError, match="energy_uj"):
        reader.read_energy_uj()


def test_default_root_is_sysfs() -> None:
    assert str(RAPLReader().root) == "/sys/class/powercap"
