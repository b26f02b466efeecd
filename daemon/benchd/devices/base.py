"""The small device interface benchd needs: identity, power, energy, temperature and a telemetry sample.

Backends implement :class:`Device` (``nvml.NVMLDevice``, ``fake.FakeDevice``) and group their devices in a
:class:`DeviceSet` whose ``devices`` are ordered by CUDA index: ``devices[i]`` is ``cuda:i`` for a process
started with the same ``CUDA_VISIBLE_DEVICES``. The mapping follows the CUDA runtime's rules (see
:func:`visible_device_indices`), so fake sets and NVML sets resolve ``cuda:N`` through the same code.

Units: raw backend calls return what the vendor returns (``power_mw``, ``energy_mj``); everything else
(``power_w``, ``energy_j``, :class:`TelemetrySample`) is in SI units.
"""

from __future__ import annotations

import abc
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

from benchd.errors import DeviceNotFoundError, DeviceNotSupportedError

logger = logging.getLogger(__name__)

#: Clock-event (throttle) reason names, in NVML bit order. Only :data:`THROTTLING_REASONS` slow a run down
#: against the user's will; ``idle``, ``app_clocks``, ``sync_boost`` and ``display_clocks`` do not count.
THROTTLE_REASONS = (
    "idle",
    "app_clocks",
    "power_cap",
    "hw_slowdown",
    "sync_boost",
    "thermal",
    "hw_thermal",
    "power_brake",
    "display_clocks",
)
THROTTLING_REASONS = frozenset({"power_cap", "hw_slowdown", "thermal", "hw_thermal", "power_brake"})

T = TypeVar("T")

_CUDA_DEVICE_RE = re.compile(r"^cuda(?::(\d+))?$")


@dataclass(frozen=True)
class DeviceInfo:
    """What a device is and what it can measure.

    Attributes:
        index: the backend's own index (the NVML index, in PCI bus order), not the CUDA index.
        backend: ``nvml`` or ``fake``.
        power_limit_w: enforced power limit in W, ``None`` when unknown.
        supports_energy_counter: the device has a cumulative energy counter (NVML: Volta and newer).
        energy_counter_period_s: how often the energy counter updates; a shorter window is not measured.
        power_period_s: the averaging window of ``power_mw()`` (1 s for ``nvmlDeviceGetPowerUsage`` on
            recent GPUs, 0 for instantaneous readings); energy integrated from power needs a longer window.
    """

    index: int
    uuid: str
    name: str
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    vbios_version: str | None = None
    power_limit_w: float | None = None
    memory_total_bytes: int | None = None
    supports_energy_counter: bool = False
    energy_counter_period_s: float = 0.1
    power_period_s: float = 0.0
    backend: str = "nvml"


@dataclass(frozen=True)
class TelemetrySample:
    """One telemetry reading of one device; fields the device cannot report are ``None``.

    ``t_mono_s`` is the ``time.monotonic()`` time of the energy/power reading; ``energy_j`` is the
    cumulative energy counter (J since an arbitrary origin, it may reset), not a delta.
    """

    t_mono_s: float
    power_w: float | None = None
    energy_j: float | None = None
    utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    temperature_c: float | None = None
    sm_clock_hz: float | None = None
    throttle_reasons: tuple[str, ...] = ()


class Device(abc.ABC):
    """One accelerator. Implementations raise :class:`~benchd.errors.DeviceError` subclasses only.

    The four abstract calls are the whole required surface; the optional readings default to "not
    supported" (``None``) and :meth:`sample` assembles a :class:`TelemetrySample` from all of them.
    """

    _clock: Callable[[], float] = time.monotonic

    @abc.abstractmethod
    def info(self) -> DeviceInfo:
        """Return the device's identity and capabilities (cached; no driver call)."""

    @abc.abstractmethod
    def power_mw(self) -> int:
        """Return the current power draw. Units: mW.

        Raises:
            DeviceError: the reading failed.
        """

    @abc.abstractmethod
    def energy_mj(self) -> int | None:
        """Return the cumulative energy counter, or ``None`` when the device has none. Units: mJ.

        Raises:
            DeviceError: the reading failed.
        """

    @abc.abstractmethod
    def temperature_c(self) -> int:
        """Return the GPU core temperature. Units: degrees Celsius.

        Raises:
            DeviceError: the reading failed.
        """

    def power_w(self) -> float:
        """Return the current power draw in W (``power_mw() / 1000``)."""
        return self.power_mw() / 1000.0

    def energy_j(self) -> float | None:
        """Return the cumulative energy counter in J, or ``None`` when the device has none."""
        energy_mj = self.energy_mj()
        return None if energy_mj is None else energy_mj / 1000.0

    def utilization_ratio(self) -> float | None:
        """Return the fraction of time a kernel ran over the driver's last period (0-1), if known."""
        return None

    def memory_used_bytes(self) -> int | None:
        """Return device memory in use in bytes, if known."""
        return None

    def sm_clock_hz(self) -> float | None:
        """Return the current SM clock in Hz, if known."""
        return None

    def throttle_reasons(self) -> tuple[str, ...]:
        """Return the active clock-event reasons (names from :data:`THROTTLE_REASONS`)."""
        return ()

    def sample(self) -> TelemetrySample:
        """Read every supported telemetry value once.

        Readings the device does not support are ``None``; any other failure raises.

        Raises:
            DeviceError: a supported reading failed (driver gone, GPU lost).
        """
        before_s = self._clock()
        energy_j = _optional(self.energy_j)
        after_s = self._clock()
        return TelemetrySample(
            t_mono_s=(before_s + after_s) / 2.0,
            energy_j=energy_j,
            power_w=_optional(self.power_w),
            utilization_ratio=_optional(self.utilization_ratio),
            memory_used_bytes=_optional(self.memory_used_bytes),
            temperature_c=_optional(lambda: float(self.temperature_c())),
            sm_clock_hz=_optional(self.sm_clock_hz),
            throttle_reasons=_optional(self.throttle_reasons) or (),
        )


