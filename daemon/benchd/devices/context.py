"""Devices for runs outside the daemon (``benchd bench``, ``benchd check``, :func:`benchd.evaluate`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Mapping

    from benchd.config import DaemonConfig, FakeDevicesConfig


class DeviceContext:
    """Open devices, a started sampler and the host fingerprint for runs outside the daemon.

    Args:
        mode: ``auto``, ``nvml``, ``fake`` or ``none`` (``devices.mode``).
        fake: the scripted GPUs of mode ``fake`` (``devices.fake``).
        retain_s: seconds of telemetry kept per device: the longest run's timeout plus a margin
            (:func:`benchd.devices.meter.retention_s`); a window older than that is not measured.
    """

    def __init__(
        self,
        mode: str = "auto",
        fake: FakeDevicesConfig | Mapping[str, Any] | None = None,
        *,
        retain_s: float | None = None,
    ) -> None:
        from benchd.devices import open_devices
        from benchd.devices.meter import DEFAULT_RETAIN_S, WindowSampler
        from benchd.devices.rapl import RAPLReader

        self.devices = open_devices(mode=mode, fake=fake)
        self.sampler = WindowSampler(
            self.devices, rapl=RAPLReader(), retain_s=DEFAULT_RETAIN_S if retain_s is None else retain_s
        )
        self.sampler.start()

    @classmethod
    def for_config(cls, config: DaemonConfig) -> DeviceContext:
        """The devices a daemon config names, keeping telemetry for its longest run (``benchd check``)."""
        from benchd.devices.meter import retention_s

        return cls(
            config.devices.mode,
            config.devices.fake,
            retain_s=retention_s(config.benchmark.timeout_s, config.devices.telemetry_retention_s),
        )

    def resolve(self, device: str) -> str:
        """Resolve ``auto``/``cuda`` to a concrete device name using what NVML found."""
        if device == "auto":
            return "cuda:0" if len(self.devices) else "cpu"
        return "cuda:0" if device == "cuda" else device

    def fingerprint(self, device: str) -> dict[str, Any]:
        """The parent-side hardware fingerprint for ``device``."""
        from benchd.devices.fingerprint import host_fingerprint

        return host_fingerprint(self.devices, device)

    def close(self) -> None:
        """Stop sampling and release the devices."""
        self.sampler.stop()
        self.devices.close()
