"""Device slots: one worker thread per benchmark device, running queued runs one at a time.

A slot claims the next run for its device from the store (highest priority first), makes the artifact
local (MLflow downloads), runs it in a sandboxed worker process (:class:`~benchd.runner.launch.WorkerLimits`),
records the result, then hands the finished run to ``after_run`` (verdicts, exporter refresh). Every
failure is recorded on the run and the slot carries on; a store that fails while a run's end is written
is retried, and a result it never takes ends the run ``failed`` (:mod:`benchd.service.recording`).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd.errors import RegistryError
from benchd.history import HistoryStore, LeaseKeeper, LeaseLostError, RunRecord, lease_owner
from benchd.records import RunResult
from benchd.registry.base import RegistryWatcher
from benchd.runner.launch import WorkerLimits, run_spec
from benchd.service.recording import RetryPolicy, record_run_end

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Slot:
    """A place runs execute.

    ``name`` is the queue's device key and the meter's device (``cuda:0``, ``cpu``); ``torch_device`` is what
    the worker runs on (``cpu`` for fake GPUs, so the whole daemon runs without a GPU).
    """

    name: str
    torch_device: str


class SlotWorker:
    """Runs queued runs for one slot until stopped."""

    def __init__(
        self,
        slot: Slot,
        store: HistoryStore,
        watchers: dict[str, RegistryWatcher],
        runs_dir: Path,
        *,
        meter: Any,
        fingerprint: Callable[[str], dict[str, Any]],
        after_run: Callable[[RunRecord, RunResult, threading.Event], None],
        wakeup: threading.Condition,
        limits: WorkerLimits | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.slot = slot
        self.store = store
        self.watchers = watchers
        self.runs_dir = runs_dir
        self.meter = meter
        self.fingerprint = fingerprint
        self.after_run = after_run
        self.wakeup = wakeup
        self.limits = limits or WorkerLimits()
        self.retry = retry or RetryPolicy()
        self.stopping = threading.Event()  # no new runs
        self.cancel = threading.Event()  # kill the current run
        self.current: int | None = None
        # a shared (fleet) store: claim runs of this slot's hardware class under a renewed lease
        self.hardware_class: str | None = None
        self.owner: str | None = None
        self._thread = threading.Thread(target=self._loop, name=f"benchd-slot-{slot.name}", daemon=True)

    def start(self) -> None:
        """Start the slot's thread."""
        self._thread.start()

    def stop(self, grace_s: float) -> None:
        """Take no new runs; give the current one ``grace_s``, then kill it (recorded as interrupted)."""
        self.stopping.set()
        with self.wakeup:
            self.wakeup.notify_all()
        self._thread.join(timeout=grace_s)
        if self._thread.is_alive():
            logger.warning(
                "slot %s: run %s still going after %.0f s grace; interrupting it",
                self.slot.name,
                self.current,
                grace_s,
            )
            self.cancel.set()
            self._thread.join(timeout=30.0)

    def _loop(self) -> None:
        if getattr(self.store, "shared", False):
            self.hardware_class = str(self.fingerprint(self.slot.name).get("hardware_class") or "") or None
            self.owner = lease_owner(self.store.host, self.slot.name)
        while not self.stopping.is_set():
            try:
                record = self.store.claim_next_run(
                    self.slot.name, hardware_class=self.hardware_class, owner=self.owner
                )
            except Exception:
                logger.exception("slot %s: cannot claim a run", self.slot.name)
                record = None
            if record is None:
                with self.wakeup:
                    self.wakeup.wait(timeout=2.0)
                continue
            self.current = record.id
            try:
                if self.owner is None:
                    self.execute(record)
                else:
                    with LeaseKeeper(self.store, record.id, self.owner, self.store.lease_s / 3):
                        self.execute(record)
            except LeaseLostError as e:  # another host took the run over: its result is the one kept
                logger.error("slot %s: run %d dropped: %s", self.slot.name, record.id, e)
            except Exception as e:  # never let one run stop the slot
                logger.exception("slot %s: run %d crashed the slot's code", self.slot.name, record.id)
                self._record(record.id, "internal", f"{type(e).__name__}: {e}")
            finally:
                self.current = None

    def execute(self, record: RunRecord) -> None:
        """Run one claimed run to its recorded end."""
        spec = record.spec
        logger.info(
            "run %d started: benchmarking %s/%s on %s (%s, attempt %d)",
            record.id,
            spec.model,
            spec.version,
            self.slot.name,
            record.reason or "queued",
            record.attempts,
            extra={"event": "run_started", "run_id": record.id, "model": spec.model, "version": spec.version,
                   "device": self.slot.name, "attempt": record.attempts},
        )  # fmt: skip
        mv = self.store.get_version(spec.model, spec.version)
        watcher = self.watchers.get(mv.registry) if mv else None
        if mv is not None and watcher is not None:
            try:
                mv = watcher.fetch(mv)
            except RegistryError as e:
                self._record(record.id, "artifact_not_found", f"cannot fetch the artifact: {e}")
                return
            spec = dataclasses.replace(spec, model_path=mv.path)
        spec = dataclasses.replace(spec, device=self.slot.torch_device)
        result = run_spec(
            spec,
            self.runs_dir / str(record.id),
            meter=self.meter,
            cancel=self.cancel,
            host_fingerprint=self.fingerprint(self.slot.name),
            meter_device=self.slot.name,
            limits=self.limits,
        )
        if self.slot.torch_device != self.slot.name:
            result = relabel(result, self.slot.name)
        if result.error_kind == "interrupted" and self.owner is not None:
            self.store.requeue_run(record.id, owner=self.owner)  # a fleet host of the class takes it
            return
        if result.error_kind == "interrupted":
            recorded = self._record(record.id, "interrupted", result.error or "interrupted", "interrupted")
        else:
            recorded = record_run_end(
                self.store,
                record.id,
                lambda: self.store.finish_run(record.id, result, owner=self.owner),
                owner=self.owner,
                abort=self.cancel,
                policy=self.retry,
            )
        log_run_end(record.id, result)
        if recorded != "recorded":
            logger.warning(
                "slot %s: the end of run %d was not recorded (%s)", self.slot.name, record.id, recorded
            )
        if recorded == "recorded" and not self.cancel.is_set():
            self.after_run(record, result, self.cancel)

    def _record(self, run_id: int, kind: str, message: str, state: str = "failed") -> str:
        """Record a run that ended without a result, retrying while the store fails."""
        return record_run_end(
            self.store,
            run_id,
            lambda: self.store.fail_run(run_id, kind, message, state=state, owner=self.owner),
            owner=self.owner,
            abort=self.cancel,
            policy=self.retry,
        )


