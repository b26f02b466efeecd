"""Fake GPUs with scripted power, energy and throttling, so benchd runs end to end without a GPU.

Selected by config (``devices: {mode: fake, fake: {...}}``, validated by
:class:`benchd.config.FakeDevicesConfig`, the one declaration of these settings and their defaults) and
used by every test above ``devices/``, which then needs no patching. A :class:`FakeDevice` is a pure
function of its clock: time since it was created (``elapsed_s``) decides power, the energy counter and
throttle reasons, so it is deterministic and thread-safe. Config keys (all optional; ``devices:`` gives
per-device overrides of the top-level keys)::

    count: 1                      # number of fake GPUs
    power_w: 250                  # constant, or phases: [{from_s: 0, w: 100}, {from_s: 2, w: 300}]
    energy_counter: true          # false: no counter, energy is integrated from sampled power
    energy_counter_period_s: 0.0  # > 0: the counter only moves every period (like NVML's ~0.1 s)
    power_period_s: 0.0           # > 0: power readings average the trailing period (like NVML's 1 s)
    counter_resets_s: []          # times at which the energy counter restarts from 0
    throttle: [{from_s: 0, to_s: 5, reasons: [thermal]}]   # or throttle_reasons: [power_cap] (whole run)
    fail_on: {energy_mj: unavailable}   # call -> unavailable | not_supported | not_found | error
    cuda_visible_devices: "1,0"   # applied like CUDA_VISIBLE_DEVICES; unset: every fake GPU
    name, uuid, driver_version, cuda_driver_version, vbios_version, power_limit_w, memory_total_bytes,
    memory_used_bytes, utilization_ratio, temperature_c, sm_clock_hz

Exactness: :meth:`FakeDevice.energy_j` is the exact integral of the scripted power (a float, not rounded
to mJ). With constant power and ``energy_counter_period_s: 0`` the counter is linear in the clock, so the
meter's interpolation at window edges is exact: 250 W over a 2.0 s window reports 500 J (to float
rounding), whatever the sampling times. With phases it is exact when no phase boundary falls between
the two samples around each window edge; the power-integration fallback is exact for constant power.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from benchd.config.fake_devices import FailableCall, FakeDevicesConfig, FakeGPUConfig
from benchd.devices.base import (
    THROTTLE_REASONS,
    Device,
    DeviceInfo,
    DeviceSet,
    TelemetrySample,
    visible_device_indices,
)
from benchd.errors import (
    DeviceError,
    DeviceNotFoundError,
    DeviceNotSupportedError,
    DeviceUnavailableError,
)

_FAIL_KINDS: dict[str, type[DeviceError]] = {
    "unavailable": DeviceUnavailableError,
    "not_supported": DeviceNotSupportedError,
    "not_found": DeviceNotFoundError,
    "error": DeviceError,
}
_FAILABLE_CALLS = frozenset(typing.get_args(FailableCall))


@dataclass(frozen=True)
class PowerPhase:
    """From ``from_s`` seconds after the device was created (until the next phase) it draws ``power_w``."""

    from_s: float
    power_w: float


@dataclass(frozen=True)
class ThrottleSpan:
    """Between ``from_s`` and ``to_s`` seconds after creation the device reports ``reasons``."""

    from_s: float
    to_s: float
    reasons: tuple[str, ...]


class FakeDevice(Device):
    """A scripted GPU; see the module docstring for what each setting does."""

    def __init__(
        self,
        index: int = 0,
        *,
        name: str = "Fake GPU",
        uuid: str | None = None,
        power_w: float | Sequence[PowerPhase] = 250.0,
        supports_energy_counter: bool = True,
        energy_counter_period_s: float = 0.0,
        power_period_s: float = 0.0,
        counter_resets_s: Iterable[float] = (),
        throttle: Iterable[ThrottleSpan] = (),
        fail_on: Mapping[str, str] | Iterable[str] | str | None = None,
        driver_version: str = "550.54.15",
        cuda_driver_version: str = "12.4",
        vbios_version: str | None = "96.00.00.00.00",
        power_limit_w: float | None = 700.0,
        memory_total_bytes: int = 80 * 2**30,
        memory_used_bytes: int = 2 * 2**30,
        utilization_ratio: float = 1.0,
        temperature_c: float = 60.0,
        sm_clock_hz: float = 1.98e9,
        clock: Callable[[], float] = time.monotonic,
        start_mono_s: float | None = None,
    ) -> None:
        self._source_clock = clock
        self._frozen = threading.local()
        self._clock = self._now
        self._start_s = clock() if start_mono_s is None else start_mono_s
        phases = [PowerPhase(0.0, float(power_w))] if isinstance(power_w, (int, float)) else list(power_w)
        phases.sort(key=lambda p: p.from_s)
        if not phases or phases[0].from_s != 0.0:
            raise ValueError("power phases must start at from_s 0")
        self._phases = phases
        self._phase_starts = [p.from_s for p in phases]
        self._resets_s = sorted(float(r) for r in counter_resets_s)
        self._throttle = tuple(throttle)
        for span in self._throttle:
            unknown = set(span.reasons) - set(THROTTLE_REASONS)
            if unknown:
                raise ValueError(
                    f"unknown throttle reasons {sorted(unknown)}; known: {list(THROTTLE_REASONS)}"
                )
        self._fail_on = _fail_map(fail_on)
        self._counter_period_s = energy_counter_period_s
        self._power_period_s = power_period_s
        self._memory_used_bytes = memory_used_bytes
        self._utilization_ratio = utilization_ratio
        self._temperature_c = temperature_c
        self._sm_clock_hz = sm_clock_hz
        self._info = DeviceInfo(
            index=index,
            uuid=uuid or f"GPU-00000000-0000-4000-8000-{index:012d}",
            name=name,
            driver_version=driver_version,
            cuda_driver_version=cuda_driver_version,
            vbios_version=vbios_version,
            power_limit_w=power_limit_w,
            memory_total_bytes=memory_total_bytes,
            supports_energy_counter=supports_energy_counter,
            energy_counter_period_s=energy_counter_period_s,
            power_period_s=power_period_s,
            backend="fake",
        )

    def _now(self) -> float:
        frozen = getattr(self._frozen, "t_s", None)
        return self._source_clock() if frozen is None else frozen

    def elapsed_s(self) -> float:
        """Seconds since the device was created, by its clock (never negative)."""
        return max(0.0, self._now() - self._start_s)

    def sample(self) -> TelemetrySample:
        """Read every value at one instant of the clock, so the sample's time and values agree exactly.

        Raises:
            DeviceError: a scripted failure of a supported reading.
        """
        self._frozen.t_s = self._source_clock()
        try:
            return super().sample()
        finally:
            self._frozen.t_s = None

    def _check(self, call: str) -> None:
        kind = self._fail_on.get(call)
        if kind is not None:
            raise _FAIL_KINDS[kind](f"fake device {self._info.index}: scripted failure of {call} ({kind})")

    def _power_at(self, elapsed_s: float) -> float:
        return self._phases[bisect.bisect_right(self._phase_starts, elapsed_s) - 1].power_w

    def _integral_j(self, elapsed_s: float) -> float:
        """Energy from 0 to ``elapsed_s`` of the scripted power, in J."""
        total_j = 0.0
        for i, phase in enumerate(self._phases):
            if phase.from_s >= elapsed_s:
                break
            end_s = self._phases[i + 1].from_s if i + 1 < len(self._phases) else math.inf
            total_j += phase.power_w * (min(end_s, elapsed_s) - phase.from_s)
        return total_j

    def info(self) -> DeviceInfo:
        """Return the scripted identity and capabilities."""
        return self._info

    def power_w(self) -> float:
        """Return the scripted power (averaged over ``power_period_s`` when set). Units: W."""
        self._check("power_mw")
        now_s = self.elapsed_s()
        if self._power_period_s <= 0.0 or now_s <= 0.0:
            return self._power_at(now_s)
        since_s = max(0.0, now_s - self._power_period_s)
        return (self._integral_j(now_s) - self._integral_j(since_s)) / (now_s - since_s)

    def power_mw(self) -> int:
        """Return :meth:`power_w` rounded to mW."""
        return round(self.power_w() * 1000.0)

    def energy_j(self) -> float | None:
        """Return the exact scripted energy counter in J (``None`` without a counter)."""
        self._check("energy_mj")
        if not self._info.supports_energy_counter:
            return None
        now_s = self.elapsed_s()
        if self._counter_period_s > 0.0:
            now_s = math.floor(now_s / self._counter_period_s) * self._counter_period_s
        reset_index = bisect.bisect_right(self._resets_s, now_s)
        since_s = self._resets_s[reset_index - 1] if reset_index else 0.0
        return self._integral_j(now_s) - self._integral_j(since_s)

    def energy_mj(self) -> int | None:
        """Return :meth:`energy_j` rounded to mJ, as NVML would."""
        energy_j = self.energy_j()
        return None if energy_j is None else round(energy_j * 1000.0)

    def temperature_c(self) -> int:
        """Return the scripted temperature. Units: degrees Celsius."""
        self._check("temperature_c")
        return round(self._temperature_c)

    def utilization_ratio(self) -> float | None:
        """Return the scripted utilisation (0-1)."""
        self._check("utilization_ratio")
        return self._utilization_ratio

    def memory_used_bytes(self) -> int | None:
        """Return the scripted memory use. Units: bytes."""
        self._check("memory_used_bytes")
        return self._memory_used_bytes

    def sm_clock_hz(self) -> float | None:
        """Return the scripted SM clock. Units: Hz."""
        self._check("sm_clock_hz")
        return self._sm_clock_hz

    def throttle_reasons(self) -> tuple[str, ...]:
        """Return the reasons of every throttle span active now, in NVML bit order."""
        self._check("throttle_reasons")
        now_s = self.elapsed_s()
        active = {r for span in self._throttle if span.from_s <= now_s < span.to_s for r in span.reasons}
        return tuple(r for r in THROTTLE_REASONS if r in active)


class FakeDeviceSet(DeviceSet):
    """Fake GPUs in CUDA order, optionally restricted by a ``cuda_visible_devices`` string."""

    def __init__(self, devices: Sequence[FakeDevice], cuda_visible_devices: str | None = None) -> None:
        indices = visible_device_indices(cuda_visible_devices, [d.info().uuid for d in devices])
        super().__init__([devices[i] for i in indices])

    @classmethod
    def from_config(
        cls,
        config: FakeDevicesConfig | Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> FakeDeviceSet:
        """Build fake GPUs from the ``devices.fake`` config (typed, or a mapping validated through it).

        Raises:
            ConfigError: every invalid value, each with its path under ``devices.fake``.
        """
        if not isinstance(config, FakeDevicesConfig):
            config = FakeDevicesConfig.from_mapping(config)
        start_s = clock()
        devices = [_device(i, config.device(i), clock, start_s) for i in range(config.device_count)]
        return cls(devices, config.cuda_visible_devices)


def _device(index: int, gpu: FakeGPUConfig, clock: Callable[[], float], start_s: float) -> FakeDevice:
    spans = [ThrottleSpan(s.from_s, math.inf if s.to_s is None else s.to_s, s.reasons) for s in gpu.throttle]
    if gpu.throttle_reasons:
        spans.append(ThrottleSpan(0.0, math.inf, gpu.throttle_reasons))
    return FakeDevice(
        index,
        name=gpu.name,
        uuid=gpu.uuid,
        power_w=[PowerPhase(p.from_s, p.w) for p in gpu.power_w],
        supports_energy_counter=gpu.energy_counter,
        energy_counter_period_s=gpu.energy_counter_period_s,
        power_period_s=gpu.power_period_s,
        counter_resets_s=gpu.counter_resets_s,
        throttle=spans,
        fail_on={call: kind for call, kind in gpu.fail_on.items()},
        driver_version=gpu.driver_version,
        cuda_driver_version=gpu.cuda_driver_version,
        vbios_version=gpu.vbios_version,
        power_limit_w=gpu.power_limit_w,
        memory_total_bytes=gpu.memory_total_bytes,
        memory_used_bytes=gpu.memory_used_bytes,
        utilization_ratio=gpu.utilization_ratio,
        temperature_c=gpu.temperature_c,
        sm_clock_hz=gpu.sm_clock_hz,
        clock=clock,
        start_mono_s=start_s,
    )


def _fail_map(fail_on: Mapping[str, str] | Iterable[str] | str | None) -> dict[str, str]:
    if fail_on is None:
        return {}
    if isinstance(fail_on, str):
        fail_on = {fail_on: "unavailable"}
    elif not isinstance(fail_on, Mapping):
        fail_on = {call: "unavailable" for call in fail_on}
    for call, kind in fail_on.items():
        if call not in _FAILABLE_CALLS:
            raise ValueError(f"fail_on: unknown call {call!r}; known: {sorted(_FAILABLE_CALLS)}")
        if kind not in _FAIL_KINDS:
            raise ValueError(f"fail_on: unknown failure {kind!r}; known: {sorted(_FAIL_KINDS)}")
    return dict(fail_on)
