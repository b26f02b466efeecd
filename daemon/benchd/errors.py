"""benchd's error types: one rooted hierarchy, each error formats its own message."""

from __future__ import annotations


class BenchdError(Exception):
    """Root of every error benchd raises on purpose."""


class ConfigError(BenchdError):
    """A config value is invalid; ``path`` names the field (``scenario.server.target_qps``)."""

    def __init__(self, path: str, problem: str, source: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{path}: {problem}" if path else f"{where}{problem}")


class RunError(BenchdError):
    """A benchmark run failed; ``kind`` is a stable machine-readable reason.

    Kinds: ``artifact_not_found``, ``corrupt_artifact``, ``pickle_refused``, ``native_code_refused``,
    ``unsupported_artifact``, ``input_mismatch``,
    ``invalid_model_spec``, ``device_unavailable``, ``out_of_memory``, ``timeout``, ``worker_crashed``,
    ``model_error``, ``interrupted``, ``internal``.
    """

    kind = "internal"

    def __init__(self, message: str, kind: str | None = None) -> None:
        if kind is not None:
            self.kind = kind
        super().__init__(message)


class RunFailedError(RunError):
    """Raised by :func:`benchd.evaluate` when the worker's run did not complete."""


class DeviceError(BenchdError):
    """A device (GPU, RAPL domain) could not be queried."""


class DeviceNotFoundError(DeviceError):
    """The requested device does not exist or is not visible."""


class DeviceNotSupportedError(DeviceError):
    """The device does not support the requested query (e.g. the energy counter before Volta)."""


class DeviceUnavailableError(DeviceError):
    """The driver or library cannot be reached (NVML not initialised, driver not loaded, GPU lost)."""


class RegistryError(BenchdError):
    """A model registry could not be read (unreachable, bad answer, unknown model)."""


class StoreError(BenchdError):
    """The history store failed (schema, corruption, locked beyond its timeout)."""
