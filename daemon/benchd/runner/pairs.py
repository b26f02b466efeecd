"""The comparison worker: one unit of a batch, interleaved A B / B A trials of a baseline and a candidate.

``python -m benchd.runner.pairs PLAN.json OUT_DIR`` (``--wait-on-cpus CPUS`` when started before its unit:
see :func:`wait_for_plan`) runs the unit ``plan.unit`` of a
:class:`~benchd.compare.plan.ComparisonPlan`: it pins itself to ``plan.cpus``, loads both model versions
(the baseline first in even units, the candidate first in odd ones, so a load-order effect alternates from
process to process), feeds both the same seeded inputs, warms each up until its latency settles (those
queries are discarded), then runs the unit's pairs. Pair ``i`` runs the baseline first when ``i`` is even
and the candidate first when it is odd (AB, BA, ...), so an order effect inside a pair cancels out too.
With ``plan.block_queries`` (a CPU's default: 1) the two trials of a pair run as one window in which the
sides take turns every ``block_queries`` queries, so a burst of host noise lands on both alike; otherwise
each trial runs whole and starts with a few discarded queries (switching models evicts the other one's
weights from the caches). A trial is sized from the settled latency to hold ``plan.trial_queries`` queries
and ``plan.trial_s`` seconds, up to ``plan.trial_limit_s``. The garbage collector is off while a trial is
timed (a collection before each trial), and the thread count is fixed for the whole unit.

After every trial the raw latencies (int64 ns) go to ``OUT_DIR/trial-<pair>-<side>.npy`` and a JSON line
``{"event": "trial", "unit", "side", "pair_index", "latencies_file", "samples", "duration_s",
"window_start_mono_s", "window_end_mono_s", ...}`` goes to stdout. ``result.json`` holds the unit's summary
(warm-ups, trial sizing, pinning), or ``{"error": {"kind", "message", "side"}}`` (exit status 3) as the run
worker does.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import importlib
import json
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchd.compare.plan import SIDES, ComparisonPlan
from benchd.errors import RunError
from benchd.loadgen.scenarios import (
    Measurement,
    StopRule,
    estimate_capacity,
    run_closed_loop,
    run_concurrency,
    run_server,
)
from benchd.loadgen.warmup import warm_until_settled
from benchd.records import ScenarioSettings, from_dict
from benchd.runner.cpus import parse_cpu_list, pin_process
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

#: The longest fixed warm-up a unit runs before it waits for the latency to settle (seconds).
UNIT_WARMUP_MIN_S = 0.25
#: Queries discarded at the start of every trial (the model was just switched in).
TRIAL_WARMUP_QUERIES = 10
#: Untimed queries at the start of every block of an interleaved pair (the other model just ran), per
#: timed query of the block: a fifth (none in blocks under five, where every query follows the other side's).
BLOCK_WARMUP_SHARE = 0.2
#: How often a pre-started worker looks for its plan (seconds): the most a unit's start waits on it.
PLAN_POLL_S = 0.005


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


def trial_rule(plan: ComparisonPlan, typical_ns: float) -> StopRule:
    """How long a trial runs: ``trial_queries`` queries and ``trial_s`` seconds, at most ``trial_limit_s``.

    A server trial's queries arrive at the target rate, so its length follows from the rate, not the latency.
    """
    settings = plan.scenario
    streams = settings.concurrency if settings.name == "concurrency" else 1
    per_query_s = 1.0 / settings.target_qps if settings.name == "server" else typical_ns * 1e-9 / streams
    wanted_s = max(plan.trial_s, plan.trial_queries * per_query_s)
    limit_s = plan.trial_limit_s
    return StopRule.from_seconds(
        min(wanted_s, limit_s), limit_s, plan.trial_queries, max(plan.trial_queries, settings.max_query_count)
    )


def _trial(
    side: _Side, plan: ComparisonPlan, pair_index: int, out_dir: Path, stack_factory: Any
) -> dict[str, Any]:
    settings = plan.scenario
    rule = trial_rule(plan, side.typical_ns)
    seed = plan.seed + 2 * pair_index + SIDES.index(side.name)
    try:
        with stack_factory():
            if TRIAL_WARMUP_QUERIES and settings.name != "server":
                run_closed_loop(
                    side.query, StopRule(0, 10**9, TRIAL_WARMUP_QUERIES, TRIAL_WARMUP_QUERIES), 16
                )
            gc.collect()
            gc.disable()  # a collection inside the timed window would land in the tail
            try:
                m = _measure(side, settings, rule, seed)
            finally:
                gc.enable()
    except Exception as e:  # noqa: BLE001
        raise SideError(classify_error(e, first_query=False), side.name, side.version) from e
    window = (m.window_start_mono_s, m.window_end_mono_s)
    return _save_trial(side, plan, pair_index, out_dir, m.latencies_ns, m.duration_s, *window)


def _save_trial(
    side: _Side,
    plan: ComparisonPlan,
    pair_index: int,
    out_dir: Path,
    latencies_ns: np.ndarray,
    duration_s: float,
    window_start_mono_s: float,
    window_end_mono_s: float,
    **extra: Any,
) -> dict[str, Any]:
    """Write a trial's latencies to ``trial-<pair>-<side>.npy`` and report it as a ``trial`` event."""
    path = out_dir / f"trial-{pair_index:03d}-{side.name}.npy"
    np.save(path, latencies_ns)
    event = {
        "unit": plan.unit,
        "side": side.name,
        "pair_index": pair_index,
        "latencies_file": str(path),
        "queries": len(latencies_ns),
        "samples": len(latencies_ns) * side.samples_per_query,
        "duration_s": duration_s,
        "window_start_mono_s": window_start_mono_s,
        "window_end_mono_s": window_end_mono_s,
        **extra,
    }
    emit("trial", **event)
    return event