def _optional(read: Callable[[], T]) -> T | None:
    """Call ``read``; a reading the device does not support is ``None``."""
    try:
        return read()
    except DeviceNotSupportedError:
        return None


class DeviceSet:
    """The devices a process can use, in CUDA order: ``devices[i]`` is ``cuda:i``."""

    def __init__(self, devices: Sequence[Device] = ()) -> None:
        self._devices = tuple(devices)
        self._closed = False

    @property
    def devices(self) -> tuple[Device, ...]:
        """The visible devices, indexed by CUDA index."""
        return self._devices

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices)

    def __enter__(self) -> DeviceSet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def by_cuda_index(self, cuda_index: int) -> Device:
        """Return the device a CUDA process sees as ``cuda:<cuda_index>``.

        Raises:
            DeviceNotFoundError: no such visible device.
        """
        if not 0 <= cuda_index < len(self._devices):
            raise DeviceNotFoundError(
                f"cuda:{cuda_index} is not a visible device ({len(self._devices)} visible)"
            )
        return self._devices[cuda_index]

    def get(self, device: str) -> Device:
        """Return the device named ``cuda`` or ``cuda:N``.

        Raises:
            DeviceNotFoundError: the name is not a CUDA device or the device is not visible.
        """
        match = _CUDA_DEVICE_RE.match(device.strip())
        if match is None:
            raise DeviceNotFoundError(f"{device!r} is not a CUDA device name (expected cuda or cuda:N)")
        return self.by_cuda_index(int(match.group(1) or 0))

    def close(self) -> None:
        """Release the backend (idempotent)."""
        if not self._closed:
            self._closed = True
            self._close()

    def _close(self) -> None:
        """Backend-specific release, called once by :meth:`close`."""


class EmptyDeviceSet(DeviceSet):
    """No accelerators: what a host without NVML gets. ``reason`` says why."""

    def __init__(self, reason: str = "no devices") -> None:
        super().__init__(())
        self.reason = reason

    def by_cuda_index(self, cuda_index: int) -> Device:
        """Always raises: there are no devices.

        Raises:
            DeviceNotFoundError: always, with the reason the set is empty.
        """
        raise DeviceNotFoundError(f"cuda:{cuda_index} is not available: {self.reason}")


def visible_device_indices(cuda_visible_devices: str | None, uuids: Sequence[str]) -> list[int]:
    """Map ``CUDA_VISIBLE_DEVICES`` to backend indices, the way the CUDA runtime reads it.

    ``uuids[i]`` is the UUID of backend device ``i``. ``None`` (unset) means every device in backend
    order; an empty string means none. Entries are integers (backend/PCI order, which equals CUDA order
    when ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` or all GPUs are the same model) or UUIDs, with or without the
    ``GPU-`` prefix and possibly shortened to a unique prefix. As in CUDA, the first invalid, duplicate or
    ambiguous entry ends the list; ``MIG-`` instances end it too, since an energy counter belongs to the
    whole GPU and benchd does not measure MIG slices.

    Returns:
        Backend indices in CUDA order: element ``i`` is the device a process sees as ``cuda:i``.
    """
    if cuda_visible_devices is None:
        return list(range(len(uuids)))
    result: list[int] = []
    for raw in cuda_visible_devices.split(","):
        token = raw.strip()
        index = _resolve_token(token, uuids)
        if index is None or index in result:
            if token:
                logger.info(
                    "CUDA_VISIBLE_DEVICES entry %r ends the visible list (invalid or repeated)", token
                )
            break
        result.append(index)
    return result


def _resolve_token(token: str, uuids: Sequence[str]) -> int | None:
    if not token or token.upper().startswith("MIG-"):
        return None
    if re.fullmatch(r"[+-]?\d+", token):
        index = int(token)
        return index if 0 <= index < len(uuids) else None
    wanted = token.lower()
    if not wanted.startswith("gpu-"):
        wanted = "gpu-" + wanted
    matches = [i for i, uuid in enumerate(uuids) if uuid.lower().startswith(wanted)]
    return matches[0] if len(matches) == 1 else None
