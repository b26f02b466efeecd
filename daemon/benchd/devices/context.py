"""Devices for runs outside the daemon (``benchd bench``, ``benchd check``, :func:`benchd.evaluate`)."""

from __future__ import annotations

from typing import Any


class DeviceContext:
    """Open devices, a started sampler and the host fingerprint for runs outside the daemon."""

    def __init__(self, mode: str = "auto", fake: dict[str, Any] | None = None) -> None:
        from benchd.devices import open_devices
        from benchd.devices.meter import WindowSampler
        from benchd.devices.rapl import RAPLReader

        self.devices = open_devices(mode=mode, fake=fake)
        self.sampler = WindowSampler(self.devices, rapl=RAPLReader())
        self.sampler.start()

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
