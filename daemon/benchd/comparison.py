"""Candidate versus baseline in one batch of interleaved trials (parent side; never imports torch).

:func:`compare` starts ``python -m benchd.runner.pairs`` (its own process group, killed on timeout or
cancel), which runs short trials of both versions alternately on one device (AB, BA, AB, ...). Each trial
the worker reports becomes an :class:`~benchd.analysis.Trial` (energy from the parent's sampler for the
trial's window when there is one). Once ``min_pairs`` pairs are complete the batch is decided after every
pair (:func:`~benchd.analysis.decide`, ``final=False``); when :func:`~benchd.analysis.should_continue`
says stop (every metric decided, ``max_pairs`` done or the time cap reached) the parent writes the
worker's stop file, and the verdict is decided once more with ``final=True``, so an undecided metric ends
``inconclusive``, never a silent pass.

How the daemon uses it, after the candidate's own run succeeded::

    plan = ComparisonPlan.from_config(
        config.benchmark, config.verdict, model=mv.model,
        candidate_version=mv.version, candidate_path=mv.path,            # fetched folders
        baseline_version=base.version, baseline_path=base.path,
        scenario=settings, batch_size=bs, device=devices.resolve(config.benchmark.device),
        allow_pickle=registry_cfg.allow_pickle or config.benchmark.allow_pickle,
    )
    outcome = compare(plan, out_dir, meter=devices.sampler, cancel=stop_event,
                      host_fingerprint=devices.fingerprint(plan.device))
    if outcome.verdict is not None:
        store.save_verdict(outcome.verdict, outcome.inputs)
    else:
        logger.warning("comparison failed (%s): %s", outcome.error_kind, outcome.error)
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchd.analysis import (
    DEFAULT_N_BOOT,
    METRICS,
    InsufficientDataError,
    Thresholds,
)
from benchd.comparison_batch import Batch
from benchd.config import BenchConfig, VerdictConfig
from benchd.records import ScenarioSettings, Verdict, to_dict
from benchd.runner.launch import kill_group, read_events, signal_name, start_worker, stderr_tail

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], None]
#: The file the parent writes into the worker's output folder to end the batch.
STOP_FILE = "stop"

__all__ = ["STOP_FILE", "ComparisonOutcome", "ComparisonPlan", "compare"]


@dataclass(frozen=True)
class ComparisonPlan:
    """What one comparison batch runs (a JSON file on the way to the worker).

    Attributes:
        model: the model name.
        candidate_version: the new version; ``candidate_path`` its local folder (artifact + benchd.yaml).
        baseline_version: the version compared against; ``baseline_path`` its local folder.
        scenario: the scenario both sides run in every trial (its warm-up settings warm both up once).
        batch_size: the batch size (multi-stream uses the scenario's ``samples_per_query``).
        device: ``cpu``, ``cuda:N`` (resolve ``auto`` first, so energy is read from the right device).
        trial_s: measured seconds of each trial.
        min_pairs: pairs run before the verdict may stop the batch.
        max_pairs: the most pairs run.
        time_cap_s: benchmarking seconds (from the first trial) after which no new pair starts.
        threshold: threshold t of every metric without its own entry in ``thresholds`` (0.10 = 10%).
        min_effect: smallest reportable change m of every metric; None means t / 2.
        thresholds: per-metric thresholds (``p99_latency``, ``p50_latency``, ``throughput``,
            ``energy_per_sample``).
        seed: seeds the inputs (the same for both sides) and the bootstrap.
        timeout_s: the worker is killed after this many seconds (loading included).
        n_boot: bootstrap replicates per decision.
    """

    model: str
    candidate_version: str
    candidate_path: str
    baseline_version: str
    baseline_path: str
    scenario: ScenarioSettings = ScenarioSettings()
    batch_size: int = 1
    device: str = "cpu"
    dtype: str = "float32"
    amp: bool = False
    compile: bool = False
    threads: int | None = None
    allow_pickle: bool = False
    trial_s: float = 2.0
    min_pairs: int = 6
    max_pairs: int = 20
    time_cap_s: float = 300.0
    threshold: float = 0.10
    min_effect: float | None = None
    thresholds: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    timeout_s: float = 900.0
    n_boot: int = DEFAULT_N_BOOT

    def __post_init__(self) -> None:
        if self.min_pairs < 2 or self.max_pairs < self.min_pairs:
            raise ValueError(f"need 2 <= min_pairs <= max_pairs, got {self.min_pairs} and {self.max_pairs}")
        if self.trial_s <= 0 or self.time_cap_s <= 0 or self.timeout_s <= 0:
            raise ValueError("trial_s, time_cap_s and timeout_s must be positive")

    @classmethod
    def from_config(
        cls,
        bench: BenchConfig,
        verdict: VerdictConfig,
        *,
        model: str,
        candidate_version: str,
        candidate_path: str,
        baseline_version: str,
        baseline_path: str,
        scenario: ScenarioSettings | None = None,
        batch_size: int | None = None,
        device: str | None = None,
        allow_pickle: bool | None = None,
    ) -> ComparisonPlan:
        """Build a plan from the daemon's ``benchmark:`` and ``verdict:`` sections.

        ``scenario`` and ``batch_size`` default to the config's first; ``device`` to ``bench.device``
        (pass it resolved: ``DeviceContext.resolve``). The timeout is the run timeout plus the time cap.
        """
        return cls(
            model=model,
            candidate_version=candidate_version,
            candidate_path=str(candidate_path),
            baseline_version=baseline_version,
            baseline_path=str(baseline_path),
            scenario=scenario or bench.scenarios[0],
            batch_size=batch_size or bench.batch_sizes[0],
            device=device or bench.device,
            dtype=bench.dtype,
            amp=bench.amp,
            compile=bench.compile,
            threads=bench.threads,
            allow_pickle=bench.allow_pickle if allow_pickle is None else allow_pickle,
            trial_s=verdict.trial_s,
            min_pairs=verdict.min_pairs,
            max_pairs=verdict.max_pairs,
            time_cap_s=verdict.time_cap_s,
            threshold=verdict.threshold,
            min_effect=verdict.min_effect,
            thresholds=dict(verdict.thresholds),
            seed=bench.seed,
            timeout_s=bench.timeout_s + verdict.time_cap_s,
        )

    def replace(self, **changes: Any) -> ComparisonPlan:
        """Return a copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)

    def thresholds_by_metric(self) -> dict[str, Thresholds]:
        """Per-metric :class:`Thresholds`: the metric's own threshold, else ``threshold``."""
        return {m: Thresholds(self.thresholds.get(m, self.threshold), self.min_effect) for m in METRICS}


