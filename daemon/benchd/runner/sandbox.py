"""What a worker process is allowed: its environment, its memory, its scratch folders (parent side, no torch).

A model artifact is hostile until proven otherwise, so the worker starts from an empty environment and
gets only what Python, torch, CUDA and the locale need (:func:`worker_env`), a private ``HOME`` and
``TMPDIR`` inside its run folder, and a memory limit (:class:`WorkerLimits`). Nothing here isolates the
filesystem or the network: see the README's security notes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

# the declaration owns the default limit; re-exported for the scripts in bench/
from benchd.config.workers import MIN_MEMORY_LIMIT_BYTES, default_memory_limit_bytes, host_memory_bytes

if TYPE_CHECKING:
    from benchd.config import WorkersConfig

__all__ = [
    "ALLOWED_ENV_NAMES",
    "ALLOWED_ENV_PREFIXES",
    "HOME_DIR",
    "TMP_DIR",
    "WorkerLimits",
    "default_memory_limit_bytes",
    "format_bytes",
    "host_memory_bytes",
    "is_passed_through",
    "worker_env",
]

#: Variables passed through from the daemon's environment unchanged, when set.
ALLOWED_ENV_NAMES: frozenset[str] = frozenset(
    {
        "PATH",  # the worker's own child processes (nvcc, ptxas for torch.compile) need it
        "LANG",
        "LANGUAGE",
        "TZ",
        "LD_LIBRARY_PATH",  # where CUDA's libraries live in NVIDIA containers (/usr/local/nvidia/lib64)
    }
)

#: Prefixes of variables passed through: locale, CUDA device selection and libraries, torch's allocator,
#: and thread-pool settings that change what a benchmark measures.
ALLOWED_ENV_PREFIXES: tuple[str, ...] = (
    "LC_",
    "CUDA_",  # CUDA_VISIBLE_DEVICES, CUDA_MODULE_LOADING, CUDA_LAUNCH_BLOCKING, CUDA_DEVICE_ORDER
    "NVIDIA_",  # NVIDIA_VISIBLE_DEVICES, NVIDIA_DRIVER_CAPABILITIES (container runtime)
    "CUBLAS_",  # CUBLAS_WORKSPACE_CONFIG (deterministic cuBLAS)
    "CUDNN_",
    "PYTORCH_",  # PYTORCH_CUDA_ALLOC_CONF, PYTORCH_NVML_BASED_CUDA_CHECK
    "OMP_",  # OMP_NUM_THREADS, OMP_PROC_BIND
    "MKL_",
    "KMP_",  # Intel OpenMP affinity and block time
    "GOMP_",
    "OPENBLAS_",
)

#: Names that never pass, even under an allowed prefix (a secret someone named ``CUDA_..._TOKEN``).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|API_?KEY|AUTH", re.IGNORECASE)

#: Scratch folders made inside the run folder: the worker's ``HOME`` and ``TMPDIR``.
HOME_DIR, TMP_DIR = "home", "tmp"


def is_passed_through(name: str) -> bool:
    """True when the daemon's variable ``name`` reaches the worker (allow-listed and not secret-looking)."""
    if _SECRET_NAME.search(name):
        return False
    return name in ALLOWED_ENV_NAMES or name.startswith(ALLOWED_ENV_PREFIXES)


def worker_env(
    run_dir: Path, extra: Mapping[str, str] | None = None, source: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The whole environment of a worker started for ``run_dir``.

    Args:
        run_dir: the run folder; ``HOME`` is ``run_dir/home`` and ``TMPDIR`` is ``run_dir/tmp`` (made
            here), so caches and temporary files a model writes stay with its run, never in the daemon
            user's home.
        extra: variables a caller adds explicitly (``PYTHONPATH`` for pickled model classes); they win,
            whatever their name.
        source: the daemon's environment (default ``os.environ``); only allow-listed names pass
            (:data:`ALLOWED_ENV_NAMES`, :data:`ALLOWED_ENV_PREFIXES`).
    """
    source = os.environ if source is None else source
    env = {k: v for k, v in source.items() if is_passed_through(k)}
    env.setdefault("PATH", os.defpath)
    home, tmp = run_dir / HOME_DIR, run_dir / TMP_DIR
    home.mkdir(parents=True, exist_ok=True)
    tmp.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home.resolve()),
        TMPDIR=str(tmp.resolve()),
        XDG_CACHE_HOME=str((home / ".cache").resolve()),
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",  # a worker never writes into the installed package
        PYTHONNOUSERSITE="1",  # nor imports from a user site under the daemon's real home
    )
    env.update(extra or {})
    return env


def format_bytes(n: int) -> str:
    """``n`` bytes as a short human figure (``1.5 GiB``, ``64 MiB``)."""
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n} B"


@dataclass(frozen=True)
class WorkerLimits:
    """What one worker may use and how it is stopped.

    The defaults are the config's (``workers:``, :class:`benchd.config.WorkersConfig`); the daemon and
    ``benchd check`` build theirs with :meth:`from_config`.

    Attributes:
        memory_limit_bytes: the worker's memory limit (``RLIMIT_DATA``: heap and private anonymous
            mappings, inherited by its children; CUDA's reserved virtual ranges are not counted, GPU memory
            is not limited). None: no limit. Default: 3/4 of host RAM.
        grace_s: seconds a worker (and whatever it started) gets between SIGTERM and SIGKILL.
        log_cap_bytes: the most bytes of stderr kept in the run folder (``worker.log`` plus the previous
            half in ``worker.log.1``); older output is dropped.
        max_event_bytes: the longest progress line read from the worker's stdout; longer lines are
            dropped (and logged), never buffered whole.
    """

    memory_limit_bytes: int | None = field(default_factory=default_memory_limit_bytes)
    grace_s: float = 3.0
    log_cap_bytes: int = 8 << 20
    max_event_bytes: int = 1 << 20

    @classmethod
    def from_config(cls, workers: WorkersConfig) -> WorkerLimits:
        """The limits the config's ``workers:`` section declares."""
        return cls(
            memory_limit_bytes=workers.memory_limit_bytes,
            grace_s=workers.kill_grace_s,
            log_cap_bytes=workers.log_cap_bytes,
            max_event_bytes=workers.max_event_line_bytes,
        )

    def __post_init__(self) -> None:
        if self.memory_limit_bytes is not None and self.memory_limit_bytes < MIN_MEMORY_LIMIT_BYTES:
            raise ValueError(f"memory_limit_bytes must be at least 16 MiB, got {self.memory_limit_bytes}")
        if self.grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {self.grace_s}")
        if self.log_cap_bytes < 8 << 10:
            raise ValueError(f"log_cap_bytes must be at least 8 KiB, got {self.log_cap_bytes}")
        if self.max_event_bytes < 1 << 10:
            raise ValueError(f"max_event_bytes must be at least 1 KiB, got {self.max_event_bytes}")
