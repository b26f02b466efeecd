"""Sample device telemetry in the parent process while a benchmark child runs; report per window.

The timing loop runs in a child process; :class:`WindowSampler` runs a thread in the *parent* (the
daemon, which never imports torch), so no sampler competes with the timing loop for its GIL. The child
reports each scenario's measured window as ``time.monotonic()`` seconds (CLOCK_MONOTONIC is shared by
all processes of a host); once it exits, :meth:`WindowSampler.energy_for_window` and
:meth:`WindowSampler.telemetry_for_window` turn the sampled series into records::

    sampler = WindowSampler(device_set, RAPLReader())
    with sampler:
        run_child()                      # reports window_start_mono_s / window_end_mono_s
    energy = sampler.energy_for_window("cuda:0", start_s, end_s, samples=n)

``start()`` and ``stop()`` each take one sample synchronously, so the series covers every window that
lies between them. Memory is bounded: each device keeps a ring of the newest ``retain_s / interval_s``
samples (:class:`~benchd.devices.telemetry_buffer.TelemetryRing`, about 64 bytes a sample, allocated
once), so the daemon's footprint does not grow however long it runs. The caller sizes ``retain_s`` to the
longest window it will ask about (a run's timeout plus a margin); a window that starts before the oldest
sample kept is answered "not measured" with that reason, never with a number computed from part of it.
Readers take only the samples of the range they need (:meth:`WindowSampler.since`,
:meth:`WindowSampler.latest`), never a copy of the whole history.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from benchd.devices.base import DeviceSet, TelemetrySample
from benchd.devices.energy import counter_energy, not_measured, power_energy, summarize_telemetry
from benchd.devices.rapl import RAPLReader
from benchd.devices.telemetry_buffer import TelemetryRing
from benchd.errors import DeviceError, DeviceNotFoundError
from benchd.records import EnergyReport, TelemetrySummary

logger = logging.getLogger(__name__)

CPU = "cpu"
#: Seconds of telemetry kept per device by default: the default run timeout (600 s) plus a margin.
DEFAULT_RETAIN_S = 900.0
#: Telemetry kept beyond the longest run, for the launcher to read a finished run's windows.
RETAIN_MARGIN_S = 60.0
#: Samples fetched beyond each edge of a window, so a sample missing a reading at the edge is bridged.
_EDGE_MARGIN_S = 1.0


def retention_s(longest_run_s: float, configured_s: float | None = None) -> float:
    """Seconds of telemetry to keep when no run lasts longer than ``longest_run_s`` (its timeout).

    A run's windows are read once its worker has exited, so the buffer must reach back to the start of
    the longest run, plus a margin; never less than :data:`DEFAULT_RETAIN_S`. ``configured_s`` (the
    config's ``devices.telemetry_retention``), when set, is used as it is.
    """
    if configured_s is not None:
        return configured_s
    return max(DEFAULT_RETAIN_S, longest_run_s + RETAIN_MARGIN_S)


class WindowSampler:
    """Samples every device of a set (and the CPU's RAPL counter) from a thread of the parent process.

    Args:
        device_set: the GPUs, in CUDA order (``cuda:i`` is ``device_set.devices[i]``).
        rapl: CPU package energy; ``None`` uses ``RAPLReader()`` on ``/sys/class/powercap``.
        interval_s: sampling period in seconds.
        clock: the monotonic clock RAPL samples are stamped with (devices stamp their own samples).
        retain_s: seconds of history kept per device (the longest window the caller will ask about,
            plus a margin); memory is ``retain_s / interval_s`` samples of about 64 bytes per device.

    Raises:
        ValueError: ``interval_s`` or ``retain_s`` is not positive.
    """

    def __init__(
        self,
        device_set: DeviceSet,
        rapl: RAPLReader | None = None,
        interval_s: float = 0.05,
        clock: Callable[[], float] = time.monotonic,
        retain_s: float = DEFAULT_RETAIN_S,
    ) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        if retain_s <= 0:
            raise ValueError(f"retain_s must be positive, got {retain_s}")
        self._device_set = device_set
        self._devices = {f"cuda:{i}": d for i, d in enumerate(device_set)}
        self._rapl = rapl if rapl is not None else RAPLReader()
        self._rapl_available: bool | None = None
        self._interval_s = interval_s
        self._clock = clock
        self.retain_s = retain_s
        self.capacity = math.ceil(retain_s / interval_s) + 2  # + the synchronous start/stop samples
        self._series = {name: TelemetryRing(self.capacity) for name in [*self._devices, CPU]}
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def rapl_available(self) -> bool:
        """True when the CPU's RAPL counters can be read (probed once)."""
        if self._rapl_available is None:
            self._rapl_available = self._rapl.is_available()
        return self._rapl_available

    def errors(self) -> dict[str, int]:
        """Failed readings so far, per device name (``cuda:N``, ``cpu``)."""
        with self._lock:
            return dict(self._errors)

    def samples(self, device: str) -> list[TelemetrySample]:
        """Every sample kept for ``device`` (``cpu``, ``cuda:N``), oldest first (at most :attr:`capacity`)."""
        with self._lock:
            ring = self._series.get(_normalise(device))
            return ring.all() if ring is not None else []

    def since(self, device: str, t_mono_s: float) -> list[TelemetrySample]:
        """The samples of ``device`` stamped at or after ``t_mono_s`` (monotonic seconds), oldest first."""
        with self._lock:
            ring = self._series.get(_normalise(device))
            return ring.since(t_mono_s) if ring is not None else []

    def latest(self, device: str) -> TelemetrySample | None:
        """The newest sample of ``device``, or None when there is none yet."""
        with self._lock:
            ring = self._series.get(_normalise(device))
            return ring.latest() if ring is not None else None

    def stored_samples(self) -> int:
        """The number of samples held for all devices together (bounded by devices x :attr:`capacity`)."""
        with self._lock:
            return sum(len(ring) for ring in self._series.values())

    def _window(self, name: str, start_s: float, end_s: float) -> tuple[list[TelemetrySample], str | None]:
        """The samples around a window, or a reason why the buffer no longer covers its start."""
        with self._lock:
            ring = self._series.get(name)
            if ring is None:
                return [], None
            oldest_s = ring.oldest_t_s()
            if ring.wrapped and oldest_s is not None and start_s < oldest_s:
                return [], (
                    f"telemetry of {name} for a window that started {oldest_s - start_s:.1f} s before the "
                    f"oldest sample kept (the buffer holds the last {self.retain_s:.0f} s)"
                )
            return ring.between(start_s - _EDGE_MARGIN_S, end_s + _EDGE_MARGIN_S), None

    def sample_once(self) -> None:
        """Take one sample of every device now; a failing device is logged and counted, never raised."""
        for name, device in self._devices.items():
            try:
                sample = device.sample()
            except DeviceError as e:
                self._count_error(name, e)
                continue
            with self._lock:
                stored = self._series[name].append(sample)
            if not stored:
                logger.debug(
                    "telemetry of %s: sample at %.6f s is older than the last one; dropped",
                    name,
                    sample.t_mono_s,
                )
        if self.rapl_available:
            try:
                before_s = self._clock()
                energy_j = self._rapl.read_energy_j()
                t_s = (before_s + self._clock()) / 2.0
            except DeviceError as e:
                self._count_error(CPU, e)
                return
            with self._lock:
                self._series[CPU].append(TelemetrySample(t_mono_s=t_s, energy_j=energy_j))

    def _count_error(self, name: str, error: DeviceError) -> None:
        with self._lock:
            count = self._errors[name] = self._errors.get(name, 0) + 1
        if count == 1:
            logger.warning("telemetry of %s failed (further failures logged at DEBUG): %s", name, error)
        else:
            logger.debug("telemetry of %s failed: %s", name, error)

    def start(self) -> WindowSampler:
        """Take a first sample and start the sampling thread (idempotent while running)."""
        if self._thread is not None:
            return self
        self._stop.clear()
        self.sample_once()
        self._thread = threading.Thread(target=self._run, name="benchd-telemetry", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and take a last sample, so the series covers windows that just ended."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.sample_once()

    def __enter__(self) -> WindowSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        next_s = time.monotonic() + self._interval_s
        while not self._stop.wait(max(0.0, next_s - time.monotonic())):
            try:
                self.sample_once()
            except Exception:  # a bug in one backend must not end telemetry for the run
                logger.exception("telemetry sampling failed")
            next_s += self._interval_s
            now_s = time.monotonic()
            if next_s < now_s:  # fell behind (slow driver call): skip, don't burst
                next_s = now_s + self._interval_s

    def energy_for_window(
        self, device: str, start_mono_s: float, end_mono_s: float, samples: int = 0
    ) -> EnergyReport:
        """Energy of one measured window: counter delta, else integrated power, else "not measured".

        Args:
            device: ``cpu`` (RAPL) or ``cuda:N``.
            start_mono_s: window start, ``time.monotonic()`` seconds.
            end_mono_s: window end, ``time.monotonic()`` seconds.
            samples: inference samples processed in the window, for J/sample (0: unknown).
        """
        window_s = max(0.0, end_mono_s - start_mono_s)
        name = _normalise(device)
        series, too_old = self._window(name, start_mono_s, end_mono_s)
        if too_old is not None:
            return not_measured(too_old, window_s)
        if name == CPU:
            if not self.rapl_available:
                return not_measured(self._rapl.unavailable_reason(), window_s)
            return counter_energy(series, start_mono_s, end_mono_s, samples, "rapl")
        try:
            info = self._device_set.get(name).info()
        except DeviceNotFoundError as e:
            return not_measured(f"no telemetry device for {device}: {e}", window_s)
        if info.supports_energy_counter and any(s.energy_j is not None for s in series):
            return counter_energy(
                series,
                start_mono_s,
                end_mono_s,
                samples,
                f"{info.backend}_energy_counter",
                info.energy_counter_period_s,
            )
        return power_energy(
            series,
            start_mono_s,
            end_mono_s,
            samples,
            f"{info.backend}_power_integration",
            max(info.power_period_s, 0.0),
        )

    def telemetry_for_window(self, device: str, start_mono_s: float, end_mono_s: float) -> TelemetrySummary:
        """Summary of the telemetry sampled over one window (CPU: sample count and RAPL power only).

        Args:
            device: ``cpu`` or ``cuda:N``.
            start_mono_s: window start, ``time.monotonic()`` seconds.
            end_mono_s: window end, ``time.monotonic()`` seconds.
        """
        name = _normalise(device)
        series, too_old = self._window(name, start_mono_s, end_mono_s)
        if too_old is not None:
            logger.warning("no telemetry summary: %s", too_old)
            return TelemetrySummary()
        if name != CPU:
            return summarize_telemetry(series, start_mono_s, end_mono_s)
        inside = sum(1 for s in series if start_mono_s <= s.t_mono_s <= end_mono_s)
        energy = self.energy_for_window(CPU, start_mono_s, end_mono_s)
        return TelemetrySummary(samples=inside, mean_power_w=energy.mean_power_w if energy.measured else None)


def _normalise(device: str) -> str:
    name = device.strip().lower()
    return "cuda:0" if name == "cuda" else name
