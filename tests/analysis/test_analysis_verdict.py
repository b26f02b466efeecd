from __future__ import annotations

import json

import numpy as np
import pytest

from benchd.analysis import (
    InsufficientDataError,
    LookSchedule,
    Thresholds,
    Trial,
    decide,
    decide_metric,
    pair_trials,
    should_continue,
)
from benchd.records import MetricVerdict, Verdict, to_dict


def by_metric(verdict: Verdict) -> dict[str, MetricVerdict]:
    return {mv.metric: mv for mv in verdict.metrics}


def test_identical_versions_are_unchanged_on_every_metric(make_trials):
    verdict = decide(make_trials(1), final=True, candidate_version="v2", baseline_version="v1")
    assert [mv.metric for mv in verdict.metrics] == [
        "p99_latency",
        "p50_latency",
        "throughput",
        "energy_per_sample",
    ]
    assert {mv.state for mv in verdict.metrics} == {"unchanged"}
    assert verdict.state == "unchanged"
    assert verdict.method == "paired" and not verdict.weaker
    p99 = verdict.metrics[0]
    assert p99.ratio_low <= p99.ratio <= p99.ratio_high
    # the ratio is a trimmed mean, the side values geometric means: close, not equal
    assert p99.ratio == pytest.approx(p99.candidate_value / p99.baseline_value, rel=0.02)
    assert (p99.pairs, p99.n_baseline, p99.n_candidate) == (10, 20_000, 20_000)
    assert (p99.threshold, p99.min_effect) == (0.10, 0.05)


def test_twins_rarely_raise_a_false_alarm_despite_drift_between_pairs(make_trials):
    false_alarms = 0
    for seed in range(50):
        trials = make_trials(seed, drift=0.06, jitter=0.02)
        verdict = decide(trials, metrics=("p99_latency", "p50_latency"), final=True)
        false_alarms += verdict.state in ("regressed", "improved")
    assert false_alarms <= 2


def _sequential(trials: list[Trial], schedule: LookSchedule, metrics: tuple[str, ...]) -> Verdict:
    """Decide after every unit from the first look on; stop at the first decision, as a batch does."""
    for units in range(schedule.min_units, schedule.max_units + 1):
        batch = [t for t in trials if t.unit_key < units]
        verdict = decide(batch, metrics=metrics, schedule=schedule)
        if not should_continue(verdict, units, schedule.min_units, schedule.max_units, 0.0, 60.0):
            return decide(batch, metrics=metrics, schedule=schedule, final=True)
    raise AssertionError("the schedule never ended")


def test_twins_stay_quiet_when_checked_after_every_unit(make_trials):
    # Sequential looks (decide after each unit, stop once decided) must not inflate false alarms.
    schedule = LookSchedule(3, 20)
    outcomes = []
    for seed in range(40):
        trials = make_trials(seed, pairs=20, drift=0.06, jitter=0.03, queries=1000)
        outcomes.append(_sequential(trials, schedule, ("p99_latency",)).state)
    assert outcomes.count("regressed") + outcomes.count("improved") == 0
    assert outcomes.count("unchanged") >= 36


def _covers_one(mv: MetricVerdict) -> bool:
    return mv.ratio_low <= 1.0 <= mv.ratio_high


def test_a_per_process_offset_is_covered_when_the_process_is_the_unit(make_trials):
    # A/A: identical versions, but each worker process gives the candidate side its own fixed offset (sd 3%)
    # that its pairs cannot see. Spread over 8 processes and with the process as the unit, the 95% intervals
    # still cover 1.0; all pairs in one process (the pairs as units: what the batch did before), they do not.
    by_process, one_process = {"p99_latency": 0, "p50_latency": 0}, {"p99_latency": 0, "p50_latency": 0}
    batches = 200
    for seed in range(batches):
        trials = make_trials(seed, pairs=16, pairs_per_unit=2, process_offset=0.03, queries=500, jitter=0.02)
        single = make_trials(seed, pairs=16, pairs_per_unit=16, process_offset=0.03, queries=500, jitter=0.02)
        as_pairs = [Trial(t.side, t.pair_index, t.latencies_s, t.samples, t.duration_s) for t in single]
        for metric in by_process:
            by_process[metric] += _covers_one(decide_metric(metric, trials, final=True))
            one_process[metric] += _covers_one(decide_metric(metric, as_pairs, final=True))
    assert by_process["p99_latency"] >= 0.93 * batches and by_process["p50_latency"] >= 0.93 * batches
    assert one_process["p50_latency"] < 0.75 * batches


