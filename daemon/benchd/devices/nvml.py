"""NVIDIA GPUs through NVML: the only module that imports ``pynvml`` (package ``nvidia-ml-py``).

``pynvml`` is imported lazily by :meth:`NVMLDeviceSet.open`, so a host without the driver never loads it.
Every NVML call goes through :func:`_call`, the one place where ``NVMLError`` becomes a benchd
:class:`~benchd.errors.DeviceError` (``raise ... from e``). Capabilities are probed once per device and
cached: the energy counter (``nvmlDeviceGetTotalEnergyConsumption``, Volta and newer), instantaneous
power (field ``NVML_FI_DEV_POWER_INSTANT``; ``nvmlDeviceGetPowerUsage`` is a 1 s average on Ampere and
newer), and any query that once answered "not supported".

Units are converted here and nowhere else: NVML's mW, mJ, MHz and percent become W, J, Hz and ratios.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, ParamSpec, TypeVar

from benchd.devices.base import THROTTLE_REASONS, Device, DeviceInfo, DeviceSet, visible_device_indices
from benchd.errors import (
    DeviceError,
    DeviceNotFoundError,
    DeviceNotSupportedError,
    DeviceUnavailableError,
)

logger = logging.getLogger(__name__)

#: The ``pynvml`` module once :func:`load_pynvml` imported it (tests replace it with an autospec mock).
pynvml: Any = None

#: How often the energy counter updates. Observed 10-100 ms depending on GPU and driver; a window shorter
#: than this is reported as "not measured" rather than as 0 J.
NVML_ENERGY_COUNTER_PERIOD_S = 0.1
#: ``nvmlDeviceGetPowerUsage`` averages over 1 s on Ampere and newer GPUs.
NVML_POWER_AVERAGE_PERIOD_S = 1.0

# NVML constants, copied so that decoding does not depend on the (possibly mocked) module.
_FI_DEV_POWER_INSTANT = 186
_TEMPERATURE_GPU = 0
_CLOCK_SM = 1
_ARCH_AMPERE = 7
_VALUE_FIELDS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")

_NOT_SUPPORTED_CODES = frozenset({3, 13, 26})  # NOT_SUPPORTED, FUNCTION_NOT_FOUND, DEPRECATED
_NOT_FOUND_CODES = frozenset({2, 6, 28})  # INVALID_ARGUMENT, NOT_FOUND, GPU_NOT_FOUND
# UNINITIALIZED, NO_PERMISSION, INSUFFICIENT_POWER, DRIVER_NOT_LOADED, TIMEOUT, LIBRARY_NOT_FOUND,
# GPU_IS_LOST, RESET_REQUIRED, OPERATING_SYSTEM, LIB_RM_VERSION_MISMATCH, NOT_READY
_UNAVAILABLE_CODES = frozenset({1, 4, 8, 9, 10, 12, 15, 16, 17, 18, 27})

P = ParamSpec("P")
R = TypeVar("R")


def load_pynvml() -> Any:
    """Import ``pynvml`` on first use and return it.

    Raises:
        DeviceUnavailableError: the ``nvidia-ml-py`` package is not installed.
    """
    global pynvml
    if pynvml is None:
        try:
            import pynvml as module
        except ImportError as e:
            raise DeviceUnavailableError("NVML bindings (package nvidia-ml-py) are not installed") from e
        pynvml = module
    return pynvml


def translate_nvml_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Decorate ``func`` so an ``NVMLError`` it raises becomes the matching :class:`DeviceError`."""

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except Exception as e:
            nvml_error = getattr(pynvml, "NVMLError", None)
            if nvml_error is None or not isinstance(e, nvml_error):
                raise
            what = args[0] if args and isinstance(args[0], str) else func.__name__
            raise _device_error(e, what) from e

    return wrapper


def _device_error(error: Exception, what: str) -> DeviceError:
    code = getattr(error, "value", None)
    message = f"NVML {what} failed: {error} (code {code})"
    if code in _NOT_SUPPORTED_CODES:
        return DeviceNotSupportedError(message)
    if code in _NOT_FOUND_CODES:
        return DeviceNotFoundError(message)
    if code in _UNAVAILABLE_CODES:
        return DeviceUnavailableError(message)
    return DeviceError(message)


@translate_nvml_errors
def _call(name: str, *args: Any) -> Any:
    """Call ``pynvml.<name>(*args)``; the single NVML boundary."""
    function = getattr(pynvml, name, None)
    if function is None:
        raise DeviceNotSupportedError(f"NVML {name} is not in this nvidia-ml-py version")
    return function(*args)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def decode_throttle_reasons(mask: int) -> tuple[str, ...]:
    """Return the names of the clock-event reason bits set in ``mask`` (NVML bit order)."""
    return tuple(name for bit, name in enumerate(THROTTLE_REASONS) if mask & (1 << bit))