def _pair_done(plan: ComparisonPlan, cap_ns: int, queries: int, busy_ns: int) -> bool:
    """Whether an interleaved pair holds its trials, from the sides' fewest queries and their total busy time.

    Done once each side holds ``trial_queries`` queries and ``trial_s`` seconds on average, or when the pair
    has taken ``cap_ns`` (:func:`_pair_cap_ns`).
    """
    if queries >= max(plan.trial_queries, plan.scenario.max_query_count) or busy_ns >= cap_ns:
        return True
    return queries >= plan.trial_queries and busy_ns >= 2 * plan.trial_s * 1e9


def _pair_cap_ns(plan: ComparisonPlan, sides: tuple[_Side, _Side]) -> int:
    """The most busy time an interleaved pair takes: what its two trials would have taken run whole.

    Run whole, each trial is sized from its own latency within ``trial_limit_s``. When a side is slow enough
    to be cut at the limit, the pair gets the two trials' sized seconds, so a side many times faster than the
    other does not keep the slow one running for its queries; otherwise each side may take up to the limit
    to reach ``trial_queries``, as a whole trial may.
    """
    rules = [trial_rule(plan, side.typical_ns) for side in sides]
    if any(rule.min_duration_ns >= rule.max_duration_ns for rule in rules):
        return sum(rule.min_duration_ns for rule in rules)
    return sum(rule.max_duration_ns for rule in rules)


def _block(query: Any, first_index: int, skip: int, count: int, out: list[int]) -> int:
    """``skip`` untimed queries (the model was just switched in), then ``count`` timed ones into ``out``.

    Returns the nanoseconds the timed queries spanned.
    """
    pc = time.perf_counter_ns
    for i in range(first_index, first_index + skip):
        query(i)
    t_start = t1 = pc()
    for i in range(first_index + skip, first_index + skip + count):
        t0 = pc()
        query(i)
        t1 = pc()
        out.append(t1 - t0)
    return t1 - t_start


def _interleaved_pair(
    order: tuple[_Side, _Side], plan: ComparisonPlan, pair_index: int, out_dir: Path, stack_factory: Any
) -> None:
    """One pair whose sides take turns in blocks of ``plan.block_queries`` queries until both hold a trial.

    A burst of host noise (an interrupt storm, a neighbour's time slice) lasts longer than a block, so it
    lands on both sides alike instead of on whichever trial happened to be running. Each block starts with
    ``block * BLOCK_WARMUP_SHARE`` untimed queries (the other model just ran). The pair ends as
    :func:`_pair_done` says. Each side's trial is its timed queries; its duration is the time its own blocks
    spanned; its window is the pair's (so the parent compares throttling, not energy, for interleaved
    trials).
    """
    cap_ns = _pair_cap_ns(plan, order)
    latencies: dict[str, list[int]] = {side.name: [] for side in order}
    busy_ns = dict.fromkeys(latencies, 0)
    issued = dict.fromkeys(latencies, 0)
    block = plan.block_queries
    skip = int(block * BLOCK_WARMUP_SHARE)
    current: _Side | None = None
    try:
        with stack_factory():
            gc.collect()
            gc.disable()  # a collection inside the timed window would land in the tail
            mono0 = time.monotonic()
            try:
                while not _pair_done(plan, cap_ns, min(map(len, latencies.values())), sum(busy_ns.values())):
                    for current in order:
                        name = current.name
                        busy_ns[name] += _block(current.query, issued[name], skip, block, latencies[name])
                        issued[name] += skip + block
            finally:
                gc.enable()
            mono1 = time.monotonic()
    except Exception as e:  # noqa: BLE001
        side = current or order[0]
        raise SideError(classify_error(e, first_query=False), side.name, side.version) from e
    for side in order:
        values = np.array(latencies[side.name], dtype=np.int64)
        duration_s = busy_ns[side.name] * 1e-9
        _save_trial(side, plan, pair_index, out_dir, values, duration_s, mono0, mono1, block_queries=block)


