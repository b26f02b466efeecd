"""Parent side of a run: start the worker process, watch it, measure energy, collect its result.

This module never imports torch. Each worker runs under its own supervisor process
(:mod:`benchd.runner.supervise`, a child subreaper in a session of its own) with an allow-listed
environment, a memory limit and a timeout (:mod:`benchd.runner.sandbox`); whatever the worker does (raise,
segfault, hang, run out of memory, fork children that ignore SIGTERM or leave its session) ends as a
:class:`WorkerEnd` with a typed error, nothing it started outlives it, and the caller carries on. While it
runs, a sampler thread here (in the parent, not competing with the timing loop) reads device energy and
telemetry; each scenario's measured window, reported by the worker in CLOCK_MONOTONIC seconds, is then
matched against it.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchd.records import RunResult, RunSpec, ScenarioResult, from_dict, to_dict
from benchd.runner.process import WorkerProcess, kill_group, start_worker
from benchd.runner.sandbox import WorkerLimits, format_bytes
from benchd.runner.streams import EventHandler, read_events, stderr_tail

logger = logging.getLogger(__name__)

__all__ = [
    "EventHandler",
    "WorkerEnd",
    "WorkerLimits",
    "WorkerProcess",
    "begin_worker",
    "discard_worker",
    "finish_worker",
    "kill_group",
    "read_events",
    "run_spec",
    "run_worker",
    "signal_name",
    "start_worker",
    "stderr_tail",
]

#: Words a worker's last output holds when the host (not the GPU) ran out of memory.
_HOST_OOM_WORDS = ("MemoryError", "can't allocate memory", "std::bad_alloc", "Cannot allocate memory")


def signal_name(number: int) -> str:
    """The name of signal ``number`` (``SIGSEGV``), or ``signal N``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


@dataclass(frozen=True)
class WorkerEnd:
    """How a worker process ended.

    Attributes:
        payload: the worker's ``result.json`` (results, or ``{"error": ...}``), None when it left none.
        outcome: ``ok`` (a result was read, which may still hold an error), ``failed`` or ``timeout``.
        error_kind: a :class:`~benchd.errors.RunError` kind when the worker failed, else None.
        error: a sentence saying why, else None.
    """

    payload: dict[str, Any] | None
    outcome: str = "ok"
    error_kind: str | None = None
    error: str | None = None

    @property
    def failed(self) -> bool:
        """True when the worker left no usable result, or its result is an error."""
        return self.error_kind is not None


def run_worker(
    module: str,
    args: list[str],
    out_dir: Path,
    *,
    timeout_s: float,
    what: str,
    cancel: threading.Event | None = None,
    on_event: EventHandler | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    limits: WorkerLimits | None = None,
) -> WorkerEnd:
    """Run ``python -m module args`` as a worker until it ends, and say how it ended.

    The one launcher of both workers (a run and a comparison batch): a supervisor and process group of
    their own, an allow-listed environment plus ``env``, ``limits`` (memory, kill grace, log cap, event
    size; default :class:`WorkerLimits`), a timeout, ``cancel``, the result file, and the same error kinds
    (``worker_crashed``, ``timeout``, ``interrupted``, ``out_of_memory``, or the worker's own). ``what``
    names the job in messages ("the run", "the comparison"). Never raises for a failed worker.
    :func:`begin_worker` and :func:`finish_worker` are its two halves, for a caller that starts the next
    worker before the current one has ended.
    """
    worker = begin_worker(
        module, args, out_dir, what=what, on_event=on_event, python=python, env=env, limits=limits
    )
    return finish_worker(worker, timeout_s=timeout_s, what=what, cancel=cancel)


def begin_worker(
    module: str,
    args: list[str],
    out_dir: Path,
    *,
    what: str,
    on_event: EventHandler | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
    limits: WorkerLimits | None = None,
) -> WorkerProcess | WorkerEnd:
    """Start a worker as :func:`run_worker` does; a :class:`WorkerEnd` when it could not be started."""
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "result.json").unlink(missing_ok=True)
    try:
        return WorkerProcess(module, args, out_dir, on_event=on_event, python=python, env=env, limits=limits)
    except OSError as e:
        return WorkerEnd(None, "failed", "worker_crashed", f"cannot start the worker process for {what}: {e}")


def finish_worker(
    worker: WorkerProcess | WorkerEnd,
    *,
    timeout_s: float,
    what: str,
    cancel: threading.Event | None = None,
) -> WorkerEnd:
    """Wait for a worker from :func:`begin_worker` (its events delivered on this thread); say how it ended."""
    if isinstance(worker, WorkerEnd):
        return worker
    try:
        code = worker.wait(timeout_s, cancel)
    finally:
        worker.cleanup()
    end = _worker_end(code, worker.out_dir, worker, what, timeout_s, cancel)
    return _name_memory_limit(end, worker.limits, worker, what)


def discard_worker(worker: WorkerProcess | WorkerEnd) -> None:
    """End a worker that is no longer wanted (its whole tree) and remove its scratch folders."""
    if isinstance(worker, WorkerProcess):
        try:
            kill_group(worker.proc, worker.limits.grace_s, worker.out_dir)
        finally:
            worker.cleanup()


