"""The bookkeeping of one comparison batch: trials and units seen, the running decision, the verdict's inputs.

Parent side (no torch): :func:`benchd.compare.run.compare` feeds it the workers' trial events and tells it
when a unit (one worker process) has ended; the batch decides after each unit.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import Any

import numpy as np

from benchd.analysis import (
    METRICS,
    InsufficientDataError,
    LookSchedule,
    Thresholds,
    Trial,
    decide,
    pair_trials,
    should_continue,
    units_of,
)
from benchd.compare.plan import ComparisonPlan
from benchd.loadgen.stats import percentile_s
from benchd.records import Verdict, to_dict

logger = logging.getLogger(__name__)

_STOP_WORDS = {
    "decided": "every metric decided",
    "max_pairs": "max_pairs reached",
    "time_cap": "time cap reached",
}


def thresholds_by_metric(plan: ComparisonPlan) -> dict[str, Thresholds]:
    """Per-metric :class:`Thresholds` of a plan: the metric's own threshold, else ``plan.threshold``."""
    return {m: Thresholds(plan.thresholds.get(m, plan.threshold), plan.min_effect) for m in METRICS}


def look_schedule(plan: ComparisonPlan, unit_s: float | None = None) -> LookSchedule:
    """The looks a batch takes: after every unit from ``min_units`` to the last unit it can run.

    The last unit is ``max_units``, or fewer when the time cap holds fewer units of ``unit_s`` seconds (the
    mean wall time of the units so far). The error is spent over the looks the batch can really take: a
    schedule planned for looks the time cap never reaches would leave part of it unspent, and every
    interval wider than it needs to be. The schedule is fixed at the first look, from timing alone, never
    from the data.
    """
    last = plan.max_units
    if unit_s and unit_s > 0:
        last = min(last, int(plan.time_cap_s // unit_s))
    return LookSchedule(plan.min_units, max(plan.min_units, last))


class Batch:
    """The trials and units seen so far, the running decision, and the verdict's inputs."""

    def __init__(
        self,
        plan: ComparisonPlan,
        meter: Any,
        host_fingerprint: dict[str, Any] | None,
        meter_device: str | None,
    ) -> None:
        self.plan = plan
        self.schedule: LookSchedule | None = None  # fixed at the first look, when unit times are known
        self.meter = meter
        self.meter_device = meter_device
        self.device = plan.device
        self.fingerprint = dict(host_fingerprint or {})
        self.trials: list[Trial] = []
        self.records: list[dict[str, Any]] = []
        self.units: list[dict[str, Any]] = []
        self.throttled_pairs: set[int] = set()
        self.decisions: list[dict[str, Any]] = []
        self.started_s = time.monotonic()
        self.stop_reason = ""
        self.worker: dict[str, Any] = {}

    @property
    def elapsed_s(self) -> float:
        """Wall seconds since the batch started (worker starts and warm-ups included)."""
        return time.monotonic() - self.started_s

    @property
    def pairs_done(self) -> int:
        """Complete pairs so far."""
        return len(pair_trials(self.trials))

    @property
    def units_done(self) -> int:
        """Units (worker processes) that ended with at least one complete pair."""
        return units_of(self.trials)

    @property
    def unit_s(self) -> float:
        """Mean wall seconds of the units so far (worker start, load, warm-up and pairs), 0 before one."""
        return self.elapsed_s / len(self.units) if self.units else 0.0

    @property
    def benchmark_s(self) -> float:
        """Seconds spent in measured trial windows, both sides."""
        return sum(r["duration_s"] for r in self.records)

    def add_event(self, event: dict[str, Any]) -> None:
        """Take one worker event (trials are kept; others only update what the batch knows)."""
        kind = event.get("event")
        if kind in ("loaded", "warmup") and event.get("device"):
            self.device = str(event["device"])
        if kind != "trial":
            return
        latencies_ns = np.load(event["latencies_file"])
        start, end = float(event["window_start_mono_s"]), float(event["window_end_mono_s"])
        # interleaved: both sides ran in one window, whose energy belongs to neither alone
        energy_j, throttled, reasons = self._measure(
            start, end, int(event["samples"]), energy=not self.plan.interleaved
        )
        trial = Trial(
            side=event["side"],
            pair_index=int(event["pair_index"]),
            latencies_s=latencies_ns.astype(np.float64) * 1e-9,
            samples=int(event["samples"]),
            duration_s=float(event["duration_s"]),
            energy_j=energy_j,
            unit=int(event.get("unit", 0)),
        )
        self.trials.append(trial)
        sorted_ns = np.sort(latencies_ns)
        self.records.append(
            {
                "unit": trial.unit,
                "pair_index": trial.pair_index,
                "side": trial.side,
                "queries": len(latencies_ns),
                "samples": trial.samples,
                "duration_s": trial.duration_s,
                "p50_s": percentile_s(sorted_ns, 50.0) if len(sorted_ns) else None,
                "p99_s": percentile_s(sorted_ns, 99.0) if len(sorted_ns) else None,
                "energy_j": energy_j,
                "throttled": throttled,
                "throttle_reasons": reasons,
                "latencies_file": event["latencies_file"],
            }
        )
        if throttled:
            self.throttled_pairs.add(trial.pair_index)

    def unit_ended(self, summary: dict[str, Any], wall_s: float) -> None:
        """Record a worker process that ended with its result (``summary`` is its ``result.json``)."""
        self.units.append({**{k: v for k, v in summary.items() if k != "worker"}, "wall_s": wall_s})
        self.worker = summary

    def _measure(
        self, start: float, end: float, samples: int, *, energy: bool = True
    ) -> tuple[float | None, bool, list[str]]:
        """The window's energy (J; None when not measured or ``energy`` is False) and its throttling."""
        if self.meter is None:
            return None, False, []
        device = self.meter_device or self.device
        self._wait_for_sample_after(device, end)
        try:
            energy_j = None
            if energy:
                report = self.meter.energy_for_window(device, start, end, samples)
                energy_j = report.energy_j if report.measured else None
            telemetry = self.meter.telemetry_for_window(device, start, end)
        except Exception:  # energy is a bonus: never lose a trial because a sensor failed
            logger.exception("energy/telemetry of a comparison trial failed")
            return None, False, []
        return energy_j, bool(telemetry.throttled), list(telemetry.throttle_reasons)

    def _wait_for_sample_after(self, device: str, end_mono_s: float, limit_s: float = 0.5) -> None:
        """Energy needs a sample after the window's end: wait (briefly) for the sampler thread's next one.

        Reads only the newest sample (``meter.latest``), never a copy of the history.
        """
        latest = getattr(self.meter, "latest", None)
        if latest is None:
            return
        give_up = time.monotonic() + limit_s
        while time.monotonic() < give_up:
            sample = latest(device)
            if sample is None or sample.t_mono_s >= end_mono_s:
                return
            time.sleep(0.01)

    def decision_trials(self) -> tuple[list[Trial], bool]:
        """The trials a decision uses: throttled pairs left out while ``min_pairs`` clean pairs remain."""
        if not self.throttled_pairs:
            return self.trials, False
        clean = [t for t in self.trials if t.pair_index not in self.throttled_pairs]
        if len(pair_trials(clean)) >= self.plan.min_pairs:
            return clean, True
        return self.trials, False

    def decide(self, final: bool) -> Verdict:
        """Decide every metric from the complete pairs so far.

        Raises:
            InsufficientDataError: no complete pair, or a trial without latencies.
        """
        plan = self.plan
        trials, _ = self.decision_trials()
        if self.schedule is None and self.units_done >= plan.min_units:
            self.schedule = look_schedule(plan, self.unit_s)
        verdict = decide(
            trials,
            thresholds_by_metric(plan),
            schedule=self.schedule or look_schedule(plan),
            final=final,
            model=plan.model,
            candidate_version=plan.candidate_version,
            baseline_version=plan.baseline_version,
            scenario=plan.scenario.name,
            batch_size=plan.samples_per_query,
            device=self.device,
        )
        self.decisions.append(
            {
                "units": self.units_done,
                "pairs": self.pairs_done,
                "final": final,
                "states": {m.metric: m.state for m in verdict.metrics},
            }
        )
        return verdict

    def should_stop(self) -> bool:
        """Decide (from the first look on) and say whether the batch should end; sets ``stop_reason``."""
        plan = self.plan
        units = self.units_done
        verdict: Verdict | None = None
        if units >= plan.min_units:
            try:
                verdict = self.decide(final=False)
            except InsufficientDataError as e:
                logger.warning("comparison: cannot decide yet: %s", e)
        unit_s = self.unit_s
        last = self.schedule.max_units if self.schedule is not None else plan.max_units
        metrics = verdict.metrics if verdict is not None else ()
        if not plan.stop_when_decided:  # a calibration runs to its budget: nothing counts as decided
            metrics = tuple(dataclasses.replace(m, state="more") for m in metrics)
        if should_continue(
            metrics, units, plan.min_units, last, self.elapsed_s, plan.time_cap_s, unit_s=unit_s
        ):
            return False
        if verdict is not None and plan.stop_when_decided and not any(m.state == "more" for m in metrics):
            self.stop_reason = "decided"
        elif units >= last:
            self.stop_reason = "max_pairs"
        else:
            self.stop_reason = "time_cap"
        return True

    def notes(self, verdict: Verdict) -> list[str]:
        """Notes for the verdict: how the batch ended, throttling, warm-ups that never settled."""
        plan = self.plan
        notes = [
            f"{self.pairs_done} pairs in {self.units_done} worker processes ({self.elapsed_s:.0f} s), "
            f"{_STOP_WORDS.get(self.stop_reason, self.stop_reason or 'worker ended')}"
        ]
        if any(m.state == "inconclusive" for m in verdict.metrics):
            notes.append(
                f"undecided within {plan.max_pairs} pairs / {plan.time_cap_s:g} s: more pairs, a longer "
                "time cap or a quieter machine may decide it"
            )
        short = [r for r in self.records if r["queries"] < plan.trial_queries]
        if short:
            fewest = min(r["queries"] for r in short)
            notes.append(
                f"{len(short)} trials held fewer than {plan.trial_queries} queries (fewest {fewest}) within "
                f"their {plan.trial_limit_s:.1f} s limit: their P99 rests on few tail queries"
            )
        unsettled = sorted(
            {side for u in self.units for side, w in u.get("warmup", {}).items() if not w["settled"]}
        )
        if unsettled:
            notes.append(f"the {' and '.join(unsettled)} latency never settled during warm-up")
        if plan.interleaved and self.meter is not None:
            notes.append(
                f"energy per sample not compared: the sides took turns every {plan.block_queries} "
                f"{'query' if plan.block_queries == 1 else 'queries'} within each pair "
                "(verdict.block_queries), so a window's energy belongs to neither alone; "
                "verdict.block_queries: 0 compares it"
            )
        if self.throttled_pairs:
            _, dropped = self.decision_trials()
            count = sum(1 for r in self.records if r["throttled"])
            what = "left out of the verdict" if dropped else "kept (too few clean pairs to leave them out)"
            notes.append(f"{count} trial windows throttled, in pairs {sorted(self.throttled_pairs)}: {what}")
        return notes

    def inputs(self, *, wall_s: float, verdict: Verdict | None = None) -> dict[str, Any]:
        """What the verdict was decided from (stored next to it)."""
        plan = self.plan
        complete = {p.index for p in pair_trials(self.trials)}
        used, dropped = self.decision_trials()
        used_pairs = {p.index for p in pair_trials(used)}
        n = {side: sum(len(t.latencies_s) for t in used if t.side == side and t.pair_index in used_pairs)
             for side in ("baseline", "candidate")}  # fmt: skip
        metrics = {
            m.metric: {
                "state": m.state,
                "ratio": m.ratio,
                "interval": [m.ratio_low, m.ratio_high],
                "m": m.min_effect,
                "t": m.threshold,
                "baseline_value": m.baseline_value,
                "candidate_value": m.candidate_value,
                "higher_is_better": m.higher_is_better,
            }
            for m in (verdict.metrics if verdict is not None else ())
        }
        return {
            "method": "paired",
            "estimator": "t interval of per-process mean log ratios, group-sequential boundaries",
            "order": "interleaved, AB then BA alternating; load order swapped between processes",
            "pairs": len(complete),
            "pairs_used": len(used_pairs),
            "units": self.units_done,
            "unit_log": self.units,
            "n": n,
            "metrics": metrics,
            "trial_s": plan.trial_s,
            "trial_queries": plan.trial_queries,
            "trial_limit_s": plan.trial_limit_s,
            "pairs_per_unit": plan.pairs_per_unit,
            "schedule": None if self.schedule is None else {
                "min_units": self.schedule.min_units,
                "max_units": self.schedule.max_units,
                "alpha": self.schedule.alpha,
                "rho": self.schedule.rho,
            },  # fmt: skip
            "trials": self.records,
            "throttled_pairs": sorted(self.throttled_pairs),
            "throttled_pairs_left_out": dropped,
            "min_pairs": plan.min_pairs,
            "max_pairs": plan.max_pairs,
            "time_cap_s": plan.time_cap_s,
            "stopped": self.stop_reason or "error",
            "benchmark_s": self.benchmark_s,
            "wall_s": wall_s,
            "decisions": self.decisions,
            "seed": plan.seed,
            "scenario": to_dict(plan.scenario),
            "batch_size": plan.batch_size,
            "device": self.device,
            "cpus": list(plan.candidate.cpus) if plan.candidate.cpus else None,
            "candidate": {"version": plan.candidate_version, "path": plan.candidate.model_path},
            "baseline": {"version": plan.baseline_version, "path": plan.baseline.model_path},
            "fingerprint": {**self.fingerprint, **self.worker.get("worker", {})},
        }
