"""Parent side of a run: start the worker process, watch it, measure energy, collect its result.

This module never imports torch. The worker runs as ``python -m benchd.runner`` in its own session
(process group) with a timeout; whatever it does (raise, segfault, hang, run out of memory) ends as a
:class:`RunResult` with a typed error, and the caller carries on. While it runs, a sampler thread here
(in the parent, not competing with the timing loop) reads device energy and telemetry; each scenario's
measured window, reported by the worker in CLOCK_MONOTONIC seconds, is then matched against it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchd.records import RunResult, RunSpec, ScenarioResult, from_dict, to_dict

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
_KILL_GRACE_S = 3.0
_STDERR_TAIL_BYTES = 4000


def signal_name(number: int) -> str:
    """The name of signal ``number`` (``SIGSEGV``), or ``signal N``."""
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def stderr_tail(path: Path) -> str:
    """The last few kB a worker wrote to its log (shown when it died without a result)."""
    try:
        data = path.read_bytes()[-_STDERR_TAIL_BYTES:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the worker's process group, then SIGKILL what is left after a short grace."""
    for sig, wait_s in ((signal.SIGTERM, _KILL_GRACE_S), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


def _die_with_parent() -> None:
    """In the child before exec: get SIGKILL when the parent dies, so a kill -9 leaves no orphan worker."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux/glibc: the daemon reaps stale workers on restart
        pass


def read_events(stream: Any, on_event: EventHandler | None) -> None:
    """Hand each JSON line the worker writes to ``on_event`` until it closes stdout."""
    for line in iter(stream.readline, b""):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if on_event is not None:
            try:
                on_event(event)
            except Exception:  # a broken progress display must not break the run
                logger.exception("progress handler failed")


def start_worker(
    module: str,
    args: list[str],
    out_dir: Path,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m module args`` as a worker: its own session, stdout piped, stderr to worker.log.

    The worker gets SIGKILL if the daemon dies, and its pid is written to ``out_dir/worker.pid`` so a
    restarted daemon can reap one that outlived it anyway.
    """
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with (out_dir / "worker.log").open("wb") as err:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
            [python, "-m", module, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            env=full_env,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # only a prctl call before exec: safe with threads
        )
    (out_dir / "worker.pid").write_text(str(proc.pid))
    return proc


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


class WorkerProcess:
    """One running worker; :meth:`wait` delivers its events on the waiting thread and returns its status.

    The reader thread only moves JSON lines from the worker's stdout into a queue; ``on_event`` runs on
    the thread that calls :meth:`wait`, so callers never need locks for their bookkeeping.
    """

    def __init__(
        self,
        module: str,
        args: list[str],
        out_dir: Path,
        *,
        on_event: EventHandler | None = None,
        python: str = sys.executable,
        env: Mapping[str, str] | None = None,
    ) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.on_event = on_event
        self.stderr_path = out_dir / "worker.log"
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.proc = start_worker(module, args, out_dir, python, dict(env or {}))
        self.reader = threading.Thread(
            target=read_events,
            args=(self.proc.stdout, self.events.put),
            name="benchd-worker-events",
            daemon=True,
        )
        self.reader.start()

    def _deliver(self, timeout_s: float) -> bool:
        try:
            event = self.events.get(timeout=timeout_s)
        except queue.Empty:
            return False
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:  # a broken progress display or bookkeeping bug must not break the run
                logger.exception("worker event handler failed")
        return True

    def _drain(self) -> None:
        self.reader.join(timeout=5.0)
        while self._deliver(0.0):
            pass

    def wait(self, timeout_s: float, cancel: threading.Event | None) -> int | None:
        """Wait for the worker; kill its group at ``timeout_s`` or when ``cancel`` is set (then None)."""
        deadline = time.monotonic() + timeout_s
        while True:
            if self._deliver(0.1):
                continue
            code = self.proc.poll()
            if code is not None:
                self._drain()
                return code
            if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
                kill_group(self.proc)
                self._drain()
                return None


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
) -> WorkerEnd:
    """Run ``python -m module args`` as a worker until it ends, and say how it ended.

    The one launcher of both workers (a run and a comparison batch): its own process group, a timeout,
    ``cancel``, the result file, and the same error kinds (``worker_crashed``, ``timeout``,
    ``interrupted``, or the worker's own). ``what`` names the job in messages ("the run",
    "the comparison"). Never raises for a failed worker.
    """
    (out_dir / "result.json").unlink(missing_ok=True)
    try:
        worker = WorkerProcess(module, args, out_dir, on_event=on_event, python=python, env=env)
    except OSError as e:
        return WorkerEnd(None, "failed", "worker_crashed", f"cannot start the worker process for {what}: {e}")
    code = worker.wait(timeout_s, cancel)
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
