"""Fleet helpers around a shared store: a lease keeper (heartbeat thread), per-class cursors, host views.

When several hosts share one PostgreSQL store (``store.shared``), each host:

* queues and claims runs per hardware class, holding a lease that :class:`LeaseKeeper` renews;
* keeps registry cursors per hardware class (:class:`ScopedCursorStore`): a host of another class must
  still see every version, while hosts of one class share their position (duplicates collapse anyway);
* exports only the runs and verdicts it made itself (:class:`HostView`), since Prometheus aggregates hosts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from benchd.history.base import CursorStore, HistoryStore, ResultRow
from benchd.records import ModelVersion, NoiseFloor, Verdict

logger = logging.getLogger(__name__)


def host_name(env: Mapping[str, str] | None = None) -> str:
    """Return this host's name in the fleet: ``$BENCHD_HOST`` (e.g. the node name), else the hostname."""
    env = os.environ if env is None else env
    return env.get("BENCHD_HOST") or socket.gethostname()


def lease_owner(host: str | None, slot: str, pid: int | None = None) -> str:
    """Return a lease owner unique to this process and slot (``host/pid/slot``)."""
    return f"{host or socket.gethostname()}/{os.getpid() if pid is None else pid}/{slot}"


class LeaseKeeper:
    """Renews the lease on one running run every ``interval_s`` until stopped (a daemon thread).

    ``lost`` is set when a heartbeat finds the lease gone (another host took the run over); a heartbeat
    that fails on a store error is logged and retried at the next interval.
    """

    def __init__(self, store: HistoryStore, run_id: int, owner: str, interval_s: float) -> None:
        self.store = store
        self.run_id = run_id
        self.owner = owner
        self.interval_s = interval_s
        self.lost = threading.Event()
        self.beats = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"benchd-lease-{run_id}", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=max(5.0, self.interval_s * 2))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                held = self.store.heartbeat(self.run_id, self.owner)
            except Exception:  # a database hiccup: the lease usually outlives a few missed beats
                logger.exception("run %d: heartbeat failed", self.run_id)
                continue
            self.beats += 1
            if not held:
                logger.error("run %d: lease lost (another host took the run over)", self.run_id)
                self.lost.set()
                return


class ScopedCursorStore:
    """Keeps registry cursors of one scope (hardware class) apart in a shared store: ``registry@scope``."""

    def __init__(self, store: CursorStore, scope: str) -> None:
        self.store = store
        self.scope = scope

    def get_cursor(self, registry: str, key: str) -> str | None:
        """Return the scope's cursor value under (registry, key), or None."""
        return self.store.get_cursor(f"{registry}@{self.scope}", key)

    def set_cursor(self, registry: str, key: str, value: str) -> None:
        """Store the scope's cursor value under (registry, key)."""
        self.store.set_cursor(f"{registry}@{self.scope}", key, value)


class HostView:
    """A read view of a shared store that shows one host's results, run counts and verdicts (for export).

    Every other attribute is the store's own (versions, models, latencies are fleet-wide).
    """

    def __init__(self, store: HistoryStore, host: str) -> None:
        self.store = store
        self.host = host

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def result_rows(
        self,
        model: str | None = None,
        version: str | None = None,
        scenario: str | None = None,
        limit: int | None = None,
        *,
        hardware_class: str | None = None,
        host: str | None = None,
    ) -> list[ResultRow]:
        """Return this host's stored results, newest first (see ``HistoryStore.result_rows``)."""
        return self.store.result_rows(
            model, version, scenario, limit, hardware_class=hardware_class, host=host or self.host
        )

    def result_versions(self, *, host: str | None = None) -> dict[tuple[str, str], float]:
        """Return the versions this host has results of (see ``HistoryStore.result_versions``)."""
        return self.store.result_versions(host=host or self.host)

    def energy_totals(self, *, host: str | None = None) -> dict[str, float]:
        """Return the joules of this host's measured windows, per device."""
        return self.store.energy_totals(host=host or self.host)

    def p99_history(
        self, runs: int, *, host: str | None = None
    ) -> dict[tuple[str, str, str, int], list[tuple[int, str, float]]]:
        """Return the newest P99s of this host's series (see ``HistoryStore.p99_history``)."""
        return self.store.p99_history(runs, host=host or self.host)

    def list_versions(self, model: str | None = None) -> list[ModelVersion]:
        """Return the fleet's known versions, oldest first (versions are not per host)."""
        return self.store.list_versions(model)

    def latencies(self, result_id: int) -> np.ndarray:
        """Return a result's raw latencies (int64 ns)."""
        return self.store.latencies(result_id)

    def noise_floors(self, *, host: str | None = None) -> list[NoiseFloor]:
        """Return the newest noise floor of every (model, hardware class), fleet-wide unless ``host``."""
        return self.store.noise_floors(host=host)

    def run_counts(self, host: str | None = None) -> dict[tuple[str, str, str], int]:
        """Return this host's finished-run counts by (model, scenario, outcome)."""
        return self.store.run_counts(host=host or self.host)

    def latest_verdicts(
        self, model: str | None = None, *, host: str | None = None, per_version: bool = False
    ) -> list[Verdict]:
        """Return the latest verdicts this host decided."""
        return self.store.latest_verdicts(model, host=host or self.host, per_version=per_version)