def _worker_end(
    code: int | None,
    out_dir: Path,
    worker: WorkerProcess,
    what: str,
    timeout_s: float,
    cancel: threading.Event | None,
) -> WorkerEnd:
    if code is None:
        if cancel is not None and cancel.is_set():
            return WorkerEnd(
                None, "failed", "interrupted", f"{what} was interrupted (benchd is shutting down)"
            )
        return WorkerEnd(
            None,
            "timeout",
            "timeout",
            f"{what} did not finish within its timeout of {timeout_s:g} s and was killed",
        )
    result_path = out_dir / "result.json"
    if not result_path.is_file():
        tail = stderr_tail(worker.stderr_path)
        why = (
            f"crashed with {signal_name(-code)}"
            if code < 0
            else f"exited with status {code} without a result"
        )
        message = f"the worker of {what} {why}" + (f"; its last output:\n{tail}" if tail else "")
        return WorkerEnd(None, "failed", "worker_crashed", message)
    try:
        payload = json.loads(result_path.read_text())
    except (OSError, ValueError) as e:
        return WorkerEnd(
            None, "failed", "worker_crashed", f"the worker of {what} left an unreadable result: {e}"
        )
    error = payload.get("error") if isinstance(payload, dict) else None
    if error:
        return WorkerEnd(payload, "failed", str(error.get("kind", "internal")), str(error.get("message", "")))
    return WorkerEnd(payload)


def _name_memory_limit(end: WorkerEnd, limits: WorkerLimits, worker: WorkerProcess, what: str) -> WorkerEnd:
    """Report a worker that hit its host memory limit as ``out_of_memory``, naming the limit."""
    if not end.failed or limits.memory_limit_bytes is None or end.error_kind in ("timeout", "interrupted"):
        return end
    text = end.error or ""
    if end.error_kind == "worker_crashed" and "last output" not in text:
        text += "\n" + stderr_tail(worker.stderr_path)
    if not any(word in text for word in _HOST_OOM_WORDS):
        return end
    limit = format_bytes(limits.memory_limit_bytes)
    sentence = (
        f"the worker of {what} ran out of memory: it may use at most {limit} of host memory "
        f"(its memory limit, RLIMIT_DATA)"
    )
    return replace(end, outcome="failed", error_kind="out_of_memory", error=f"{sentence}; {end.error}")


def run_spec(
    spec: RunSpec,
    out_dir: str | Path,
    *,
    meter: Any = None,
    on_event: EventHandler | None = None,
    cancel: threading.Event | None = None,
    host_fingerprint: dict[str, Any] | None = None,
    meter_device: str | None = None,
    python: str = sys.executable,
    limits: WorkerLimits | None = None,
    env: Mapping[str, str] | None = None,
) -> RunResult:
    """Run ``spec`` in a worker process and return its :class:`RunResult`; never raises for run failures.

    Args:
        spec: what to benchmark.
        out_dir: where the worker writes ``result.json``, raw latencies and ``worker.log``.
        meter: a started device sampler (``devices.meter.WindowSampler``) or None; when given, each
            scenario result gets ``energy`` and ``telemetry`` for its measured window.
        on_event: called with each progress event the worker reports.
        cancel: when set, the worker is killed and the run recorded as ``interrupted``.
        host_fingerprint: the parent's view of the hardware (devices.fingerprint), merged into the result.
        meter_device: the device the meter reads for energy (``cuda:N`` of the scheduler slot, or a fake
            device); default: the device the worker reports.
        python: the interpreter that runs the worker.
        limits: the worker's memory limit, kill grace, log cap and event size (default
            :class:`WorkerLimits`).
        env: variables added to the worker's allow-listed environment (``PYTHONPATH`` for pickled
            model classes).
    """
    out_dir = Path(out_dir)
    started = time.time()
    fingerprint = dict(host_fingerprint or {})

    def failed(outcome: str, kind: str, message: str) -> RunResult:
        logger.warning(
            "run of %s/%s failed (%s): %s", spec.model, spec.version, kind, message.splitlines()[0]
        )
        return RunResult(
            model=spec.model,
            version=spec.version,
            device=spec.device,
            outcome=outcome,
            error_kind=kind,
            error=message,
            started_unix_s=started,
            ended_unix_s=time.time(),
            fingerprint=fingerprint,
            output_dir=str(out_dir),
        )

    out_dir.mkdir(parents=True, exist_ok=True)
    spec_path = out_dir / "spec.json"
    spec_path.write_text(json.dumps(to_dict(spec), indent=1))
    end = run_worker(
        "benchd.runner",
        [str(spec_path), str(out_dir)],
        out_dir,
        timeout_s=spec.timeout_s,
        what="the run",
        cancel=cancel,
        on_event=on_event,
        python=python,
        env=env,
        limits=limits,
    )
    payload = end.payload or {}
    fingerprint.update({k: v for k, v in payload.get("worker", {}).items() if v is not None})
    if end.failed:
        return failed(end.outcome, end.error_kind or "internal", end.error or "")
    results = tuple(
        _measure_window(from_dict(ScenarioResult, r), meter, meter_device) for r in payload["results"]
    )
    device = results[0].device if results else spec.device
    skipped = tuple((int(b), str(s), str(r)) for b, s, r in payload.get("skipped", ()))
    outcome = "ok" if all(r.valid for r in results) and not skipped else "invalid"
    return RunResult(
        model=spec.model,
        version=spec.version,
        device=device,
        outcome=outcome,
        results=results,
        started_unix_s=started,
        ended_unix_s=time.time(),
        fingerprint=fingerprint,
        output_dir=str(out_dir),
        skipped=skipped,
    )


def _measure_window(result: ScenarioResult, meter: Any, meter_device: str | None) -> ScenarioResult:
    if meter is None:
        return result
    start, end = result.window_start_mono_s, result.window_end_mono_s
    device = meter_device or result.device
    try:
        energy = meter.energy_for_window(device, start, end, result.samples)
        telemetry = meter.telemetry_for_window(device, start, end)
    except Exception:  # energy is a bonus: never lose a result because a sensor failed
        logger.exception("energy/telemetry for %s bs=%d failed", result.scenario, result.batch_size)
        return result
    return replace(result, energy=energy, telemetry=telemetry)
