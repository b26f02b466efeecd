"""The ``workers:`` and ``runs:`` sections: what a benchmark worker may use, and how stuck runs end.

A model artifact is hostile until proven otherwise: each worker process gets a memory limit, a bounded log
and bounded event lines, and is killed (SIGTERM, then SIGKILL after ``kill_grace``) when its time is up
(:class:`benchd.runner.sandbox.WorkerLimits` takes these values).
"""

from __future__ import annotations

import os
from typing import Annotated

from pydantic import Field

from benchd.config.units import DAY_S, HOUR_S, ByteSize, ConfigModel, Duration

#: A worker's default memory limit, as a fraction of host RAM.
DEFAULT_MEMORY_FRACTION = 0.75
#: The smallest memory limit a worker can start Python and torch under, in bytes.
MIN_MEMORY_LIMIT_BYTES = 16 << 20
#: The largest memory limit accepted (beyond it RLIMIT_DATA means nothing), in bytes.
MAX_MEMORY_LIMIT_BYTES = 1 << 50


def host_memory_bytes() -> int:
    """Physical memory of this host in bytes (0 when unknown)."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 0


def default_memory_limit_bytes(fraction: float = DEFAULT_MEMORY_FRACTION) -> int | None:
    """The default per-worker memory limit: ``fraction`` of host RAM (None, no limit, when RAM is unknown)."""
    total = host_memory_bytes()
    return int(total * fraction) if total else None


class WorkersConfig(ConfigModel):
    """Limits of each benchmark worker process (runs, comparison trials, calibration)."""

    memory_limit_bytes: (
        Annotated[ByteSize, Field(ge=MIN_MEMORY_LIMIT_BYTES, le=MAX_MEMORY_LIMIT_BYTES)] | None
    ) = Field(
        default_factory=default_memory_limit_bytes,
        alias="memory_limit",
        description="RLIMIT_DATA per worker (heap and private mappings, children included; GPU memory is "
        "not limited); null: no limit",
        json_schema_extra={"x-default": "75% of host RAM"},
    )
    kill_grace_s: Duration = Field(
        3.0,
        alias="kill_grace",
        ge=0,
        le=HOUR_S,
        description="time between SIGTERM and SIGKILL of a worker's processes",
    )
    log_cap_bytes: ByteSize = Field(
        8 << 20, alias="log_cap", ge=8 << 10, description="stderr kept per run (rotated)"
    )
    max_event_line_bytes: ByteSize = Field(
        1 << 20, alias="max_event_line", ge=1 << 10, description="longest stdout event line kept"
    )


class RunsConfig(ConfigModel):
    """What happens to runs that never end (a host that lost its worker, a store that failed)."""

    stuck_grace_s: Duration = Field(
        900.0,
        alias="stuck_grace",
        gt=0,
        le=DAY_S,
        description="a run still running this long past its timeout is failed",
    )
    stuck_check_interval_s: Duration = Field(
        60.0,
        alias="stuck_check_interval",
        gt=0,
        le=DAY_S,
        description="how often that check runs",
    )
