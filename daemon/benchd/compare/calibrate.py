"""The noise floor: A/A batches of one version against itself, run to the full budget.

A twin batch that stops as soon as it says ``unchanged`` shows how quickly the batch decides, not how narrow
its interval gets within the budget. A calibration therefore runs each A/A batch to its time cap (or
``max_pairs``) and reads the half-width of the final 95% interval of P99 and p50: the smallest change a
batch on this host can tell apart within the configured budget. The floor is the median over the batches
(:class:`~benchd.records.NoiseFloor`); each batch's width is kept.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchd.compare.plan import ComparisonPlan
from benchd.compare.run import compare
from benchd.errors import BenchdError
from benchd.records import MetricVerdict, NoiseFloor
from benchd.runner.launch import WorkerLimits

logger = logging.getLogger(__name__)

#: A/A batches a calibration runs by default.
DEFAULT_BATCHES = 3


class CalibrationError(BenchdError):
    """A calibration batch failed (the version itself cannot run, the worker crashed, shutdown)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(f"calibration failed ({kind}): {message}")


def half_width(mv: MetricVerdict) -> float:
    """The half-width of a metric's interval as a ratio: ``0.06`` for an interval reaching +/-6%.

    The interval is symmetric in log space around the ratio; the wider side is taken. Infinite when the
    batch ended without an interval.
    """
    if not (math.isfinite(mv.ratio_low) and math.isfinite(mv.ratio_high) and mv.ratio_low > 0):
        return math.inf
    return max(mv.ratio_high / mv.ratio, mv.ratio / mv.ratio_low) - 1.0


def calibrate(
    plan: ComparisonPlan,
    out_dir: str | Path,
    *,
    batches: int = DEFAULT_BATCHES,
    hardware_class: str = "",
    meter: Any = None,
    meter_device: str | None = None,
    cancel: threading.Event | None = None,
    host_fingerprint: dict[str, Any] | None = None,
    on_batch: Callable[[int, dict[str, float]], None] | None = None,
    limits: WorkerLimits | None = None,
) -> NoiseFloor:
    """Run ``batches`` A/A batches of ``plan.candidate`` against itself and return the measured floor.

    Args:
        plan: the comparison settings to calibrate (its candidate is compared with itself; the baseline
            side of the plan is ignored).
        out_dir: where each batch keeps its units (``aa-<i>/``).
        batches: A/A batches to run (the floor is their median).
        hardware_class: the hardware class the floor is filed under.
        meter: the device sampler, or None.
        meter_device: the device the meter reads (a slot's label).
        cancel: stops the calibration (the running batch is killed).
        host_fingerprint: the parent's view of the hardware.
        on_batch: called after each batch with its index and ``{"p99": width, "p50": width, "pairs": n}``.
        limits: each worker's limits (default: ``WorkerLimits()``).

    Raises:
        CalibrationError: a batch failed; nothing is measured then.
        ValueError: ``batches`` is below 1.
    """
    if batches < 1:
        raise ValueError(f"batches must be at least 1, got {batches}")
    twin = plan.replace(baseline=plan.candidate, stop_when_decided=False)
    widths: dict[str, list[float]] = {"p99_latency": [], "p50_latency": []}
    pairs: list[int] = []
    for i in range(batches):
        outcome = compare(
            twin,
            Path(out_dir) / f"aa-{i}",
            meter=meter,
            meter_device=meter_device,
            cancel=cancel,
            host_fingerprint=host_fingerprint,
            limits=limits,
        )
        if outcome.verdict is None:
            raise CalibrationError(outcome.error_kind or "internal", outcome.error or "no verdict")
        by_metric = {m.metric: m for m in outcome.verdict.metrics}
        for metric, values in widths.items():
            values.append(half_width(by_metric[metric]))
        pairs.append(by_metric["p99_latency"].pairs)
        logger.info(
            "calibration %s %s: A/A batch %d of %d: P99 +/-%.1f%%, p50 +/-%.1f%% after %d pairs",
            plan.model,
            plan.candidate_version,
            i + 1,
            batches,
            100 * widths["p99_latency"][-1],
            100 * widths["p50_latency"][-1],
            pairs[-1],
        )
        if on_batch is not None:
            last = {"p99": widths["p99_latency"][-1], "p50": widths["p50_latency"][-1], "pairs": pairs[-1]}
            on_batch(i, last)
    return NoiseFloor(
        model=plan.model,
        version=plan.candidate_version,
        hardware_class=hardware_class,
        device=plan.device,
        scenario=plan.scenario.name,
        batch_size=plan.batch_size,
        p99_ratio=statistics.median(widths["p99_latency"]),
        p50_ratio=statistics.median(widths["p50_latency"]),
        batches=batches,
        pairs=int(statistics.median(pairs)),
        budget_s=plan.time_cap_s,
        threshold=plan.thresholds.get("p99_latency", plan.threshold),
        measured_unix_s=time.time(),
        widths=tuple(widths["p99_latency"]),
    )
