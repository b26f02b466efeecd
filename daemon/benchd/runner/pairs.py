"""The comparison worker: interleaved A B A B trials of a baseline and a candidate in one process.

``python -m benchd.runner.pairs PLAN.json OUT_DIR`` loads both model versions of a
:class:`~benchd.compare.plan.ComparisonPlan` once, feeds both the same seeded inputs, warms both up (those
queries are discarded), then runs pairs of short measured trials. Pair ``i`` runs the baseline first when
``i`` is even and the candidate first when it is odd (AB, BA, AB, ...), so an order effect (the second
trial of a pair finding warmer caches, a clock ramping up) cancels out over the batch. Each trial starts
with a few discarded queries, because switching models evicts the other one's weights from the caches.

After every trial the raw latencies (int64 ns) go to ``OUT_DIR/trial-<pair>-<side>.npy`` and a JSON line
``{"event": "trial", "side", "pair_index", "latencies_file", "samples", "duration_s",
"window_start_mono_s", "window_end_mono_s", ...}`` goes to stdout. Before every trial the worker looks for
``OUT_DIR/stop`` (the parent writes it once the verdict is decided) and ends cleanly when it is there; it
also ends after ``max_pairs`` pairs or when another pair would pass ``time_cap_s``. ``result.json`` says
why it stopped, or holds ``{"error": {"kind", "message", "side"}}`` (exit status 3) as the run worker does.
"""

from __future__ import annotations

import json
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchd.compare.plan import SIDES, STOP_FILE, ComparisonPlan
from benchd.errors import RunError
from benchd.loadgen.scenarios import (
    Measurement,
    StopRule,
    estimate_capacity,
    run_closed_loop,
    run_concurrency,
    run_server,
    run_warmup,
)
from benchd.records import ScenarioSettings, from_dict
from benchd.runner.timing import autocast_context
from benchd.runner.worker import (
    classify_error,
    emit,
    explain_first_query,
    load_and_report,
    resolve_device,
    with_inference_mode,
    worker_fingerprint,
    worker_main,
)

#: Queries discarded at the start of every trial (the model was just switched in).
TRIAL_WARMUP_QUERIES = 10


class SideError(RunError):
    """A run error that happened on one side (``baseline`` or ``candidate``) of the comparison."""

    def __init__(self, error: RunError, side: str, version: str) -> None:
        self.side = side
        super().__init__(f"{side} version {version}: {error}", error.kind)


@dataclass
class _Side:
    """One loaded model version and its query function."""

    name: str
    version: str
    query: Any
    samples_per_query: int
    typical_ns: float = 1e6


def _load_side(plan: ComparisonPlan, side: str, device: torch.device, amp_dtype: torch.dtype | None) -> _Side:
    spec = plan.spec(side)
    spq = plan.samples_per_query
    try:
        # The run worker's loading path, with the plan's seed: both sides see identical inputs.
        version = load_and_report(spec, device, plan.seed)
        reason = version.skip_reason(spq)
        if reason:
            raise RunError(reason, "input_mismatch")
        query = version.query(spq).query
        with torch.inference_mode(), autocast_context(device, amp_dtype):
            try:
                query(0)
            except Exception as e:  # noqa: BLE001
                raise explain_first_query(e, version, spq) from e
    except RunError as e:
        raise SideError(e, side, spec.version) from e
    if plan.scenario.name == "concurrency":
        query = with_inference_mode(query, amp_dtype, device)
    return _Side(side, spec.version, query, spq)


def _measure(side: _Side, settings: ScenarioSettings, rule: StopRule, seed: int) -> Measurement:
    streams = settings.concurrency if settings.name == "concurrency" else 1
    capacity = estimate_capacity(rule, side.typical_ns, streams)
    if settings.name == "server":
        return run_server(side.query, rule, settings.target_qps, seed, capacity)
    if settings.name == "concurrency":
        return run_concurrency(side.query, rule, settings.concurrency, capacity)
    return run_closed_loop(side.query, rule, capacity)


