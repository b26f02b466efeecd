"""The history store's interface and the records it hands out.

:class:`HistoryStore` is the contract the scheduler, HTTP API, exporter and CLI program against; the SQLite
implementation lives in :mod:`benchd.history.sqlite`, the PostgreSQL one (shared by a fleet of hosts) in
:mod:`benchd.history.postgres`. Records are frozen dataclasses; ``*_unix_s`` fields are wall-clock seconds
since the epoch.

Fleet queues: a run enqueued with a ``hardware_class`` is deduplicated per (model, version, spec, hardware
class) instead of per device, and is claimed by any slot of that class. A claim made with an ``owner``
holds a lease of ``lease_s`` seconds that :meth:`HistoryStore.heartbeat` extends; once it expires (the
host died) the next claim of that class takes the run over, and the old owner can no longer finish it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from benchd.errors import StoreError
from benchd.records import (
    TERMINAL_RUN_STATES,
    ModelVersion,
    NoiseFloor,
    RunResult,
    RunSpec,
    ScenarioResult,
    Verdict,
    from_dict,
    to_dict,
)

T = TypeVar("T")


class HistoryStoreError(StoreError):
    """A history store operation failed; ``path`` names the database file (or the URL, password removed)."""

    def __init__(self, path: str, message: str) -> None:
        self.path = path
        super().__init__(f"history store {path}: {message}")


class LeaseLostError(HistoryStoreError):
    """A run's lease expired and another owner took the run over; the old owner must drop its result."""


