"""Run one scenario end to end (warm-up, measured phase, optional QPS search) and judge its validity."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from benchd.loadgen.scenarios import (
    Measurement,
    QueryFn,
    StopRule,
    estimate_capacity,
    run_closed_loop,
    run_concurrency,
    run_server,
    run_warmup,
)
from benchd.loadgen.stats import min_queries_for_percentile, percentile_s, summarise_latencies
from benchd.records import LatencySummary, ScenarioResult, ScenarioSettings

logger = logging.getLogger(__name__)

#: The percentile each scenario's MLPerf metric claims (single-stream p90, multi-stream p99).
CLAIMED_PERCENTILE = {"single_stream": 90.0, "multi_stream": 99.0}
#: A server run whose queries were scheduled over less than this share of its window (the rest spent
#: catching up on queued queries) could not sustain the load. Comparing spans rather than counting
#: queries keeps the Poisson count noise of short trials out of the test.
SUSTAIN_RATIO = 0.9
_SEARCH_STEPS = 6
#: Full-length re-verification of a searched rate: tries, and the factor each failed try steps down by.
VERIFY_TRIES, VERIFY_STEP = 5, 0.9


@dataclass
class ScenarioOutcome:
    """A scenario's result plus its raw latencies (int64 ns), which the caller saves."""

    result: ScenarioResult
    latencies_ns: np.ndarray


def _measure(
    query: QueryFn,
    settings: ScenarioSettings,
    rule: StopRule,
    typical_ns: float,
    target_qps: float | None = None,
) -> Measurement:
    streams = settings.concurrency if settings.name == "concurrency" else 1
    capacity = estimate_capacity(rule, typical_ns, streams)
    if settings.name == "server":
        return run_server(query, rule, target_qps or settings.target_qps, settings.seed, capacity)
    if settings.name == "concurrency":
        return run_concurrency(query, rule, settings.concurrency, capacity)
    return run_closed_loop(query, rule, capacity)


def _rule(settings: ScenarioSettings, scale: float = 1.0) -> StopRule:
    return StopRule.from_seconds(
        settings.min_duration_s * scale,
        settings.max_duration_s * max(scale, 0.25),
        max(1, int(settings.min_query_count * scale)),
        settings.max_query_count,
    )


def _server_valid(m: Measurement, settings: ScenarioSettings) -> bool:
    if m.queries == 0:
        return False
    if sustained_ratio(m) < SUSTAIN_RATIO:
        return False
    if settings.latency_bound_s is None:
        return True
    return percentile_s(np.sort(m.latencies_ns), settings.latency_percentile) <= settings.latency_bound_s


def sustained_ratio(m: Measurement) -> float:
    """Share of the window over which queries were scheduled: about 1 when the system kept up."""
    if m.queries == 0 or m.duration_s <= 0:
        return 0.0
    return 1.0 - float(m.latencies_ns[-1]) * 1e-9 / m.duration_s


def search_max_qps(
    query: QueryFn,
    settings: ScenarioSettings,
    typical_ns: float,
    on_progress: Callable[[str], None] | None = None,
) -> float | None:
    """Find the highest Poisson QPS whose latency percentile holds the bound, with short trials.

    Doubles from ``target_qps`` until a trial fails, then bisects between the last pass and the first
    failure. The caller re-verifies the answer with a full-length run. None when even the lowest rate
    tried fails.
    """
    short = _rule(settings, 0.25)
    lo, hi = 0.0, settings.target_qps
    while True:
        if on_progress:
            on_progress(f"search {hi:,.0f} qps")
        if not _server_valid(_measure(query, settings, short, typical_ns, hi), settings):
            break
        lo, hi = hi, hi * 2
        if hi > 1e8:
            return lo
    if lo == 0.0:
        hi_fail, lo = hi, hi / 8
        if not _server_valid(_measure(query, settings, short, typical_ns, lo), settings):
            return None
        hi = hi_fail
    for _ in range(_SEARCH_STEPS):
        mid = (lo + hi) / 2
        if on_progress:
            on_progress(f"search {mid:,.0f} qps")
        if _server_valid(_measure(query, settings, short, typical_ns, mid), settings):
            lo = mid
        else:
            hi = mid
    return lo


def run_scenario(
    query: QueryFn,
    settings: ScenarioSettings,
    *,
    batch_size: int,
    device: str,
    on_progress: Callable[[str], None] | None = None,
) -> ScenarioOutcome:
    """Warm up, search (server with ``search_max_qps``), measure, and build the :class:`ScenarioResult`."""
    warm = run_warmup(query, settings.warmup_queries, settings.warmup_s)
    typical_ns = float(np.median(warm)) if len(warm) else 1e6
    target = settings.target_qps
    max_valid: float | None = None
    if settings.name == "server" and settings.search_max_qps:
        found = search_max_qps(query, settings, typical_ns, on_progress)
        max_valid = found
        trial_qps = found or 0.0  # verified below only when the search found a rate
        # Re-verify at full length (short trials overestimate); step down 10% at a time, at most 5 tries.
        for _ in range(VERIFY_TRIES if found else 0):
            if on_progress:
                on_progress(f"verify {trial_qps:,.0f} qps")
            m = _measure(query, settings, _rule(settings), typical_ns, trial_qps)
            if _server_valid(m, settings):
                target, max_valid = trial_qps, trial_qps
                break
            trial_qps *= VERIFY_STEP
            max_valid = None
        else:
            m = _measure(query, settings, _rule(settings), typical_ns, target)
    else:
        if on_progress:
            on_progress("measure")
        m = _measure(query, settings, _rule(settings), typical_ns, target)
    result = build_result(
        m,
        settings,
        batch_size=batch_size,
        device=device,
        warmup_ns=warm,
        target_qps=target,
        max_valid_qps=max_valid,
    )
    return ScenarioOutcome(result, m.latencies_ns)


