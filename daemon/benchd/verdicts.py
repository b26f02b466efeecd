"""Daemon side of a verdict: after a candidate's run, pick its baseline and decide, per scenario.

``verdict.mode: batch`` (default) re-measures the baseline in one batch of interleaved trials with the
candidate (:mod:`benchd.comparison`); ``history`` compares stored runs only and says it is weaker.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from benchd.analysis import BaselineCandidate, Thresholds, choose_baseline, decide_from_history
from benchd.comparison import ComparisonPlan, compare
from benchd.errors import RegistryError
from benchd.records import ModelVersion, RunResult, ScenarioResult

if TYPE_CHECKING:
    from benchd.app import BenchdApp

logger = logging.getLogger(__name__)

#: Aliases a request may name instead of a version.
ALIASES = ("champion",)


def _candidates(app: BenchdApp, model: str) -> list[BaselineCandidate]:
    order = {v.version: i for i, v in enumerate(app.store.list_versions(model))}
    out = []
    for row in app.store.result_rows(model=model):
        r = row.result
        out.append(
            BaselineCandidate(
                version=row.version,
                created_order=float(order.get(row.version, -1)),
                scenario=r.scenario,
                batch_size=r.batch_size,
                device=r.device,
                hardware_class=row.hardware_class or "",
                valid=r.valid,
                throttled=bool(r.telemetry and r.telemetry.throttled),
            )
        )
    return out


def _champion(app: BenchdApp, mv: ModelVersion) -> str | None:
    watcher = app.watchers.get(mv.registry)
    if watcher is None:
        return None
    try:
        return watcher.champion(mv.model)
    except RegistryError as e:
        logger.warning("cannot read the champion of %s: %s", mv.model, e)
        return None


def pick_baseline(
    app: BenchdApp, mv: ModelVersion, result: ScenarioResult, hardware_class: str, requested: str | None
) -> tuple[str | None, str]:
    """Return (baseline version or None, the reason), honouring an explicit request."""
    if requested and requested not in ALIASES:
        if requested == mv.version:
            return None, "the requested baseline is the candidate itself"
        return requested, f"requested baseline {requested}"
    champion = _champion(app, mv)
    choice = choose_baseline(
        mv.version,
        _candidates(app, mv.model),
        champion=champion,
        scenario=result.scenario,
        batch_size=result.batch_size,
        device=result.device,
        hardware_class=hardware_class,
    )
    return choice.version, choice.reason


def _local(app: BenchdApp, model: str, version: str) -> ModelVersion | None:
    mv = app.store.get_version(model, version)
    if mv is None:
        return None
    watcher = app.watchers.get(mv.registry)
    return watcher.fetch(mv) if watcher is not None else mv


def decide_for_run(app: BenchdApp, record: Any, result: RunResult, cancel: threading.Event) -> None:
    """Decide and store a verdict for each scenario of ``result`` (its first batch size)."""
    mv = _local(app, record.model, record.version)
    if mv is None:
        return
    hardware_class = str(result.fingerprint.get("hardware_class", ""))
    seen: set[str] = set()
    for scenario_result in result.results:
        if scenario_result.scenario in seen or cancel.is_set():
            continue
        seen.add(scenario_result.scenario)
        baseline, reason = pick_baseline(app, mv, scenario_result, hardware_class, record.spec.baseline)
        if baseline is None:
            logger.info("verdict %s/%s %s: none (%s)", mv.model, mv.version, scenario_result.scenario, reason)
            continue
        try:
            base = _local(app, mv.model, baseline)
        except RegistryError as e:
            logger.warning("verdict %s/%s: cannot fetch baseline %s: %s", mv.model, mv.version, baseline, e)
            continue
        if base is None:
            logger.warning(
                "verdict %s/%s: baseline %s is unknown to the store", mv.model, mv.version, baseline
            )
            continue
        logger.info(
            "verdict %s/%s %s bs=%d against %s (%s), mode %s",
            mv.model,
            mv.version,
            scenario_result.scenario,
            scenario_result.batch_size,
            baseline,
            reason,
            app.config.verdict.mode,
        )
        if app.config.verdict.mode == "history":
            _decide_history(app, mv, base, scenario_result, hardware_class)
        else:
            _decide_batch(app, record, mv, base, scenario_result, cancel)


def _decide_batch(
    app: BenchdApp,
    record: Any,
    mv: ModelVersion,
    base: ModelVersion,
    r: ScenarioResult,
    cancel: threading.Event,
) -> None:
    settings = next(s for s in record.spec.scenarios if s.name == r.scenario)
    # r.device is the slot (a fake GPU's cuda:N while torch runs on the CPU): the worker needs torch's device.
    slot = next((s for s in app.slots if s.name == r.device), None)
    plan = ComparisonPlan.from_config(
        app.config.benchmark,
        app.config.verdict,
        model=mv.model,
        candidate_version=mv.version,
        candidate_path=mv.path,
        baseline_version=base.version,
        baseline_path=base.path,
        scenario=settings,
        batch_size=r.batch_size,
        device=slot.torch_device if slot else r.device,
        allow_pickle=record.spec.allow_pickle,
    )
    out_dir = app.runs_dir / str(record.id) / f"compare-{r.scenario}-bs{r.batch_size}"
    outcome = compare(
        plan,
        out_dir,
        meter=app.sampler,
        cancel=cancel,
        meter_device=r.device,
        host_fingerprint=app.fingerprint(r.device),
    )
    if outcome.verdict is None:
        logger.warning(
            "verdict %s/%s %s: comparison failed (%s): %s",
            mv.model,
            mv.version,
            r.scenario,
            outcome.error_kind,
            outcome.error,
        )
        return
    verdict = dataclasses.replace(outcome.verdict, device=r.device)  # the slot's label, as on the results
    app.store.save_verdict(
        verdict, {**outcome.inputs, "hardware_class": app.fingerprint(r.device).get("hardware_class")}
    )
    _log(verdict)


def _decide_history(
    app: BenchdApp, mv: ModelVersion, base: ModelVersion, r: ScenarioResult, hardware_class: str
) -> None:
    def runs(version: str) -> list[Any]:
        rows = app.store.result_rows(
            model=mv.model, version=version, scenario=r.scenario, hardware_class=hardware_class or None
        )  # never across classes
        return [
            app.store.latencies(row.id) * 1e-9
            for row in rows
            if row.result.batch_size == r.batch_size and row.result.device == r.device
        ]

    cfg = app.config.verdict
    thresholds = {m: Thresholds(t, cfg.min_effect) for m, t in cfg.thresholds.items()}
    default = Thresholds(cfg.threshold, cfg.min_effect)
    verdict = decide_from_history(
        runs(base.version),
        runs(mv.version),
        {m: thresholds.get(m, default) for m in ("p99_latency", "p50_latency")},
        model=mv.model,
        candidate_version=mv.version,
        baseline_version=base.version,
        scenario=r.scenario,
        batch_size=r.batch_size,
        device=r.device,
        decided_unix_s=time.time(),
    )
    inputs = {"method": "history", "threshold": cfg.threshold, "hardware_class": hardware_class}
    app.store.save_verdict(verdict, inputs)
    _log(verdict)


def _log(verdict: Any) -> None:
    parts = ", ".join(
        f"{m.metric} {m.state} x{m.ratio:.3f} [{m.ratio_low:.3f}, {m.ratio_high:.3f}]"
        for m in verdict.metrics
    )
    logger.info(
        "verdict %s/%s vs %s (%s): %s: %s",
        verdict.model,
        verdict.candidate_version,
        verdict.baseline_version,
        verdict.scenario,
        verdict.state.upper(),
        parts,
    )
