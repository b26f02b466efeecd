"""Candidate versus baseline in one batch of interleaved trials (parent side; never imports torch).

:func:`compare` runs the batch as a sequence of *units*: each unit is one ``python -m benchd.runner.pairs``
process (its own process group, killed on timeout or cancel) that loads both versions, the load order
swapped from one unit to the next, and runs ``pairs_per_unit`` pairs of short trials (AB, BA, ...). Fresh
processes make an offset between the sides that is fixed inside one process (memory layout, load order)
vary from unit to unit, where the interval sees it. When the worker has CPUs of its own, the next unit's
process starts while the current one runs: it imports torch on benchd's CPUs and waits for its ``plan.json``
(written, by rename, when its unit starts), so a unit costs its loading and trials, not an interpreter's
start; it is ended, its folder removed, when the batch stops before it. Each trial the worker reports
becomes an :class:`~benchd.analysis.Trial` (energy from the parent's sampler for the trial's window when
there is one). From ``min_units`` units on the batch is decided after every unit
(:func:`~benchd.analysis.decide` with the plan's look schedule, so the interval stays valid however often
it looks); when
:func:`~benchd.analysis.should_continue` says stop (every metric decided, ``max_pairs`` done or the time cap
reached) no new unit starts, and the verdict is decided once more with ``final=True``, so an undecided
metric ends ``inconclusive``, never a silent pass.

How the daemon uses it, after the candidate's own run succeeded::

    plan = plan_comparison(
        config.benchmark, config.verdict, model=mv.model,
        candidate_version=mv.version, candidate_path=mv.path,            # fetched folders
        baseline_version=base.version, baseline_path=base.path,
        scenario=settings, batch_size=bs, device=devices.resolve(config.benchmark.device),
        allow_pickle=registry_cfg.allow_pickle,
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
import shutil
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchd.analysis import InsufficientDataError
from benchd.compare.batch import Batch
from benchd.compare.plan import AUTO_BLOCK_QUERIES, ComparisonPlan
from benchd.config import BenchConfig, VerdictConfig
from benchd.records import RunSpec, ScenarioSettings, Verdict, to_dict
from benchd.runner.cpus import configured_cpus, others
from benchd.runner.launch import (
    EventHandler,
    WorkerEnd,
    WorkerLimits,
    WorkerProcess,
    begin_worker,
    discard_worker,
    finish_worker,
)

logger = logging.getLogger(__name__)

__all__ = ["ComparisonOutcome", "compare", "plan_comparison"]


def plan_comparison(
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
    allow_pickle: bool = False,
    allow_native_code: bool = False,
) -> ComparisonPlan:
    """Build a plan from the daemon's ``benchmark:`` and ``verdict:`` sections.

    ``scenario`` and ``batch_size`` default to the config's first; ``device`` to ``bench.device`` (pass it
    resolved: ``DeviceContext.resolve``); ``allow_pickle`` and ``allow_native_code`` are the registry's
    permissions. The timeout is the
    run timeout plus the time cap. The worker's CPUs come from ``benchmark.cpu_set`` on this host.
    ``verdict.block_queries: auto`` interleaves the pairs in blocks on a CPU and runs whole trials on a GPU.

    Raises:
        ConfigError: ``benchmark.cpu_set`` names CPUs this process may not use.
    """
    cpus = configured_cpus(bench.cpu_set, bench.threads)
    torch_device = device or bench.device
    if verdict.block_queries == "auto":
        # on a CPU the host's noise comes in bursts that whole trials catch on one side only; on a GPU the
        # trials stay whole so each side's energy has its own window
        block_queries = AUTO_BLOCK_QUERIES if torch_device == "cpu" else 0
    else:
        block_queries = int(verdict.block_queries)

    def side(version: str, path: str) -> RunSpec:
        return bench.run_spec(
            model=model,
            version=version,
            model_path=path,
            device=torch_device,
            scenarios=(scenario or bench.scenarios[0],),
            batch_sizes=(batch_size or bench.batch_sizes[0],),
            allow_pickle=allow_pickle,
            allow_native_code=allow_native_code,
            cpus=cpus,
        )

    return ComparisonPlan(
        candidate=side(candidate_version, candidate_path),
        baseline=side(baseline_version, baseline_path),
        trial_s=verdict.trial_s,
        trial_queries=verdict.trial_queries,
        min_pairs=verdict.min_pairs,
        max_pairs=verdict.max_pairs,
        pairs_per_unit=verdict.pairs_per_process,
        time_cap_s=verdict.time_cap_s,
        threshold=verdict.threshold,
        min_effect=verdict.min_effect,
        thresholds={metric: t for metric, t in verdict.thresholds.items()},
        timeout_s=bench.timeout_s + verdict.time_cap_s,
        block_queries=block_queries,
    )


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
    limits: WorkerLimits | None = None,
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
        limits: each worker's memory limit, kill grace, log cap and event size (default: ``WorkerLimits()``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    batch = Batch(plan, meter, host_fingerprint, meter_device)
    deadline = time.monotonic() + plan.timeout_s

    def failed(kind: str, message: str) -> ComparisonOutcome:
        logger.warning(
            "comparison of %s %s with %s failed (%s): %s",
            plan.model,
            plan.candidate_version,
            plan.baseline_version,
            kind,
            message.splitlines()[0] if message else "",
        )
        return ComparisonOutcome(None, batch.inputs(wall_s=batch.elapsed_s), kind, message, str(out))

    def handle(event: dict[str, Any]) -> None:
        if on_event is not None:
            try:
                on_event(event)
            except Exception:  # a broken progress display must not break the batch
                logger.exception("comparison event handler failed")
        batch.add_event(event)

    # the next unit's worker starts while this one runs: it imports torch on benchd's own CPUs, off the
    # worker's, and waits there for its plan.json, so a unit costs its loading and trials, not a start
    wait_cpus = others(plan.candidate.cpus)
    upcoming: tuple[Path, WorkerProcess | WorkerEnd] | None = None

    def what(unit: int) -> str:
        return f"the comparison (worker process {unit + 1})"

    def start(unit: int, wait_on: tuple[int, ...] | None = None) -> tuple[Path, WorkerProcess | WorkerEnd]:
        """Start unit ``unit``'s worker; with ``wait_on`` CPUs it waits there until its plan.json appears."""
        unit_dir = out / f"unit-{unit:03d}"
        (unit_dir / "plan.json").unlink(missing_ok=True)  # an earlier batch's would start it at once
        args = [str(unit_dir / "plan.json"), str(unit_dir)]
        if wait_on is not None:
            args += ["--wait-on-cpus", ",".join(map(str, wait_on))]
        return unit_dir, begin_worker(
            "benchd.runner.pairs",
            args,
            unit_dir,
            what=what(unit),
            on_event=handle,
            python=python,
            env=env,
            limits=limits,
        )

    try:
        for unit in range(plan.max_units):
            unit_dir, worker = upcoming or start(unit)
            upcoming = None
            unit_started = time.monotonic()
            tmp = unit_dir / "plan.json.tmp"  # renamed into place: a waiting worker never reads half a plan
            tmp.write_text(json.dumps(to_dict(plan.replace(unit=unit)), indent=1))
            tmp.replace(unit_dir / "plan.json")
            if wait_cpus is not None and unit + 1 < plan.max_units:
                upcoming = start(unit + 1, wait_on=wait_cpus)
            timeout_s = max(1.0, deadline - unit_started)
            end = finish_worker(worker, timeout_s=timeout_s, what=what(unit), cancel=cancel)
            if end.failed:
                return failed(end.error_kind or "internal", end.error or "")
            batch.unit_ended(end.payload or {}, time.monotonic() - unit_started)
            if batch.should_stop():
                break
    finally:
        if upcoming is not None:  # not needed: the batch decided, failed or was cancelled
            discard_worker(upcoming[1])
            shutil.rmtree(upcoming[0], ignore_errors=True)
    try:
        verdict = batch.decide(final=True)
    except InsufficientDataError as e:
        return failed("insufficient_data", f"no verdict: {e}")
    note = "; ".join(n for n in (verdict.note, *batch.notes(verdict)) if n)
    verdict = dataclasses.replace(verdict, note=note, decided_unix_s=time.time())
    inputs = batch.inputs(wall_s=batch.elapsed_s, verdict=verdict)
    logger.info(
        "%s %s vs %s (%s bs=%d %s): %s after %d pairs in %d processes, %.0f s",
        plan.model,
        plan.candidate_version,
        plan.baseline_version,
        plan.scenario.name,
        plan.batch_size,
        batch.device,
        verdict.state,
        batch.pairs_done,
        batch.units_done,
        batch.elapsed_s,
    )
    return ComparisonOutcome(verdict, inputs, None, None, str(out))