class NVMLDevice(Device):
    """One GPU through NVML. Create with :meth:`NVMLDeviceSet.open`."""

    def __init__(
        self,
        handle: Any,
        index: int,
        driver_version: str | None = None,
        cuda_driver_version: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._handle = handle
        self._clock = clock
        self._unsupported: set[str] = set()
        self._supports_energy = self._probe(lambda: self._query("nvmlDeviceGetTotalEnergyConsumption"))
        self._instant_power = self._probe(self._instant_power_mw)
        architecture = self._optional_query("nvmlDeviceGetArchitecture")
        averaged = architecture is None or int(architecture) >= _ARCH_AMPERE
        limit_mw = self._optional_query("nvmlDeviceGetEnforcedPowerLimit")
        if limit_mw is None:
            limit_mw = self._optional_query("nvmlDeviceGetPowerManagementLimit")
        memory = self._optional_query("nvmlDeviceGetMemoryInfo")
        vbios = self._optional_query("nvmlDeviceGetVbiosVersion")
        self._info = DeviceInfo(
            index=index,
            uuid=_text(self._query("nvmlDeviceGetUUID")),
            name=_text(self._query("nvmlDeviceGetName")),
            driver_version=driver_version,
            cuda_driver_version=cuda_driver_version,
            vbios_version=None if vbios is None else _text(vbios),
            power_limit_w=None if limit_mw is None else int(limit_mw) / 1000.0,
            memory_total_bytes=None if memory is None else int(memory.total),
            supports_energy_counter=self._supports_energy,
            energy_counter_period_s=NVML_ENERGY_COUNTER_PERIOD_S,
            power_period_s=0.0 if self._instant_power or not averaged else NVML_POWER_AVERAGE_PERIOD_S,
            backend="nvml",
        )

    def _query(self, name: str, *args: Any) -> Any:
        """Call ``pynvml.<name>(handle, *args)``, remembering queries the device does not support."""
        if name in self._unsupported:
            raise DeviceNotSupportedError(f"NVML {name} is not supported by this device")
        try:
            return _call(name, self._handle, *args)
        except DeviceNotSupportedError:
            self._unsupported.add(name)
            raise

    def _optional_query(self, name: str, *args: Any) -> Any:
        try:
            return self._query(name, *args)
        except DeviceNotSupportedError:
            return None

    @staticmethod
    def _probe(read: Callable[[], Any]) -> bool:
        try:
            read()
        except DeviceNotSupportedError:
            return False
        return True

    def _instant_power_mw(self) -> int:
        values = self._query("nvmlDeviceGetFieldValues", [_FI_DEV_POWER_INSTANT])
        field = values[0]
        if int(field.nvmlReturn) != 0:
            raise DeviceNotSupportedError(f"NVML field POWER_INSTANT returned code {int(field.nvmlReturn)}")
        value_type = int(field.valueType)
        if not 0 <= value_type < len(_VALUE_FIELDS):
            raise DeviceNotSupportedError(f"NVML field POWER_INSTANT has value type {value_type}")
        return int(getattr(field.value, _VALUE_FIELDS[value_type]))

    def info(self) -> DeviceInfo:
        """Return the identity and capabilities read when the device was opened."""
        return self._info

    def power_mw(self) -> int:
        """Return instantaneous power where the driver has it, else NVML's (averaged) power. Units: mW.

        Raises:
            DeviceError: the reading failed.
        """
        if self._instant_power:
            try:
                return self._instant_power_mw()
            except DeviceNotSupportedError:
                self._instant_power = False
                logger.info(
                    "GPU %s: instantaneous power stopped answering; using nvmlDeviceGetPowerUsage",
                    self._info.uuid,
                )
        return int(self._query("nvmlDeviceGetPowerUsage"))

    def energy_mj(self) -> int | None:
        """Return the total-energy counter (mJ since the driver loaded), ``None`` before Volta.

        Raises:
            DeviceError: the reading failed.
        """
        if not self._supports_energy:
            return None
        try:
            return int(self._query("nvmlDeviceGetTotalEnergyConsumption"))
        except DeviceNotSupportedError:
            self._supports_energy = False
            return None

    def temperature_c(self) -> int:
        """Return the GPU core temperature. Units: degrees Celsius.

        Raises:
            DeviceError: the reading failed.
        """
        return int(self._query("nvmlDeviceGetTemperature", _TEMPERATURE_GPU))

    def utilization_ratio(self) -> float | None:
        """Return the fraction of the last sample period in which a kernel ran (0-1)."""
        return float(self._query("nvmlDeviceGetUtilizationRates").gpu) / 100.0

    def memory_used_bytes(self) -> int | None:
        """Return device memory in use. Units: bytes."""
        return int(self._query("nvmlDeviceGetMemoryInfo").used)

    def sm_clock_hz(self) -> float | None:
        """Return the current SM clock. Units: Hz."""
        return float(self._query("nvmlDeviceGetClockInfo", _CLOCK_SM)) * 1e6

    def throttle_reasons(self) -> tuple[str, ...]:
        """Return the active clock-event reasons (``nvmlDeviceGetCurrentClocksEventReasons``)."""
        if "nvmlDeviceGetCurrentClocksEventReasons" not in self._unsupported:
            try:
                return decode_throttle_reasons(int(self._query("nvmlDeviceGetCurrentClocksEventReasons")))
            except DeviceNotSupportedError:
                pass  # drivers before 535 only have the deprecated name
        return decode_throttle_reasons(int(self._query("nvmlDeviceGetCurrentClocksThrottleReasons")))


class NVMLDeviceSet(DeviceSet):
    """The GPUs NVML reports, restricted and ordered by ``CUDA_VISIBLE_DEVICES``."""

    @classmethod
    def open(
        cls,
        cuda_visible_devices: str | None = None,
        cuda_device_order: str | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> NVMLDeviceSet:
        """Initialise NVML and open the visible GPUs; NVML is shut down again by :meth:`close`.

        Args:
            cuda_visible_devices: the ``CUDA_VISIBLE_DEVICES`` value the benchmark process runs with
                (``None``: unset, every GPU).
            cuda_device_order: the ``CUDA_DEVICE_ORDER`` value; only used to warn when integer entries
                may not match NVML's PCI order.
            clock: the monotonic clock samples are stamped with.

        Raises:
            DeviceUnavailableError: nvidia-ml-py is missing or NVML cannot initialise (no driver).
            DeviceError: another NVML failure while opening.
        """
        load_pynvml()
        _call("nvmlInit")
        try:
            count = int(_call("nvmlDeviceGetCount"))
            handles = [_call("nvmlDeviceGetHandleByIndex", i) for i in range(count)]
            uuids = [_text(_call("nvmlDeviceGetUUID", h)) for h in handles]
            indices = visible_device_indices(cuda_visible_devices, uuids)
            _warn_if_order_ambiguous(handles, cuda_visible_devices, cuda_device_order)
            driver = _text(_call("nvmlSystemGetDriverVersion"))
            cuda_driver = _cuda_version(_call("nvmlSystemGetCudaDriverVersion"))
            devices = [NVMLDevice(handles[i], i, driver, cuda_driver, clock) for i in indices]
        except BaseException:
            _shutdown()
            raise
        logger.info("NVML: %d GPU(s), %d visible (driver %s)", count, len(devices), driver)
        return cls(devices)

    def _close(self) -> None:
        _shutdown()


def _shutdown() -> None:
    try:
        _call("nvmlShutdown")
    except DeviceError as e:
        logger.debug("nvmlShutdown failed: %s", e)


def _cuda_version(value: Any) -> str:
    version = int(value)
    return f"{version // 1000}.{version % 1000 // 10}"


def _warn_if_order_ambiguous(
    handles: Sequence[Any], cuda_visible_devices: str | None, cuda_device_order: str | None
) -> None:
    """Warn when CUDA's default FASTEST_FIRST order may differ from NVML's PCI order."""
    if (cuda_device_order or "").upper() == "PCI_BUS_ID" or len(handles) < 2:
        return
    entries = [e.strip() for e in (cuda_visible_devices or "").split(",") if e.strip()]
    if cuda_visible_devices is not None and not any(e.lstrip("+-").isdigit() for e in entries):
        return  # UUIDs are unambiguous
    names = {_text(_call("nvmlDeviceGetName", h)) for h in handles}
    if len(names) > 1:
        logger.warning(
            "GPUs of different models (%s) without CUDA_DEVICE_ORDER=PCI_BUS_ID: CUDA indices may not "
            "match NVML indices; set CUDA_DEVICE_ORDER=PCI_BUS_ID or use GPU UUIDs in CUDA_VISIBLE_DEVICES",
            ", ".join(sorted(names)),
        )
