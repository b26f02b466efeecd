from __future__ import annotations

import numpy as np
import pytest

from benchd.analysis import InsufficientDataError, decide_from_history


def test_history_verdict_is_labelled_weaker(make_runs):
    verdict = decide_from_history(
        make_runs(0, 4), make_runs(1, 4, tail_mult=1.4), candidate_version="v3", baseline_version="v2"
    )
    assert verdict.method == "history" and verdict.weaker
    assert "weaker" in verdict.note
    p99, p50 = verdict.metrics
    assert p99.state == "regressed" and p99.ratio_low > 1 + p99.min_effect
    assert p50.state == "unchanged"
    assert (p99.pairs, p99.n_baseline, p99.n_candidate) == (4, 8000, 8000)


def test_history_of_twins_is_not_a_regression(make_runs):
    for seed in range(10):
        verdict = decide_from_history(make_runs(2 * seed, 4), make_runs(2 * seed + 1, 4), seed=seed)
        assert verdict.state in ("unchanged", "inconclusive")


def test_history_is_always_final_and_one_run_a_side_decides_nothing(make_runs):
    verdict = decide_from_history(make_runs(0, 1), make_runs(1, 1, tail_mult=2.0))
    assert {mv.state for mv in verdict.metrics} == {"inconclusive"}
    assert "at least 2 per side" in verdict.note
    assert "more" not in {
        mv.state for mv in decide_from_history(make_runs(0, 2), make_runs(1, 2, tail_mult=1.08)).metrics
    }


def test_history_rejects_what_it_cannot_compare(make_runs):
    with pytest.raises(ValueError, match="history comparison supports"):
        decide_from_history(make_runs(0, 2), make_runs(1, 2), metrics=("throughput",))
    with pytest.raises(InsufficientDataError):
        decide_from_history([], make_runs(1, 2))
    with pytest.raises(InsufficientDataError):
        decide_from_history([np.array([])], make_runs(1, 2))