@dataclass(frozen=True)
class ComparisonOutcome:
    """The result of :func:`compare`.

    Attributes:
        verdict: the final verdict, or None when the batch failed (then ``error_kind``/``error`` say why).
        inputs: what the verdict was decided from, for ``store.save_verdict(verdict, inputs)``: method,
            pairs, n per side, per-metric ratio/interval/m/t/state, per-trial durations and percentiles,
            throttled trials, why the batch stopped, benchmarking seconds, the plan.
        error_kind: a :class:`~benchd.errors.RunError` kind (``model_error``, ``timeout``,
            ``worker_crashed``, ``interrupted``, ``insufficient_data``...), None on success.
        error: a sentence saying what failed (which side, when the worker knows).
        out_dir: the folder holding ``plan.json``, the trials' ``.npy`` latencies, ``worker.log`` and
            ``result.json``.
    """

    verdict: Verdict | None
    inputs: dict[str, Any]
    error_kind: str | None = None
    error: str | None = None
    out_dir: str = ""

    @property
    def ok(self) -> bool:
        """True when a verdict was reached (it may still be ``inconclusive``)."""
        return self.verdict is not None


class _Worker:
    """The comparison worker process and the thread that reads its events into a queue."""

    def __init__(self, plan_path: Path, out_dir: Path, python: str, env: Mapping[str, str] | None) -> None:
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.stderr_path = out_dir / "worker.log"
        self.proc = start_worker(
            "benchd.runner.pairs", [str(plan_path), str(out_dir)], out_dir, python, dict(env or {})
        )
        self.reader = threading.Thread(
            target=read_events,
            args=(self.proc.stdout, self.events.put),
            name="benchd-pairs-events",
            daemon=True,
        )
        self.reader.start()

    def next_event(self, timeout_s: float) -> dict[str, Any] | None:
        """The next event, or None when none arrived within ``timeout_s``."""
        try:
            return self.events.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def finish(self) -> list[dict[str, Any]]:
        """After the process ended: wait for the reader, return the events still queued."""
        self.reader.join(timeout=5.0)
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out