def build_result(
    m: Measurement,
    settings: ScenarioSettings,
    *,
    batch_size: int,
    device: str,
    warmup_ns: np.ndarray,
    target_qps: float | None = None,
    max_valid_qps: float | None = None,
) -> ScenarioResult:
    """Turn a measurement into a :class:`ScenarioResult`, with VALID/INVALID and its reasons."""
    name = settings.name
    latency = summarise_latencies(m.latencies_ns)
    spq = settings.samples_per_query_at(batch_size)
    duration_s = m.duration_s
    qps = m.queries / duration_s if duration_s > 0 else 0.0
    reasons: list[str] = []
    if duration_s < settings.min_duration_s:
        reasons.append(
            f"duration {duration_s:.2f}s below min_duration {settings.min_duration_s:g}s "
            f"(max_query_count {settings.max_query_count} reached first)"
        )
    if m.queries < settings.min_query_count:
        reasons.append(
            f"{m.queries} queries below min_query_count {settings.min_query_count} "
            f"(max_duration {settings.max_duration_s:g}s reached first)"
        )
    claimed = CLAIMED_PERCENTILE.get(name, settings.latency_percentile if name == "server" else None)
    if claimed is not None and m.queries < min_queries_for_percentile(claimed):
        reasons.append(
            f"{m.queries} queries are too few to claim p{claimed:g} "
            f"(needs {min_queries_for_percentile(claimed)})"
        )
    bound_met = None
    if name == "server":
        target = target_qps or settings.target_qps
        if settings.latency_bound_s is not None:
            observed = percentile_s(np.sort(m.latencies_ns), settings.latency_percentile)
            bound_met = observed <= settings.latency_bound_s
            if not bound_met:
                reasons.append(
                    f"p{settings.latency_percentile:g} latency {observed * 1e3:.3f} ms exceeds the "
                    f"bound {settings.latency_bound_s * 1e3:.3f} ms at {target:,.0f} qps"
                )
        if m.queries and sustained_ratio(m) < SUSTAIN_RATIO:
            reasons.append(
                f"could not sustain {target:,.0f} qps: queries were still queued when the run "
                f"ended (last query waited {m.latencies_ns[-1] * 1e-9:.3f} s)"
            )
        if settings.search_max_qps and max_valid_qps is None:
            reasons.append("no rate tried held the latency bound")
    metric, value = _mlperf_metric(name, latency, qps, spq, max_valid_qps)
    lag = m.issue_lag_ns
    return ScenarioResult(
        scenario=name,
        batch_size=spq if name == "multi_stream" else batch_size,
        device=device,
        latency=latency,
        queries=m.queries,
        samples=m.queries * spq,
        duration_s=duration_s,
        throughput_qps=qps,
        throughput_sps=qps * spq,
        mlperf_metric=metric,
        mlperf_value=value,
        valid=not reasons,
        invalid_reasons=tuple(reasons),
        warmup_queries=int(len(warmup_ns)),
        warmup_s=float(warmup_ns.sum()) * 1e-9,
        warmup_p50_s=float(np.median(warmup_ns)) * 1e-9 if len(warmup_ns) else None,
        window_start_mono_s=m.window_start_mono_s,
        window_end_mono_s=m.window_end_mono_s,
        target_qps=(target_qps or settings.target_qps) if name == "server" else None,
        achieved_qps=qps if name == "server" else None,
        latency_bound_s=settings.latency_bound_s if name == "server" else None,
        bound_met=bound_met,
        max_valid_qps=max_valid_qps,
        concurrency=settings.concurrency if name == "concurrency" else None,
        samples_per_query=spq,
        issue_lag_p99_s=percentile_s(np.sort(lag), 99.0) if lag is not None and len(lag) else None,
    )


def _mlperf_metric(
    name: str, latency: LatencySummary, qps: float, spq: int, max_valid: float | None
) -> tuple[str, float]:
    if name == "single_stream":
        return "p90_latency_s", latency.p90_s
    if name == "multi_stream":
        return "p99_latency_s", latency.p99_s
    if name == "server":
        return ("max_valid_qps", max_valid) if max_valid is not None else ("achieved_qps", qps)
    if name == "offline":
        return "samples_per_s", qps * spq
    return "queries_per_s", qps
