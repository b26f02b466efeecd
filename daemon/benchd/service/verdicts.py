"""Daemon side of a verdict: after a candidate's run, pick its baseline and decide, per scenario.

``verdict.mode: batch`` (default) re-measures the baseline in one batch of interleaved trials with the
candidate (:mod:`benchd.compare`); ``history`` compares stored runs only and says it is weaker. The baseline
rule is :func:`benchd.analysis.choose_baseline`, the same one ``benchd check`` uses.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from benchd.analysis import (
    BaselineCandidate,
    BaselineChoice,
    Thresholds,
    choose_baseline,
    decide_from_history,
    eligible_runs,
)
from benchd.compare.calibrate import CalibrationError, calibrate
from benchd.compare.plan import ComparisonPlan
from benchd.compare.run import compare, plan_comparison
from benchd.config import BenchConfig, VerdictConfig
from benchd.errors import RegistryError
from benchd.history import HistoryStore, RunRecord
from benchd.records import REFUSED, ModelVersion, NoiseFloor, RunResult, ScenarioResult, Verdict, to_dict
from benchd.registry.base import RegistryWatcher
from benchd.runner.launch import WorkerLimits

logger = logging.getLogger(__name__)


class VerdictMaker:
    """Decides and stores the verdicts of a finished run.

    Args:
        store: the history store (versions, stored runs, verdicts).
        watchers: the registry watchers by registry name (champion aliases, fetching folders).
        bench: the ``benchmark:`` settings both sides of a comparison run with.
        verdict: the ``verdict:`` settings (mode, thresholds, pairs, time cap).
        runs_dir: where each run's folder is (comparison outputs go inside it).
        meter: the started device sampler (energy of each trial), or None.
        fingerprint: a slot's hardware fingerprint (``hardware_class`` included).
        torch_device: the device torch runs on for a slot (a fake GPU slot runs on the CPU).
        calibration_batches: A/A batches that measure a model's noise floor on a hardware class the first
            time one of its versions finishes a run there (0: never; ``benchd calibrate`` still can).
        limits: each comparison worker's memory limit, kill grace, log cap and event size.
    """

    def __init__(
        self,
        store: HistoryStore,
        watchers: Mapping[str, RegistryWatcher],
        bench: BenchConfig,
        verdict: VerdictConfig,
        runs_dir: Path,
        *,
        meter: Any = None,
        fingerprint: Callable[[str], dict[str, Any]] = lambda slot: {},
        torch_device: Callable[[str], str] = lambda slot: slot,
        calibration_batches: int = 0,
        limits: WorkerLimits | None = None,
    ) -> None:
        self.store = store
        self.watchers = watchers
        self.bench = bench
        self.verdict = verdict
        self.runs_dir = runs_dir
        self.meter = meter
        self.fingerprint = fingerprint
        self.torch_device = torch_device
        self.calibration_batches = calibration_batches
        self.limits = limits

    @property
    def p99_threshold(self) -> float:
        """The P99 threshold the verdicts use (its own entry, else the common threshold)."""
        return self.verdict.thresholds.get("p99_latency", self.verdict.threshold)

    def champion(self, mv: ModelVersion) -> str | None:
        """The version the registry's champion alias names for ``mv``'s model, or None."""
        watcher = self.watchers.get(mv.registry)
        if watcher is None:
            return None
        try:
            return watcher.champion(mv.model)
        except RegistryError as e:
            logger.warning("cannot read the champion of %s: %s", mv.model, e)
            return None

    def pick_baseline(
        self, mv: ModelVersion, result: ScenarioResult, hardware_class: str, requested: str | None
    ) -> BaselineChoice:
        """The baseline of ``mv`` for ``result``'s scenario, batch size, device and hardware class."""
        runs = [
            BaselineCandidate(
                version=row.version,
                scenario=row.result.scenario,
                batch_size=row.result.batch_size,
                device=row.result.device,
                hardware_class=row.hardware_class or "",
                valid=row.result.valid,
                throttled=bool(row.result.telemetry and row.result.telemetry.throttled),
            )
            for row in self.store.result_rows(model=mv.model)
        ]
        why_not = eligible_runs(
            runs,
            scenario=result.scenario,
            batch_size=result.batch_size,
            device=result.device,
            hardware_class=hardware_class,
        )
        versions = [v.version for v in self.store.list_versions(mv.model)]
        return choose_baseline(
            mv.version, versions, champion=self.champion(mv), requested=requested, why_not=why_not
        )

    def _local(self, model: str, version: str) -> ModelVersion | None:
        mv = self.store.get_version(model, version)
        if mv is None:
            return None
        watcher = self.watchers.get(mv.registry)
        return watcher.fetch(mv) if watcher is not None else mv

    def decide_for_run(self, record: RunRecord, result: RunResult, cancel: threading.Event) -> list[Verdict]:
        """Decide and store a verdict for each scenario of ``result`` (its first batch size)."""
        if not result.ok or self.verdict.mode == "off":
            return []
        mv = self._local(record.model, record.version)
        if mv is None:
            return []
        hardware_class = str(result.fingerprint.get("hardware_class", ""))
        seen: set[str] = set()
        verdicts = []
        for scenario_result in result.results:
            if scenario_result.scenario in seen or cancel.is_set():
                continue
            seen.add(scenario_result.scenario)
            choice = self.pick_baseline(mv, scenario_result, hardware_class, record.spec.baseline)
            what = f"{mv.model}/{mv.version} {scenario_result.scenario}"
            if choice.version is None:
                logger.info("verdict %s: none (%s)", what, choice.reason)
                continue
            try:
                base = self._local(mv.model, choice.version)
            except RegistryError as e:
                logger.warning("verdict %s: cannot fetch baseline %s: %s", what, choice.version, e)
                continue
            if base is None:
                logger.warning("verdict %s: baseline %s is unknown to the store", what, choice.version)
                continue
            logger.info(
                "verdict %s bs=%d against %s (%s), mode %s",
                what,
                scenario_result.batch_size,
                base.version,
                choice.reason,
                self.verdict.mode,
            )
            verdict: Verdict | None
            if self.verdict.mode == "history":
                verdict = self._decide_history(mv, base, scenario_result, hardware_class)
            else:
                verdict = self.refusal(mv, scenario_result, hardware_class, base.version)
                if verdict is None:
                    verdict = self._decide_batch(record, mv, base, scenario_result, cancel)
            if verdict is not None:
                log_verdict(verdict)
                verdicts.append(verdict)
        if result.results and not cancel.is_set():
            self.calibrate_if_missing(record, mv, result.results[0], hardware_class, cancel)
        return verdicts

    def _plan(
        self, record: RunRecord, mv: ModelVersion, base: ModelVersion, r: ScenarioResult
    ) -> ComparisonPlan:
        settings = next(s for s in record.spec.scenarios if s.name == r.scenario)
        return plan_comparison(
            self.bench,
            self.verdict,
            model=mv.model,
            candidate_version=mv.version,
            candidate_path=mv.path,
            baseline_version=base.version,
            baseline_path=base.path,
            scenario=settings,
            batch_size=r.batch_size,
            device=self.torch_device(r.device),  # the slot's label is cuda:N, torch may run on the CPU
            allow_pickle=record.spec.allow_pickle,
            allow_native_code=record.spec.allow_native_code,
        )

    def calibrate_if_missing(
        self,
        record: RunRecord,
        mv: ModelVersion,
        r: ScenarioResult,
        hardware_class: str,
        cancel: threading.Event,
    ) -> NoiseFloor | None:
        """Measure the model's noise floor on this hardware class when it has none yet (and store it).

        Only in ``batch`` mode: the floor is what a comparison batch can decide, and history mode runs none.
        """
        if self.verdict.mode != "batch" or self.calibration_batches < 1:
            return None
        if self.store.noise_floor(mv.model, hardware_class) is not None:
            return None
        logger.info(
            "calibrating %s on hardware class %s: %d A/A batches of %s (the noise floor)",
            mv.model,
            hardware_class or "unknown",
            self.calibration_batches,
            mv.version,
        )
        try:
            floor = calibrate(
                self._plan(record, mv, mv, r),
                self.runs_dir / str(record.id) / "calibrate",
                batches=self.calibration_batches,
                hardware_class=hardware_class,
                meter=self.meter,
                meter_device=r.device,
                cancel=cancel,
                host_fingerprint=self.fingerprint(r.device),
                limits=self.limits,
            )
        except CalibrationError as e:
            logger.warning("calibration of %s on %s failed: %s", mv.model, hardware_class or "unknown", e)
            return None
        floor = dataclasses.replace(floor, device=r.device)
        self.store.save_noise_floor(floor)
        logger.info(
            "noise floor of %s on %s: P99 +/-%.1f%%, p50 +/-%.1f%% (%s)",
            mv.model,
            hardware_class or "unknown",
            100 * floor.p99_ratio,
            100 * floor.p50_ratio,
            floor.refusal(self.p99_threshold) or "the P99 threshold is above it",
        )
        return floor

    def refusal(
        self, mv: ModelVersion, r: ScenarioResult, hardware_class: str, baseline: str
    ) -> Verdict | None:
        """A ``refused`` verdict when the P99 threshold is below the stored noise floor, else None."""
        floor = self.store.noise_floor(mv.model, hardware_class)
        sentence = floor.refusal(self.p99_threshold) if floor else None
        if sentence is None:
            return None
        logger.warning("verdict %s/%s %s refused: %s", mv.model, mv.version, r.scenario, sentence)
        verdict = Verdict(
            model=mv.model,
            candidate_version=mv.version,
            baseline_version=baseline,
            scenario=r.scenario,
            batch_size=r.batch_size,
            device=r.device,
            method=REFUSED,
            metrics=(),
            decided_unix_s=time.time(),
            note=f"refused: {sentence}",
        )
        inputs = {"method": REFUSED, "noise_floor": to_dict(floor), "hardware_class": hardware_class}
        self.store.save_verdict(verdict, inputs)
        return verdict

    def _decide_batch(
        self,
        record: RunRecord,
        mv: ModelVersion,
        base: ModelVersion,
        r: ScenarioResult,
        cancel: threading.Event,
    ) -> Verdict | None:
        plan = self._plan(record, mv, base, r)
        out_dir = self.runs_dir / str(record.id) / f"compare-{r.scenario}-bs{r.batch_size}"
        fingerprint = self.fingerprint(r.device)
        outcome = compare(
            plan,
            out_dir,
            meter=self.meter,
            cancel=cancel,
            meter_device=r.device,
            host_fingerprint=fingerprint,
            limits=self.limits,
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
            return None
        verdict = dataclasses.replace(outcome.verdict, device=r.device)  # the slot's label, as on the results
        self.store.save_verdict(
            verdict, {**outcome.inputs, "hardware_class": fingerprint.get("hardware_class")}
        )
        return verdict

    def _decide_history(
        self, mv: ModelVersion, base: ModelVersion, r: ScenarioResult, hardware_class: str
    ) -> Verdict:
        def runs(version: str) -> list[Any]:
            rows = self.store.result_rows(
                model=mv.model, version=version, scenario=r.scenario, hardware_class=hardware_class or None
            )  # never across classes
            return [
                self.store.latencies(row.id) * 1e-9
                for row in rows
                if row.result.batch_size == r.batch_size and row.result.device == r.device
            ]

        cfg = self.verdict
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
        self.store.save_verdict(verdict, inputs)
        return verdict


def log_verdict(verdict: Verdict) -> None:
    """One INFO line: the verdict's state and every metric's ratio and interval."""
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
        extra={"event": "verdict", "model": verdict.model, "version": verdict.candidate_version,
               "baseline_version": verdict.baseline_version, "scenario": verdict.scenario,
               "batch_size": verdict.batch_size, "device": verdict.device, "state": verdict.state,
               "metrics": {m.metric: {"state": m.state, "ratio": m.ratio, "low": m.ratio_low,
                                      "high": m.ratio_high} for m in verdict.metrics}},
    )  # fmt: skip