def _trial(
    side: _Side, plan: ComparisonPlan, pair_index: int, out_dir: Path, stack_factory: Any
) -> dict[str, Any]:
    settings = plan.scenario
    rule = StopRule.from_seconds(
        plan.trial_s,
        max(3.0 * plan.trial_s, plan.trial_s + 1.0),
        settings.min_query_count,
        settings.max_query_count,
    )
    seed = plan.seed + 2 * pair_index + SIDES.index(side.name)
    try:
        with stack_factory():
            if TRIAL_WARMUP_QUERIES and settings.name != "server":
                run_closed_loop(
                    side.query, StopRule(0, 10**9, TRIAL_WARMUP_QUERIES, TRIAL_WARMUP_QUERIES), 16
                )
            m = _measure(side, settings, rule, seed)
    except Exception as e:  # noqa: BLE001
        raise SideError(classify_error(e, first_query=False), side.name, side.version) from e
    path = out_dir / f"trial-{pair_index:03d}-{side.name}.npy"
    np.save(path, m.latencies_ns)
    if m.queries:
        side.typical_ns = float(np.median(m.latencies_ns))
    event = {
        "side": side.name,
        "pair_index": pair_index,
        "latencies_file": str(path),
        "queries": m.queries,
        "samples": m.queries * side.samples_per_query,
        "duration_s": m.duration_s,
        "window_start_mono_s": m.window_start_mono_s,
        "window_end_mono_s": m.window_end_mono_s,
    }
    emit("trial", **event)
    return event


def run_pairs(plan: ComparisonPlan, out_dir: Path) -> dict[str, Any]:
    """Load both versions, warm them up, run pairs until stopped; return the summary for ``result.json``."""
    if plan.candidate.threads:
        torch.set_num_threads(plan.candidate.threads)
    torch.manual_seed(plan.seed)
    device = resolve_device(plan.device)
    amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if plan.candidate.amp else None
    sides = {name: _load_side(plan, name, device, amp_dtype) for name in SIDES}

    def stack_factory() -> ExitStack:
        stack = ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast_context(device, amp_dtype))
        return stack

    settings = plan.scenario
    emit("warmup", device=str(device), warmup_s=settings.warmup_s, warmup_queries=settings.warmup_queries)
    for side in sides.values():
        try:
            with stack_factory():
                warm = run_warmup(side.query, settings.warmup_queries, settings.warmup_s)
        except Exception as e:  # noqa: BLE001
            raise SideError(classify_error(e, first_query=False), side.name, side.version) from e
        if len(warm):
            side.typical_ns = float(np.median(warm))
    stop_path = out_dir / STOP_FILE
    started = time.monotonic()
    pairs_done, stopped = 0, "max_pairs"
    while pairs_done < plan.max_pairs:
        elapsed_s = time.monotonic() - started
        pair_s = elapsed_s / pairs_done if pairs_done else 0.0
        if pairs_done >= 2 and elapsed_s + pair_s > plan.time_cap_s:
            stopped = "time_cap"
            break
        order = SIDES if pairs_done % 2 == 0 else SIDES[::-1]
        for name in order:
            if stop_path.exists():
                break
            _trial(sides[name], plan, pairs_done, out_dir, stack_factory)
        if stop_path.exists():
            stopped = "stop_file"
            break
        pairs_done += 1
    return {
        "pairs": pairs_done,
        "stopped": stopped,
        "device": str(device),
        "benchmark_s": time.monotonic() - started,
        "worker": worker_fingerprint(device),
    }


def _run_plan_file(plan_path: Path, out_dir: Path) -> dict[str, Any]:
    return run_pairs(from_dict(ComparisonPlan, json.loads(plan_path.read_text())), out_dir)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchd.runner.pairs PLAN.json OUT_DIR``."""
    return worker_main(argv, "python -m benchd.runner.pairs PLAN.json OUT_DIR", _run_plan_file)


if __name__ == "__main__":
    sys.exit(main())
