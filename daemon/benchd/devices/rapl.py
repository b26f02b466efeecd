"""CPU package energy from Linux powercap RAPL (``/sys/class/powercap/intel-rapl:N/energy_uj``).

Only top-level ``package-*`` domains are summed: sub-domains (``core``, ``uncore``, ``dram`` as
``intel-rapl:N:M``) are parts of a package, and a ``psys`` domain covers the whole platform, so adding
either would count energy twice. Each domain's counter wraps at ``max_energy_range_uj``; the reader
unwraps it, so :meth:`RAPLReader.read_energy_uj` is monotonic as long as it is called at least once per
wrap period (minutes at full load). Since Linux 5.10 ``energy_uj`` is readable by root only; a host where
it is not readable reports CPU energy as "not measured". The root is injectable for tests.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from benchd.errors import DeviceUnavailableError

logger = logging.getLogger(__name__)

DEFAULT_POWERCAP_ROOT = "/sys/class/powercap"


@dataclass(frozen=True)
class RAPLDomain:
    """One top-level RAPL package domain."""

    name: str
    path: Path
    max_energy_range_uj: int | None


class RAPLReader:
    """Sums the energy counters of the CPU package domains under a powercap root."""

    def __init__(self, root: str | os.PathLike[str] = DEFAULT_POWERCAP_ROOT) -> None:
        self.root = Path(root)
        self._domains: tuple[RAPLDomain, ...] | None = None
        self._last_uj: dict[Path, int] = {}
        self._unwrapped_uj: dict[Path, int] = {}
        self._lock = threading.Lock()

    def domains(self) -> tuple[RAPLDomain, ...]:
        """Return the package domains found under the root (discovered once, then cached)."""
        if self._domains is None:
            self._domains = tuple(self._discover())
        return self._domains

    def _discover(self) -> list[RAPLDomain]:
        found: list[RAPLDomain] = []
        try:
            entries = sorted(self.root.iterdir())
        except OSError:
            return found
        for entry in entries:
            # top level only: intel-rapl:0 (not intel-rapl:0:1), intel-rapl-mmio:0 is a duplicate view
            if not entry.name.startswith("intel-rapl:") or entry.name.count(":") != 1:
                continue
            name = _read_text(entry / "name")
            if name is None or not name.startswith("package"):
                continue
            max_range = _read_int(entry / "max_energy_range_uj")
            found.append(RAPLDomain(name=name, path=entry, max_energy_range_uj=max_range))
        return found

    def is_available(self) -> bool:
        """True when at least one package domain exists and every package counter is readable."""
        domains = self.domains()
        return bool(domains) and all(_read_int(d.path / "energy_uj") is not None for d in domains)

    def unavailable_reason(self) -> str:
        """Say why RAPL cannot be read on this host (for "not measured" reports)."""
        if not self.domains():
            return f"RAPL ({self.root}) not readable on this host: no package domain"
        return f"RAPL ({self.root}) not readable on this host: energy_uj needs root since Linux 5.10"

    def read_energy_uj(self) -> int:
        """Return the summed package energy since the first read, unwrapped. Units: µJ.

        The first call returns the raw counter sum; later calls add each domain's delta, adding
        ``max_energy_range_uj`` when a counter wrapped.

        Raises:
            DeviceUnavailableError: no package domain, or a counter could not be read.
        """
        domains = self.domains()
        if not domains:
            raise DeviceUnavailableError(self.unavailable_reason())
        total_uj = 0
        with self._lock:
            for domain in domains:
                raw_uj = _read_int(domain.path / "energy_uj")
                if raw_uj is None:
                    raise DeviceUnavailableError(f"cannot read {domain.path / 'energy_uj'}")
                total_uj += self._unwrap(domain, raw_uj)
        return total_uj

    def read_energy_j(self) -> float:
        """Return :meth:`read_energy_uj` in J.

        Raises:
            DeviceUnavailableError: as :meth:`read_energy_uj`.
        """
        return self.read_energy_uj() / 1e6

    def _unwrap(self, domain: RAPLDomain, raw_uj: int) -> int:
        last_uj = self._last_uj.get(domain.path)
        if last_uj is None:
            unwrapped = raw_uj
        else:
            delta = raw_uj - last_uj
            if delta < 0:
                if domain.max_energy_range_uj:
                    delta += domain.max_energy_range_uj
                else:
                    logger.warning(
                        "RAPL %s went backwards without a max range; delta counted as 0", domain.name
                    )
                    delta = 0
            unwrapped = self._unwrapped_uj[domain.path] + delta
        self._last_uj[domain.path] = raw_uj
        self._unwrapped_uj[domain.path] = unwrapped
        return unwrapped


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except (OSError, UnicodeDecodeError):
        return None


def _read_int(path: Path) -> int | None:
    text = _read_text(path)
    try:
        return None if text is None else int(text)
    except ValueError:
        return None