def spec_key(spec: RunSpec) -> str:
    """Return the hash of what a run measures (scenario settings, batch sizes, numerics), for dedupe.

    The model path and timeout are left out: they do not change the measurement.
    """
    doc = {
        "scenarios": [to_dict(s) for s in spec.scenarios],
        "batch_sizes": list(spec.batch_sizes),
        "dtype": spec.dtype,
        "amp": spec.amp,
        "compile": spec.compile,
        "threads": spec.threads,
        "seed": spec.seed,
    }
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class RunRecord:
    """One queued, running or finished run as the store knows it.

    ``state`` is one of :data:`RUN_STATES`; ``attempts`` counts claims (a crash mid-run re-queues it);
    ``result`` is set once the run finished with a :class:`RunResult`. ``hardware_class`` is set for fleet
    runs (the class they are queued for); ``host`` names the host of the last claim (the one that ran it);
    ``lease_owner``/``lease_expires_unix_s`` describe the lease of a claim made with an owner.
    """

    id: int
    model: str
    version: str
    device: str
    state: str
    priority: int
    reason: str
    spec: RunSpec
    attempts: int
    enqueued_unix_s: float
    started_unix_s: float | None = None
    ended_unix_s: float | None = None
    error_kind: str | None = None
    error: str | None = None
    result: RunResult | None = None
    hardware_class: str | None = None
    host: str | None = None
    lease_owner: str | None = None
    lease_expires_unix_s: float | None = None

    @property
    def finished(self) -> bool:
        """True when the run reached a terminal state."""
        return self.state in TERMINAL_RUN_STATES

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-able dict for the HTTP API (spec and result as nested dicts)."""
        return {
            "id": self.id,
            "model": self.model,
            "version": self.version,
            "device": self.device,
            "state": self.state,
            "priority": self.priority,
            "reason": self.reason,
            "attempts": self.attempts,
            "enqueued_unix_s": self.enqueued_unix_s,
            "started_unix_s": self.started_unix_s,
            "ended_unix_s": self.ended_unix_s,
            "error_kind": self.error_kind,
            "error": self.error,
            "spec": to_dict(self.spec),
            "result": to_dict(self.result) if self.result is not None else None,
            "hardware_class": self.hardware_class,
            "host": self.host,
            "lease_owner": self.lease_owner,
            "lease_expires_unix_s": self.lease_expires_unix_s,
        }


@dataclass(frozen=True)
class ResultRow:
    """One stored :class:`ScenarioResult` with the ids and labels it is filed under."""

    id: int
    run_id: int
    model: str
    version: str
    device: str
    hardware_class: str | None
    ended_unix_s: float
    result: ScenarioResult


@dataclass(frozen=True)
class VerdictRow:
    """One stored :class:`Verdict` with its id and the analysis inputs it was decided from."""

    id: int
    verdict: Verdict
    inputs: dict[str, Any]


@runtime_checkable
class CursorStore(Protocol):
    """Where registry watchers keep their cursors (the history store is one)."""

    def get_cursor(self, registry: str, key: str) -> str | None:
        """Return the cursor value stored under (registry, key), or None."""

    def set_cursor(self, registry: str, key: str, value: str) -> None:
        """Store (durably) the cursor value under (registry, key)."""


@runtime_checkable
class HistoryStore(CursorStore, Protocol):
    """Everything benchd records: versions seen, the run queue, results, raw latencies, verdicts.

    Implementations are thread-safe and commit every state change before returning, so a killed daemon
    loses nothing it was told about. ``shared`` is True for a store several hosts use at once (PostgreSQL):
    the daemon then queues and claims per hardware class, with leases of ``lease_s`` seconds.
    """

    path: str
    shared: bool
    lease_s: float
    host: str | None

    def close(self) -> None:
        """Close every connection."""

    def record_version(self, mv: ModelVersion) -> bool:
        """Remember a version; True when it was not known before."""

    def get_version(self, model: str, version: str) -> ModelVersion | None:
        """Return a known version or None."""

    def list_versions(self, model: str | None = None) -> list[ModelVersion]:
        """Return known versions, oldest first."""

    def list_models(self) -> list[str]:
        """Return the names of all models with versions or runs, sorted."""

    def enqueue_run(
        self,
        spec: RunSpec,
        *,
        priority: int = 0,
        reason: str = "",
        force: bool = False,
        hardware_class: str | None = None,
    ) -> int | None:
        """Queue a run (per hardware class when given, else per device); None when deduplicated."""

    def claim_next_run(
        self,
        device: str,
        *,
        hardware_class: str | None = None,
        owner: str | None = None,
        max_attempts: int = 2,
    ) -> RunRecord | None:
        """Atomically take the next run for a device (or hardware class) and mark it running.

        With an ``owner`` the claim holds a lease, and runs of expired leases are taken over.
        """

    def heartbeat(self, run_id: int, owner: str) -> bool:
        """Extend the lease ``owner`` holds on a running run; False when the lease was lost."""

    def finish_run(
        self,
        run_id: int,
        result: RunResult,
        latencies: Mapping[int, np.ndarray] | None = None,
        *,
        owner: str | None = None,
    ) -> None:
        """Record a finished run, its scenario results and raw latencies."""

    def fail_run(
        self, run_id: int, kind: str, message: str, state: str = "failed", *, owner: str | None = None
    ) -> None:
        """Record a run that ended without a result."""

    def promote_queued_run(self, run_id: int, priority: int, baseline: str | None = None) -> bool:
        """Raise a still-queued run's priority and set its baseline; False when it is not queued."""

    def requeue_run(self, run_id: int, *, owner: str | None = None) -> None:
        """Put a running run back in the queue (its host is stopping)."""

    def recover_interrupted(self, max_attempts: int = 2) -> list[RunRecord]:
        """Re-queue (or fail) runs a crash left running."""

    def get_run(self, run_id: int) -> RunRecord | None:
        """Return a run or None."""

    def list_runs(
        self, model: str | None = None, state: str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Return runs, newest first."""

    def queue_depth(self, device: str | None = None, hardware_class: str | None = None) -> int:
        """Return the number of queued runs."""

    def run_counts(self, host: str | None = None) -> dict[tuple[str, str, str], int]:
        """Return finished-run counts by (model, scenario, outcome), of one host's runs when given."""

    def run_state_counts(self) -> dict[str, int]:
        """Return the number of runs in each state (all states, 0 when none)."""

    def fail_stuck_runs(self, grace_s: float, host: str | None = None) -> list[RunRecord]:
        """Fail runs still running ``grace_s`` past their timeout (of ``host`` when given)."""

    def results_for_run(self, run_id: int) -> list[ScenarioResult]:
        """Return a run's scenario results in their original order."""

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
        """Return stored results, newest first."""

    def latencies(self, result_id: int) -> np.ndarray:
        """Return a result's raw latencies (int64 ns)."""

    def result_versions(self, *, host: str | None = None) -> dict[tuple[str, str], float]:
        """Every (model, version) with results, and when its newest result ended (unix s)."""

    def energy_totals(self, *, host: str | None = None) -> dict[str, float]:
        """Joules of every measured window, per device."""

    def p99_history(
        self, runs: int, *, host: str | None = None
    ) -> dict[tuple[str, str, str, int], list[tuple[int, str, float]]]:
        """The newest ``runs`` valid, unthrottled (id, version, p99 s) per (model, scenario, device, bs)."""

    def latest_versions(self, model: str, k: int) -> list[str]:
        """Return the newest k versions of a model that have results, newest first."""

    def save_verdict(
        self,
        verdict: Verdict,
        inputs: Mapping[str, Any],
        *,
        hardware_class: str | None = None,
        host: str | None = None,
    ) -> int:
        """Store a verdict with its inputs (filed under a hardware class and host); returns its id."""

    def verdict_rows(
        self,
        model: str,
        candidate_version: str | None = None,
        scenario: str | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        limit: int = 50,
    ) -> list[VerdictRow]:
        """Return stored verdicts with their ids and inputs, newest first."""

    def latest_verdicts(
        self, model: str | None = None, *, host: str | None = None, per_version: bool = False
    ) -> list[Verdict]:
        """Return the latest verdict per (model, scenario, batch size, device, hardware class).

        ``per_version``: the latest per candidate version of each of those series.
        """

    def verdict_for(
        self,
        model: str,
        candidate_version: str,
        scenario: str | None = None,
        batch_size: int | None = None,
        device: str | None = None,
    ) -> Verdict | None:
        """Return the latest verdict for a candidate version, or None."""

    def save_noise_floor(self, floor: NoiseFloor) -> int:
        """Store a noise floor measured by A/A batches; return its id."""

    def noise_floor(self, model: str, hardware_class: str) -> NoiseFloor | None:
        """The newest noise floor of ``model`` on ``hardware_class``, or None."""

    def noise_floors(self, *, host: str | None = None) -> list[NoiseFloor]:
        """The newest noise floor of every (model, hardware class)."""


def decode_json(cls: type[T], text: str) -> T:
    """Return record ``cls`` from its stored JSON (about 15 us for a RunResult: no cache needed)."""
    return from_dict(cls, json.loads(text))


def scenario_names(specs: Sequence[Any]) -> str:
    """Return the comma-joined scenario names of a spec's scenarios (stored for run counts)."""
    return ",".join(s.name for s in specs)
