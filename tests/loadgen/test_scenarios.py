import threading
import time

import numpy as np
import pytest

from benchd.loadgen import run_scenario
from benchd.loadgen.scenarios import (
    StopRule,
    poisson_schedule_ns,
    run_closed_loop,
    run_concurrency,
    run_server,
)
from tests.conftest import quick


def noop(i):
    return None


def test_closed_loop_stops_when_both_minimums_are_met():
    rule = StopRule.from_seconds(0.05, 5.0, 1000, 10**9)
    m = run_closed_loop(noop, rule, capacity=16)  # tiny capacity: the buffer must grow
    assert m.queries >= 1000
    assert m.duration_s >= 0.05
    assert m.latencies_ns.dtype == np.int64 and (m.latencies_ns > 0).all()
    assert m.window_end_mono_s > m.window_start_mono_s


def test_closed_loop_honours_max_query_count_and_max_duration():
    m = run_closed_loop(noop, StopRule.from_seconds(10.0, 20.0, 1, 500), capacity=64)
    assert m.queries == 500
    slow = run_closed_loop(lambda i: time.sleep(0.01), StopRule.from_seconds(0.0, 0.1, 10**6, 10**9))
    assert slow.queries < 20 and 0.1 <= slow.duration_s < 0.5


def test_latencies_of_a_known_sleep_land_where_they_should():
    m = run_closed_loop(lambda i: time.sleep(0.002), StopRule.from_seconds(0.2, 2.0, 50, 10**9))
    lat_s = m.latencies_ns * 1e-9
    assert lat_s.min() >= 0.002  # never faster than the sleep
    assert np.median(lat_s) < 0.002 * 1.5


def test_poisson_schedule_is_seeded_and_has_the_target_rate():
    a = poisson_schedule_ns(1000.0, 20_000, np.random.default_rng(7))
    b = poisson_schedule_ns(1000.0, 20_000, np.random.default_rng(7))
    assert (a == b).all()
    rate = len(a) / (a[-1] * 1e-9)
    assert rate == pytest.approx(1000.0, rel=0.03)
    gaps = np.diff(a) * 1e-9
    assert np.std(gaps) == pytest.approx(np.mean(gaps), rel=0.05)  # exponential: sd == mean


def test_server_counts_latency_from_the_scheduled_time():
    # A 2 ms query at 1000 qps cannot keep up: queries queue and their latency must include the wait.
    rule = StopRule.from_seconds(0.3, 2.0, 50, 10**9)
    m = run_server(lambda i: time.sleep(0.002), rule, target_qps=1000.0, seed=3)
    lat_s = m.latencies_ns * 1e-9
    assert lat_s[-1] > 0.05  # the backlog grew
    assert (m.issue_lag_ns[-10:] > 10_000_000).all()


def test_server_at_a_light_load_has_low_latency_and_is_valid():
    r = run_scenario(
        noop,
        quick("server", target_qps=2000, min_duration_s=0.5, min_query_count=500, latency_bound_s=0.01),
        batch_size=1,
        device="cpu",
    ).result
    assert r.valid, r.invalid_reasons
    assert r.bound_met is True
    assert r.achieved_qps == pytest.approx(2000, rel=0.2)
    assert r.latency.p50_s < 0.001


def test_server_search_finds_a_rate_that_holds_the_bound_and_reverifies_it():
    settings = quick(
        "server",
        target_qps=100,
        min_duration_s=0.4,
        min_query_count=20,
        latency_bound_s=0.01,
        search_max_qps=True,
        latency_percentile=90.0,
    )
    r = run_scenario(lambda i: time.sleep(0.002), settings, batch_size=1, device="cpu").result
    # A 2 ms single server saturates near 500 qps; with a 10 ms p90 bound the answer lies below that.
    assert r.max_valid_qps is not None and 100 <= r.max_valid_qps < 500
    assert r.mlperf_metric == "max_valid_qps"
    assert r.bound_met is True


def test_server_bound_missed_is_invalid_with_the_reason():
    r = run_scenario(
        lambda i: time.sleep(0.002),
        quick("server", target_qps=100, latency_bound_s=0.001, latency_percentile=90.0),
        batch_size=1,
        device="cpu",
    ).result
    assert not r.valid
    assert any("exceeds the bound" in reason for reason in r.invalid_reasons)


def test_concurrency_runs_parallel_streams():
    seen = set()
    lock = threading.Lock()

    def query(i):
        with lock:
            seen.add(threading.get_ident())
        time.sleep(0.001)

    m = run_concurrency(query, StopRule.from_seconds(0.2, 2.0, 50, 10**9), streams=4)
    assert len(seen) == 4
    # four streams of 1 ms sleeps: about 4x a single stream's rate
    assert m.queries / m.duration_s > 2.5 / 0.0011


def test_concurrency_reraises_a_stream_failure():
    def query(i):
        if i == 7:
            raise ValueError("stream failure")

    with pytest.raises(ValueError, match="stream failure"):
        run_concurrency(query, StopRule.from_seconds(1.0, 2.0, 10, 10**9), streams=2)


def test_invalid_when_too_few_queries_for_the_claimed_percentile():
    r = run_scenario(
        lambda i: time.sleep(0.005),
        quick("multi_stream", min_query_count=10, max_query_count=30),
        batch_size=1,
        device="cpu",
    ).result
    assert not r.valid
    assert any("too few to claim p99" in reason for reason in r.invalid_reasons)
    assert r.mlperf_metric == "p99_latency_s"
    assert r.batch_size == 4 and r.samples == r.queries * 4


def test_mlperf_metrics_per_scenario():
    single = run_scenario(noop, quick("single_stream"), batch_size=1, device="cpu").result
    assert single.mlperf_metric == "p90_latency_s" and single.mlperf_value == single.latency.p90_s
    offline = run_scenario(noop, quick("offline"), batch_size=8, device="cpu").result
    assert offline.mlperf_metric == "samples_per_s"
    assert offline.throughput_sps == pytest.approx(offline.throughput_qps * 8)
    assert offline.warmup_queries >= 5