def test_the_interval_holds_its_coverage_over_sequential_looks(make_trials):
    # Twins with per-process offsets, decided after every unit and stopped once decided: the interval the
    # batch stops with covers 1.0 at least 95% of the time; a fixed 95% interval read at every look does not.
    schedule = LookSchedule(3, 16)
    fixed = LookSchedule(3, 3)  # the first look's (single-look) level at every look: no spending
    covered, covered_fixed, batches = 0, 0, 200
    for seed in range(batches):
        trials = make_trials(seed, pairs=16, process_offset=0.02, drift=0.05, queries=400, jitter=0.05)
        covered += _covers_one(_sequential(trials, schedule, ("p50_latency",)).metrics[0])
        stopped = None
        for units in range(3, 17):
            batch = [t for t in trials if t.unit_key < units]
            mv = decide_metric("p50_latency", batch, Thresholds(0.01, 0.005), schedule=fixed)
            if not _covers_one(mv):
                stopped = mv
                break
        covered_fixed += stopped is None
    assert covered >= 0.95 * batches
    assert covered_fixed < 0.90 * batches


def test_the_interval_is_a_t_interval_of_the_units_log_ratios():
    # Known answer: unit values log(1.1) + e_u, e_u = -0.02, 0, +0.02 (one pair per unit, noise-free trials).
    trials = []
    for unit, e in enumerate((-0.02, 0.0, 0.02)):
        base = np.full(200, 1e-3)
        trials.append(Trial("baseline", unit, base, 200, 0.2, unit=unit))
        trials.append(Trial("candidate", unit, base * 1.1 * np.exp(e), 200, 0.2, unit=unit))
    schedule = LookSchedule(3, 10)
    mv = decide_metric("p50_latency", trials, schedule=schedule)
    assert mv.ratio == pytest.approx(1.1)
    half = schedule.critical_value(3) * 0.02 / np.sqrt(3)
    assert (mv.ratio_low, mv.ratio_high) == pytest.approx((1.1 * np.exp(-half), 1.1 * np.exp(half)))
    assert mv.ratio == pytest.approx(mv.candidate_value / mv.baseline_value)


def _unit_trials(unit_logs: np.ndarray, queries: int = 200) -> list[Trial]:
    """Noise-free trials, one pair per unit, the log ratio of unit ``u`` being ``unit_logs[u]``."""
    trials = []
    for unit, d in enumerate(unit_logs):
        base = np.full(queries, 1e-3)
        trials.append(Trial("baseline", unit, base, queries, 0.2, unit=unit))
        trials.append(Trial("candidate", unit, base * np.exp(d), queries, 0.2, unit=unit))
    return trials


def test_the_interval_is_yuens_trimmed_interval_of_the_units_log_ratios():
    # Known answer: ten units, 20% trimmed: the two smallest and two largest are cut from the mean and
    # winsorized (pulled in to the nearest kept value) for the standard error, with h - 1 = 5 df.
    logs = np.log(1.1) + np.array([-0.5, -0.3, -0.02, -0.01, 0.0, 0.0, 0.01, 0.02, 0.4, 0.9])
    schedule = LookSchedule(4, 12)
    mv = decide_metric("p50_latency", _unit_trials(logs), schedule=schedule)
    kept = np.sort(logs)[2:8]
    winsorized = np.clip(logs, kept[0], kept[-1])
    se = np.sqrt(9 * np.var(winsorized, ddof=1) / (6 * 5))
    half = schedule.critical_value(10, df=5) * se
    assert mv.ratio == pytest.approx(np.exp(kept.mean()))
    expected = (np.exp(kept.mean() - half), np.exp(kept.mean() + half))
    assert (mv.ratio_low, mv.ratio_high) == pytest.approx(expected)
    assert mv.state == "regressed"  # the two wild units on either side do not hide a clean +10%


def test_heavy_tailed_units_keep_their_coverage_and_get_a_narrower_interval():
    # A/A units as a CPU host gives them at P99: most within 2%, one in six jumps by 20-40% either way when
    # host interrupts put one side's P99 on a stall. Decided sequentially, the trimmed interval still covers
    # 1.0 at least 95% of the time and decides twins unchanged far more often than the plain mean would.
    rng = np.random.default_rng(7)
    schedule = LookSchedule(4, 18)
    covered, unchanged, trimmed_widths, plain_widths, batches = 0, 0, [], [], 300
    for _ in range(batches):
        wild = rng.random(18) < 1 / 6
        logs = np.where(wild, rng.choice([-1, 1], 18) * rng.uniform(0.2, 0.4, 18), rng.normal(0, 0.02, 18))
        trials = _unit_trials(logs)
        verdict = _sequential(trials, schedule, ("p99_latency",))
        covered += _covers_one(verdict.metrics[0])
        unchanged += verdict.metrics[0].state == "unchanged"
        full = decide_metric("p99_latency", trials, schedule=schedule.fixed())
        trimmed_widths.append(np.log(full.ratio_high / full.ratio_low))
        plain_widths.append(2 * schedule.fixed().critical_value(18) * np.std(logs, ddof=1) / np.sqrt(18))
    assert covered >= 0.95 * batches
    assert unchanged >= 0.80 * batches
    assert np.median(trimmed_widths) < 0.75 * np.median(plain_widths)