def run_unit(plan: ComparisonPlan, out_dir: Path) -> dict[str, Any]:
    """Pin, load both versions, warm them up until settled, run the unit's pairs; return its summary."""
    started = time.monotonic()
    pinned = pin_process(plan.candidate.cpus)
    threads = plan.candidate.threads or torch.get_num_threads()
    torch.set_num_threads(threads)  # fixed for the whole unit, whatever the model code asks later
    torch.manual_seed(plan.seed)
    device = resolve_device(plan.device)
    amp_dtype = (torch.float16 if device.type == "cuda" else torch.bfloat16) if plan.candidate.amp else None
    sides = {name: _load_side(plan, name, device, amp_dtype) for name in plan.load_order}
    gc.collect()
    gc.freeze()  # everything loaded so far is permanent: later collections do not walk it

    def stack_factory() -> ExitStack:
        stack = ExitStack()
        stack.enter_context(torch.inference_mode())
        stack.enter_context(autocast_context(device, amp_dtype))
        return stack

    settings = plan.scenario
    emit(
        "warmup", unit=plan.unit, device=str(device), warmup_s=settings.warmup_s, order=list(plan.load_order)
    )
    warmups = {}
    for side in sides.values():
        try:
            with stack_factory():
                # a fresh process: settling decides; the configured seconds only cap the fixed minimum
                minimum_s = min(settings.warmup_s, UNIT_WARMUP_MIN_S)
                limit_s = max(10.0 * settings.warmup_s, 10.0)
                warm = warm_until_settled(side.query, settings.warmup_queries, minimum_s, limit_s)
        except Exception as e:  # noqa: BLE001
            raise SideError(classify_error(e, first_query=False), side.name, side.version) from e
        side.typical_ns = warm.median_ns
        warmups[side.name] = {
            "queries": int(len(warm.latencies_ns)),
            "seconds": warm.duration_s,
            "settled": warm.settled,
            "median_s": side.typical_ns * 1e-9,
        }
    loaded_s = time.monotonic() - started
    for pair_index in plan.pair_indices:
        order = SIDES if pair_index % 2 == 0 else (SIDES[1], SIDES[0])
        if plan.interleaved:
            _interleaved_pair((sides[order[0]], sides[order[1]]), plan, pair_index, out_dir, stack_factory)
            continue
        for name in order:
            _trial(sides[name], plan, pair_index, out_dir, stack_factory)
    rule = trial_rule(plan, max(s.typical_ns for s in sides.values()))
    return {
        "unit": plan.unit,
        "pairs": len(plan.pair_indices),
        "load_order": list(plan.load_order),
        "device": str(device),
        "threads": threads,
        "cpus": sorted(plan.candidate.cpus) if pinned and plan.candidate.cpus else None,
        "warmup": warmups,
        "setup_s": loaded_s,
        "trial_min_queries": rule.min_queries,
        "trial_min_s": rule.min_duration_ns * 1e-9,
        "trial_limit_s": plan.trial_limit_s,
        "block_queries": plan.block_queries if plan.interleaved else 0,
        "benchmark_s": time.monotonic() - started - loaded_s,
        "worker": worker_fingerprint(device),
    }


def _run_plan_file(plan_path: Path, out_dir: Path, prestarted: bool = False) -> dict[str, Any]:
    summary = run_unit(from_dict(ComparisonPlan, json.loads(plan_path.read_text())), out_dir)
    return {**summary, "prestarted": prestarted}


def wait_for_plan(plan_path: Path, cpus: tuple[int, ...] | None, poll_s: float = PLAN_POLL_S) -> None:
    """Wait as a pre-started worker until ``plan_path`` appears (renamed into place when the unit starts).

    Meanwhile, on ``cpus`` (benchd's own, off the timed ones), it imports what loading a model needs.

    The parent ends a worker it no longer needs; a worker whose parent died is ended by its supervisor.
    """
    pin_process(cpus)
    with contextlib.suppress(ImportError):  # torch.export's archive loader: the slowest import of a load
        importlib.import_module("torch.export.pt2_archive._package")
    while not plan_path.exists():
        time.sleep(poll_s)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m benchd.runner.pairs PLAN.json OUT_DIR [--wait-on-cpus CPUS]``.

    With ``--wait-on-cpus`` (a CPU list, or empty for no pinning) the worker was started before its unit:
    it waits for ``PLAN.json`` (:func:`wait_for_plan`) before it runs it.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    prestarted = len(args) == 4 and args[2] == "--wait-on-cpus"
    if prestarted:
        wait_for_plan(Path(args[0]), parse_cpu_list(args[3]) if args[3] else None)
        args = args[:2]
    usage = "python -m benchd.runner.pairs PLAN.json OUT_DIR [--wait-on-cpus CPUS]"
    return worker_main(args, usage, functools.partial(_run_plan_file, prestarted=prestarted))


if __name__ == "__main__":
    sys.exit(main())
