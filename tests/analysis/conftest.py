"""Synthetic A B A B batches whose true answer is known.

Latencies: a lognormal body around 1 ms plus 5% slow queries around 3 ms (so P99 sits in the tail), per
query. Each pair gets a multiplicative drift shared by both of its trials (clocks, heat), and each trial a
smaller jitter of its own. Pairs run in units (worker processes) of ``pairs_per_unit``; with
``process_offset`` each unit scales its candidate side by its own ``1 + process_offset * N(0, 1)``: an offset
between the sides that is fixed inside a process and differs from process to process (memory layout, load
order), which a twin batch must not mistake for a change. Throughput comes from single-stream timing
(duration = sum of latencies) and energy from a constant power draw.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from benchd.analysis import Trial


def synthetic_latencies(
    rng: np.random.Generator, n: int, *, tail_mult: float = 1.0, body_mult: float = 1.0
) -> np.ndarray:
    latencies = rng.lognormal(np.log(1e-3), 0.1, n) * body_mult
    slow = rng.random(n) < 0.05
    latencies[slow] = rng.lognormal(np.log(3e-3), 0.2, int(slow.sum())) * tail_mult
    return latencies


def synthetic_trials(
    seed: int,
    *,
    pairs: int = 10,
    queries: int = 2000,
    drift: float = 0.03,
    jitter: float = 0.01,
    tail_mult: float = 1.0,
    body_mult: float = 1.0,
    power_w: float = 100.0,
    candidate_power_w: float | None = None,
    energy: bool = True,
    pairs_per_unit: int = 1,
    process_offset: float = 0.0,
) -> list[Trial]:
    """Trials of a batch where the candidate's tail/body latencies are scaled by tail_mult/body_mult."""
    rng = np.random.default_rng(seed)
    trials = []
    offsets: dict[int, float] = {}
    for pair in range(pairs):
        unit = pair // pairs_per_unit
        if unit not in offsets:
            offsets[unit] = 1.0 + process_offset * rng.standard_normal()
        pair_drift = 1.0 + drift * rng.standard_normal()
        for side in ("baseline", "candidate"):
            is_candidate = side == "candidate"
            latencies = synthetic_latencies(
                rng,
                queries,
                tail_mult=tail_mult if is_candidate else 1.0,
                body_mult=body_mult if is_candidate else 1.0,
            )
            latencies *= pair_drift * (1.0 + jitter * rng.standard_normal())
            if is_candidate:
                latencies *= offsets[unit]
            duration_s = float(latencies.sum())
            watts = candidate_power_w if is_candidate and candidate_power_w is not None else power_w
            energy_j = watts * duration_s if energy else None
            trials.append(Trial(side, pair, latencies, queries, duration_s, energy_j, unit=unit))
    return trials


@pytest.fixture
def make_trials() -> Callable[..., list[Trial]]:
    """Factory of synthetic batches (see :func:`synthetic_trials`)."""
    return synthetic_trials


@pytest.fixture
def make_runs() -> Callable[..., list[np.ndarray]]:
    """Factory of stored runs' latencies (seconds): ``make_runs(seed, count, tail_mult=, drift=)``."""

    def make(seed: int, count: int, *, tail_mult: float = 1.0, drift: float = 0.02) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        return [
            synthetic_latencies(rng, 2000, tail_mult=tail_mult) * (1 + drift * rng.standard_normal())
            for _ in range(count)
        ]

    return make