def test_tail_regression_of_25_percent_is_caught(make_trials):
    states = [decide_metric("p99_latency", make_trials(s, tail_mult=1.25)).state for s in range(20)]
    assert states.count("regressed") >= 19
    p50 = decide_metric("p50_latency", make_trials(0, tail_mult=1.25), final=True)
    assert p50.state == "unchanged"


def test_three_percent_everywhere_is_never_regressed_at_ten_percent(make_trials):
    for seed in range(50):
        trials = make_trials(seed, tail_mult=1.03, body_mult=1.03)
        verdict = decide(trials, metrics=("p99_latency", "p50_latency"), final=True)
        assert verdict.state != "regressed", seed


def test_tail_improvement_is_improved(make_trials):
    mv = decide_metric("p99_latency", make_trials(3, tail_mult=0.75))
    assert mv.state == "improved"
    assert mv.ratio_high < 1 - mv.min_effect


def test_undecided_asks_for_more_pairs_then_is_inconclusive_when_final(make_trials):
    # +8%: above m = 5% but not clearly, and not within t = 10% either, with few noisy pairs.
    trials = make_trials(7, pairs=4, jitter=0.04, tail_mult=1.08, body_mult=1.08)
    more = decide_metric("p99_latency", trials)
    assert more.state == "more"
    assert more.ratio_low < 1 + more.min_effect and more.ratio_high > 1 + more.threshold
    final = decide_metric("p99_latency", trials, final=True)
    assert final.state == "inconclusive"
    assert (final.ratio_low, final.ratio_high) == (more.ratio_low, more.ratio_high)
    assert decide(trials, final=True).state == "inconclusive"


def test_a_single_pair_never_decides(make_trials):
    trials = make_trials(0, pairs=1, tail_mult=2.0)
    assert decide_metric("p99_latency", trials).state == "more"
    assert decide_metric("p99_latency", trials, final=True).state == "inconclusive"


def test_throughput_regresses_when_it_drops(make_trials):
    slower = by_metric(decide(make_trials(2, tail_mult=1.25, body_mult=1.25)))["throughput"]
    assert slower.higher_is_better
    assert slower.ratio == pytest.approx(0.8, abs=0.03)
    assert slower.ratio_high < 1 - slower.min_effect
    assert slower.state == "regressed"
    faster = by_metric(decide(make_trials(2, tail_mult=0.75, body_mult=0.75)))["throughput"]
    assert faster.state == "improved" and faster.ratio > 1.2


def test_energy_per_sample_regression_alone(make_trials):
    verdict = by_metric(decide(make_trials(4, candidate_power_w=130.0)))
    energy = verdict["energy_per_sample"]
    assert energy.state == "regressed"
    assert energy.ratio == pytest.approx(1.3, abs=0.03)
    assert energy.baseline_value == pytest.approx(100.0 * 1.13e-3, rel=0.1)  # J/sample = W x mean latency
    assert verdict["p99_latency"].state == "unchanged"


def test_unmeasured_energy_is_left_out_with_a_note(make_trials):
    trials = make_trials(0, energy=False)
    verdict = decide(trials)
    assert "energy_per_sample" not in by_metric(verdict)
    assert "energy_per_sample left out: energy not measured" in verdict.note
    with pytest.raises(InsufficientDataError, match="energy not measured"):
        decide_metric("energy_per_sample", trials)


def _drifting_scaled_batch(drift: float, ratio: float, pairs: int = 10) -> list[Trial]:
    """Each pair: the same base latencies scaled by an alternating drift, the candidate by drift x ratio."""
    rng = np.random.default_rng(11)
    trials = []
    for pair in range(pairs):
        scale = 1.0 + (drift if pair % 2 else -drift)
        base = np.sort(rng.lognormal(np.log(1e-3), 0.05, 4000)) * scale
        trials.append(Trial("baseline", pair, base, 4000, float(base.sum())))
        trials.append(Trial("candidate", pair, base * ratio, 4000, float(base.sum()) * ratio))
    return trials


