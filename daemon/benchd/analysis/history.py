"""The weaker verdict: candidate runs compared against stored baseline runs, without an interleaved batch.

Stored runs were measured at different times, so drift between them is not cancelled by pairing. Each
stored run counts as one trial; the bootstrap resamples runs on each side independently (then queries within
each run), and the verdict is labelled ``method="history"``, ``weaker=True``. It is always final: no more
runs can be added, so an undecided metric is ``inconclusive``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from benchd.analysis.metrics import (
    DEFAULT_N_BOOT,
    LATENCY_PERCENTILES,
    MIN_CLUSTERS_TO_DECIDE,
    ClusterData,
    InsufficientDataError,
    ThresholdsArg,
    evaluate_metric,
    metric_rng,
    thresholds_for,
)
from benchd.analysis.verdict import min_effect_notes
from benchd.records import Verdict

HISTORY_METRICS = ("p99_latency", "p50_latency")


def decide_from_history(
    baseline_runs: Sequence[np.ndarray],
    candidate_runs: Sequence[np.ndarray],
    thresholds_by_metric: ThresholdsArg = None,
    *,
    metrics: Sequence[str] = HISTORY_METRICS,
    n_boot: int = DEFAULT_N_BOOT,
    seed: int = 0,
    min_runs: int = MIN_CLUSTERS_TO_DECIDE,
    model: str = "",
    candidate_version: str = "",
    baseline_version: str = "",
    scenario: str = "",
    batch_size: int = 1,
    device: str = "",
    decided_unix_s: float = 0.0,
) -> Verdict:
    """Compare stored runs' per-query latencies (seconds, one array per run) of two versions.

    With fewer than ``min_runs`` runs on either side nothing is decided (one run says nothing about
    run-to-run drift), so every metric is ``inconclusive``. ``pairs`` in each metric verdict holds the
    smaller side's run count.

    Raises:
        InsufficientDataError: a side has no run, or a run has no latencies.
        ValueError: a metric other than a latency percentile (stored runs here carry latencies only).
    """
    for metric in metrics:
        if metric not in LATENCY_PERCENTILES:
            raise ValueError(f"history comparison supports {', '.join(LATENCY_PERCENTILES)}, not {metric!r}")
    if not baseline_runs or not candidate_runs:
        raise InsufficientDataError(
            "history", f"{len(baseline_runs)} baseline and {len(candidate_runs)} candidate runs"
        )
    baseline_lat = [np.asarray(r, dtype=np.float64).ravel() for r in baseline_runs]
    candidate_lat = [np.asarray(r, dtype=np.float64).ravel() for r in candidate_runs]
    if any(len(r) == 0 for r in baseline_lat + candidate_lat):
        raise InsufficientDataError("history", "a stored run has no latencies")
    notes = ["weaker: compared against stored history, not an interleaved batch"]
    if min(len(baseline_lat), len(candidate_lat)) < min_runs:
        notes.append(
            f"{len(baseline_lat)} baseline and {len(candidate_lat)} candidate runs; "
            f"at least {min_runs} per side are needed to decide"
        )
    verdicts = []
    for metric in metrics:
        th = thresholds_for(metric, thresholds_by_metric)
        mv = evaluate_metric(
            metric,
            ClusterData.of_latencies(metric, baseline_lat),
            ClusterData.of_latencies(metric, candidate_lat),
            th,
            n_boot=n_boot,
            rng=metric_rng(seed, metric),
            final=True,
            min_clusters=max(1, min_runs),
        )
        verdicts.append(mv)
        notes.extend(min_effect_notes(mv, th))
    return Verdict(
        model=model,
        candidate_version=candidate_version,
        baseline_version=baseline_version,
        scenario=scenario,
        batch_size=batch_size,
        device=device,
        method="history",
        metrics=tuple(verdicts),
        decided_unix_s=decided_unix_s,
        weaker=True,
        note="; ".join(notes),
    )