def compare(
    plan: ComparisonPlan,
    out_dir: str | Path,
    *,
    meter: Any = None,
    cancel: threading.Event | None = None,
    on_event: EventHandler | None = None,
    host_fingerprint: dict[str, Any] | None = None,
    meter_device: str | None = None,
    python: str = sys.executable,
    env: Mapping[str, str] | None = None,
) -> ComparisonOutcome:
    """Run one comparison batch and decide; never raises for a failed run (the outcome says why).

    Args:
        plan: what to compare and how (see :class:`ComparisonPlan`).
        out_dir: where the worker writes its trials, ``worker.log`` and ``result.json`` (stale ``stop`` and
            ``result.json`` files from an earlier batch there are removed first).
        meter: a started ``devices.meter.WindowSampler`` or None; when given, each trial gets its window's
            energy (J) and throttling is checked from its telemetry.
        cancel: when set, the worker is killed and the outcome's ``error_kind`` is ``interrupted``.
        on_event: called (on this thread) with every event the worker reports.
        host_fingerprint: the parent's view of the hardware (``devices.fingerprint``), kept in the inputs.
        meter_device: the device the meter reads (a scheduler slot's ``cuda:N``, a fake device); default:
            the device the worker reports.
        python: the interpreter that runs the worker.
        env: extra environment variables for the worker (e.g. ``PYTHONPATH`` for pickled model classes).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for stale in (STOP_FILE, "result.json"):
        (out / stale).unlink(missing_ok=True)
    plan_path = out / "plan.json"
    plan_path.write_text(json.dumps(to_dict(plan), indent=1))
    batch = Batch(plan, meter, host_fingerprint, meter_device)
    started = time.monotonic()

    def failed(kind: str, message: str) -> ComparisonOutcome:
        logger.warning(
            "comparison of %s %s with %s failed (%s): %s",
            plan.model,
            plan.candidate_version,
            plan.baseline_version,
            kind,
            message.splitlines()[0] if message else "",
        )
        inputs = batch.inputs(stopped="error", wall_s=time.monotonic() - started)
        return ComparisonOutcome(None, inputs, kind, message, str(out))

    try:
        worker = _Worker(plan_path, out, python, env)
    except OSError as e:
        return failed("worker_crashed", f"cannot start the comparison worker: {e}")

    def handle(event: dict[str, Any]) -> None:
        if on_event is not None:
            try:
                on_event(event)
            except Exception:  # a broken progress display must not break the batch
                logger.exception("comparison event handler failed")
        if batch.add_event(event) and not (out / STOP_FILE).exists() and batch.should_stop():
            (out / STOP_FILE).write_text(batch.stop_reason)

    deadline = started + plan.timeout_s
    code: int | None = None
    while True:
        event = worker.next_event(0.1)
        if event is not None:
            handle(event)
            continue
        code = worker.proc.poll()
        if code is not None:
            break
        if time.monotonic() >= deadline or (cancel is not None and cancel.is_set()):
            kill_group(worker.proc)
            code = None
            break
    for event in worker.finish():
        handle(event)
    if code is None:
        if cancel is not None and cancel.is_set():
            return failed("interrupted", "the comparison was interrupted (benchd is shutting down)")
        return failed(
            "timeout",
            f"the comparison did not finish within its timeout of {plan.timeout_s:g} s and was killed",
        )
    result_path = out / "result.json"
    if not result_path.is_file():
        tail = stderr_tail(worker.stderr_path)
        why = (
            f"crashed with {signal_name(-code)}"
            if code < 0
            else f"exited with status {code} without a result"
        )
        return failed(
            "worker_crashed", f"the comparison worker {why}" + (f"; its last output:\n{tail}" if tail else "")
        )
    payload = json.loads(result_path.read_text())
    batch.worker = payload
    if "error" in payload:
        return failed(payload["error"]["kind"], payload["error"]["message"])
    try:
        verdict = batch.decide(final=True)
    except InsufficientDataError as e:
        return failed("insufficient_data", f"no verdict: {e}")
    stopped = batch.stop_reason or str(payload.get("stopped", ""))
    note = "; ".join(n for n in (verdict.note, *batch.notes(stopped, verdict)) if n)
    verdict = dataclasses.replace(verdict, note=note, decided_unix_s=time.time())
    inputs = batch.inputs(stopped=stopped, wall_s=time.monotonic() - started, verdict=verdict)
    logger.info(
        "%s %s vs %s (%s bs=%d %s): %s after %d pairs",
        plan.model,
        plan.candidate_version,
        plan.baseline_version,
        plan.scenario.name,
        plan.batch_size,
        batch.device,
        verdict.state,
        batch.pairs_done,
    )
    return ComparisonOutcome(verdict, inputs, None, None, str(out))