def test_min_effect_is_raised_to_the_baselines_trial_to_trial_noise():
    quiet = decide_metric("p99_latency", _drifting_scaled_batch(0.0, 1.10), final=True)
    assert quiet.min_effect == 0.05
    assert quiet.state == "regressed"
    noisy_trials = _drifting_scaled_batch(0.5, 1.12)
    noisy = decide_metric("p99_latency", noisy_trials, final=True)
    per_trial_p99 = [
        np.sort(t.latencies_s)[int(np.ceil(0.99 * 4000)) - 1] for t in noisy_trials if t.side == "baseline"
    ]
    cv = np.std(per_trial_p99, ddof=1) / np.mean(per_trial_p99)
    # m is the noise the baseline's units leave on the batch's mean: cv / sqrt(units), one pair per unit here
    assert noisy.min_effect == pytest.approx(cv / np.sqrt(10)) and noisy.min_effect > 0.15
    # Pairing still cancels the drift (a tight interval at 1.12), but 12% is below the noise: no verdict.
    assert 1.05 < noisy.ratio_low <= noisy.ratio_high < 1.15
    assert noisy.state == "inconclusive"
    verdict = decide(noisy_trials, metrics=("p99_latency",))
    assert "p99_latency: min_effect raised from 0.050" in verdict.note


def test_thresholds_per_metric_apply():
    trials = _drifting_scaled_batch(0.0, 1.10)
    verdict = decide(
        trials,
        {"p99_latency": Thresholds(threshold=0.2, min_effect=0.15)},
        metrics=("p99_latency", "p50_latency"),
    )
    p99, p50 = verdict.metrics
    assert (p99.threshold, p99.min_effect, p99.state) == (0.2, 0.15, "unchanged")
    assert (p50.threshold, p50.state) == (0.10, "regressed")
    with pytest.raises(ValueError):
        Thresholds(threshold=0.0)


def test_deterministic(make_trials):
    trials = make_trials(5, pairs=6)
    assert decide(trials) == decide(trials)


def test_incomplete_pairs_are_left_out(make_trials):
    trials = make_trials(0, pairs=5)
    extra = Trial("baseline", 99, np.full(100, 1e-3), 100, 0.1)
    assert [p.index for p in pair_trials([*trials, extra])] == [0, 1, 2, 3, 4]
    assert decide_metric("p99_latency", [*trials, extra]).pairs == 5
    with pytest.raises(InsufficientDataError, match="no complete"):
        decide([extra])


def test_trial_validates_and_freezes_latencies():
    with pytest.raises(ValueError, match="side"):
        Trial("control", 0, np.ones(3), 3, 1.0)
    source = np.ones(3)
    trial = Trial("baseline", 0, source, 3, 1.0)
    source[0] = 5.0
    assert trial.latencies_s[0] == 1.0
    with pytest.raises(ValueError):
        trial.latencies_s[0] = 2.0


def test_verdict_is_stored_with_its_inputs_as_plain_json(make_trials):
    verdict = decide(make_trials(0, pairs=3), final=True, candidate_version="v2", baseline_version="v1")
    doc = json.loads(json.dumps(to_dict(verdict), allow_nan=False))
    p99 = doc["metrics"][0]
    assert {
        "pairs",
        "n_baseline",
        "n_candidate",
        "ratio_low",
        "ratio_high",
        "min_effect",
        "threshold",
    } <= p99.keys()


def _mv(metric: str, state: str) -> MetricVerdict:
    return MetricVerdict(metric, state, 1.0, 0.9, 1.1, 1.0, 1.0, 0.1, 0.05, 5)


@pytest.mark.parametrize(
    ("states", "done", "elapsed_s", "unit_s", "primary_only", "expected"),
    [
        ({"p99_latency": "more"}, 5, 10.0, 0.0, False, True),
        ({"p99_latency": "unchanged", "p50_latency": "more"}, 5, 10.0, 0.0, False, True),
        ({"p99_latency": "unchanged", "p50_latency": "more"}, 5, 10.0, 0.0, True, False),
        ({"p99_latency": "regressed", "p50_latency": "unchanged"}, 5, 10.0, 0.0, False, False),
        ({"p99_latency": "unchanged"}, 2, 10.0, 0.0, False, True),  # below min_units
        ({"p99_latency": "more"}, 20, 10.0, 0.0, False, False),  # max_units reached
        ({"p99_latency": "more"}, 5, 60.0, 0.0, False, False),  # time cap reached
        ({"p99_latency": "more"}, 5, 55.0, 6.0, False, False),  # the next unit would pass the cap
        ({"p99_latency": "more"}, 2, 61.0, 0.0, False, False),  # cap wins over min_units
    ],
)
def test_should_continue(states, done, elapsed_s, unit_s, primary_only, expected):
    mvs = [_mv(metric, state) for metric, state in states.items()]
    result = should_continue(mvs, done, 3, 20, elapsed_s, 60.0, unit_s=unit_s, primary_only=primary_only)
    assert result is expected