def log_run_end(run_id: int, result: RunResult) -> None:
    """One INFO line when a run ends: its outcome and each scenario's p50, p99 and throughput."""
    figures = [
        {"scenario": r.scenario, "batch_size": r.batch_size, "p50_s": r.latency.p50_s,
         "p99_s": r.latency.p99_s, "throughput_qps": r.throughput_qps, "valid": r.valid}
        for r in result.results
    ]  # fmt: skip
    text = "; ".join(
        f"{r.scenario} bs={r.batch_size} p50 {r.latency.p50_s * 1e3:.3f} ms, "
        f"p99 {r.latency.p99_s * 1e3:.3f} ms, {r.throughput_qps:,.0f} queries/s"
        f"{'' if r.valid else ' (INVALID)'}"
        for r in result.results
    )
    error = f"{result.error_kind}: {result.error.splitlines()[0]}" if result.error else ""
    logger.info(
        "run %d of %s/%s ended %s in %.1f s%s",
        run_id,
        result.model,
        result.version,
        result.outcome,
        result.duration_s,
        f": {text}" if text else f" ({error})" if error else "",
        extra={"event": "run_ended", "run_id": run_id, "model": result.model, "version": result.version,
               "device": result.device, "outcome": result.outcome, "duration_s": round(result.duration_s, 3),
               "error_kind": result.error_kind, "results": figures},
    )  # fmt: skip


def relabel(result: RunResult, device: str) -> RunResult:
    """Label a run with its slot's device (a fake GPU's ``cuda:N`` while torch ran on the CPU)."""
    results = tuple(dataclasses.replace(r, device=device) for r in result.results)
    return dataclasses.replace(result, device=device, results=results)
