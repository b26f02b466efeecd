"""The window sampler and energy/telemetry reports against fake devices and a fake powercap root."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from benchd.devices import FakeDeviceSet, RAPLReader, TelemetrySample, WindowSampler
from benchd.devices.energy import counter_energy, power_energy, summarize_telemetry
from benchd.records import EnergyReport

from .conftest import FakeClock, set_rapl


def sampled(
    config: dict[str, Any],
    clock: FakeClock,
    seconds: float,
    step_s: float = 0.05,
    rapl: RAPLReader | None = None,
) -> WindowSampler:
    """Sample fake devices by hand every ``step_s`` for ``seconds`` of the fake clock."""
    device_set = FakeDeviceSet.from_config(config, clock=clock)
    sampler = WindowSampler(device_set, rapl or RAPLReader("/nonexistent/powercap"), clock=clock)
    for _ in range(round(seconds / step_s) + 1):
        sampler.sample_once()
        clock.advance(step_s)
    return sampler


def test_constant_power_gives_exact_energy(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"power_w": 250}, clock, seconds=4.0, step_s=0.07)
    report = sampler.energy_for_window("cuda:0", t0 + 1.013, t0 + 3.013, samples=1000)
    assert report == EnergyReport(
        measured=True,
        source="fake_energy_counter",
        window_s=pytest.approx(2.0),
        energy_j=pytest.approx(500.0, rel=1e-12),
        energy_per_sample_j=pytest.approx(0.5, rel=1e-12),
        mean_power_w=pytest.approx(250.0, rel=1e-12),
        peak_power_w=pytest.approx(250.0, rel=1e-12),
    )


def test_phases_are_exact_when_edges_do_not_straddle_a_boundary(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"power_w": [{"from_s": 0, "w": 100}, {"from_s": 2, "w": 300}]}, clock, 4.0, 0.5)
    report = sampler.energy_for_window("cuda:0", t0 + 1.0, t0 + 3.0)
    assert report.energy_j == pytest.approx(100.0 + 300.0)
    assert report.mean_power_w == pytest.approx(200.0)
    assert report.peak_power_w == 300.0
    assert report.energy_per_sample_j is None  # samples unknown


def test_counter_reset_inside_the_window_is_bridged_and_noted(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"power_w": 250, "counter_resets_s": [2.02]}, clock, 4.0)
    report = sampler.energy_for_window("cuda:0", t0 + 1.0, t0 + 3.0)
    assert report.measured
    assert report.energy_j == pytest.approx(500.0)
    assert "reset 1 time(s)" in (report.reason or "")


def test_window_shorter_than_the_counter_period_is_flagged_not_zero(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"power_w": 250, "energy_counter_period_s": 0.1}, clock, 1.0, 0.01)
    report = sampler.energy_for_window("cuda:0", t0 + 0.503, t0 + 0.553, samples=10)
    assert report.measured is False
    assert report.energy_j is None
    assert report.window_s == pytest.approx(0.05)
    assert report.reason.startswith(
        "not measured: window 0.050 s is shorter than the energy counter's update"
    )
    longer = sampler.energy_for_window("cuda:0", t0 + 0.2, t0 + 0.8)
    assert longer.measured and longer.energy_j == pytest.approx(150.0, rel=0.05)


def test_idle_counter_is_not_reported_as_zero_joules(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"power_w": 0}, clock, 2.0)
    report = sampler.energy_for_window("cuda:0", t0 + 0.5, t0 + 1.5)
    assert report.measured is False
    assert "did not advance" in report.reason


def test_without_counter_power_is_integrated(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"power_w": 250, "energy_counter": False}, clock, 4.0)
    report = sampler.energy_for_window("cuda:0", t0 + 1.01, t0 + 3.01, samples=4)
    assert report.source == "fake_power_integration"
    assert report.energy_j == pytest.approx(500.0, rel=1e-12)
    assert report.energy_per_sample_j == pytest.approx(125.0)
    averaged = sampled({"power_w": 250, "energy_counter": False, "power_period_s": 1.0}, clock, 2.0)
    t1 = clock() - 2.05
    short = averaged.energy_for_window("cuda:0", t1 + 0.5, t1 + 1.0)
    assert not short.measured and "averaging period (1.000 s)" in short.reason


def test_cpu_without_rapl_is_not_measured(clock: FakeClock, tmp_path: Path) -> None:
    sampler = sampled({}, clock, 1.0, rapl=RAPLReader(tmp_path / "missing"))
    report = sampler.energy_for_window("cpu", clock() - 0.9, clock() - 0.1, samples=8)
    assert report.measured is False
    assert report.energy_j is None and report.mean_power_w is None
    assert report.reason.startswith("not measured: RAPL (")
    assert "not readable on this host" in report.reason
    assert sampler.telemetry_for_window("cpu", clock() - 0.9, clock() - 0.1).mean_power_w is None


def test_cpu_with_rapl_reads_the_package_counters(clock: FakeClock, powercap: Path) -> None:
    device_set = FakeDeviceSet.from_config({"count": 0})
    sampler = WindowSampler(device_set, RAPLReader(powercap), clock=clock)
    t0 = clock()
    for step, (p0, p1) in enumerate([(1_000_000, 2_000_000), (9_000_000, 3_000_000), (1_000_000, 4_000_000)]):
        set_rapl(powercap, "intel-rapl:0", p0)  # package 0 wraps at 10 J between the 2nd and 3rd sample
        set_rapl(powercap, "intel-rapl:1", p1)
        sampler.sample_once()
        if step < 2:
            clock.advance(1.0)
    report = sampler.energy_for_window("cpu", t0, t0 + 2.0, samples=4)
    assert report.measured and report.source == "rapl"
    assert report.energy_j == pytest.approx((8.0 + 1.0) + (2.0 + 1.0))
    assert report.mean_power_w == pytest.approx(6.0)
    assert report.peak_power_w == pytest.approx(9.0)
    assert sampler.telemetry_for_window("cpu", t0, t0 + 2.0).samples == 3


def test_unknown_device_or_uncovered_window_is_not_measured(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"count": 1}, clock, 1.0)
    assert "no telemetry device for cuda:3" in sampler.energy_for_window("cuda:3", t0, t0 + 0.5).reason
    late = sampler.energy_for_window("cuda:0", t0 + 0.5, t0 + 9.0)
    assert not late.measured and "do not cover the window" in late.reason
    assert not sampler.energy_for_window("cuda:0", t0 + 0.5, t0 + 0.5).measured


def test_telemetry_summary_reports_throttling_and_peaks(clock: FakeClock) -> None:
    t0 = clock()
    config = {
        "throttle": [
            {"from_s": 1.0, "to_s": 1.5, "reasons": ["thermal", "idle"]},
            {"from_s": 1.2, "reasons": ["power_cap"]},
        ],
        "temperature_c": 83,
        "utilization_ratio": 0.75,
        "memory_used_bytes": 3_000_000_000,
        "sm_clock_hz": 1.5e9,
    }
    sampler = sampled(config, clock, 3.0, 0.1)
    summary = sampler.telemetry_for_window("cuda", t0 + 0.45, t0 + 2.05)
    assert summary.samples == 16  # 0.5, 0.6, ..., 2.0 s
    assert summary.throttled is True
    assert summary.throttle_reasons == ("power_cap", "thermal")  # idle is not throttling
    assert summary.mean_utilization_ratio == pytest.approx(0.75)
    assert summary.peak_memory_used_bytes == 3_000_000_000
    assert summary.peak_temperature_c == 83
    assert summary.mean_sm_clock_hz == pytest.approx(1.5e9)
    assert summary.mean_power_w == pytest.approx(250.0)
    calm = sampler.telemetry_for_window("cuda:0", t0 + 0.1, t0 + 0.9)
    assert calm.throttled is False and calm.throttle_reasons == ()


def test_short_window_telemetry_uses_the_samples_around_it() -> None:
    series = [
        TelemetrySample(t_mono_s=t, temperature_c=c) for t, c in [(0.0, 50.0), (1.0, 60.0), (2.0, 70.0)]
    ]
    assert summarize_telemetry(series, 1.2, 1.3).peak_temperature_c == 70.0
    assert summarize_telemetry(series, 1.2, 1.3).samples == 2
    assert summarize_telemetry([], 0.0, 1.0).samples == 0


def test_failing_device_is_counted_and_sampling_continues(clock: FakeClock) -> None:
    t0 = clock()
    sampler = sampled({"count": 2, "devices": [{"fail_on": {"energy_mj": "unavailable"}}]}, clock, 1.0)
    assert sampler.errors() == {"cuda:0": 21}
    assert sampler.samples("cuda:0") == []
    assert not sampler.energy_for_window("cuda:0", t0 + 0.1, t0 + 0.9).measured
    assert sampler.energy_for_window("cuda:1", t0 + 0.1, t0 + 0.9).energy_j == pytest.approx(200.0)


def test_sampler_thread_in_real_time_measures_the_scripted_energy() -> None:
    device_set = FakeDeviceSet.from_config({"power_w": 250, "throttle_reasons": ["power_cap"]})
    with WindowSampler(device_set, RAPLReader("/nonexistent"), interval_s=0.01) as sampler:
        start_s = time.monotonic()
        time.sleep(0.3)
        end_s = time.monotonic()
    assert len(sampler.samples("cuda:0")) >= 10
    report = sampler.energy_for_window("cuda:0", start_s, end_s, samples=30)
    assert report.measured
    assert report.energy_j == pytest.approx(250.0 * (end_s - start_s), rel=1e-9)
    summary = sampler.telemetry_for_window("cuda:0", start_s, end_s)
    assert summary.throttled and summary.throttle_reasons == ("power_cap",)
    sampler.stop()  # idempotent


def test_pure_functions_reject_empty_windows() -> None:
    series = [TelemetrySample(t_mono_s=0.0, energy_j=0.0, power_w=1.0), TelemetrySample(1.0, 1.0, 1.0)]
    assert "empty window" in counter_energy(series, 0.5, 0.4, 0, "x").reason
    assert "empty window" in power_energy(series, 0.5, 0.5, 0, "x").reason
    assert counter_energy(series, 0.0, 1.0, 0, "x").energy_j == pytest.approx(1.0)


def _rss_bytes() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


@pytest.mark.slow  # 72,000 sampling rounds of 8 devices (about 20 s on a loaded CPU)
def test_an_hour_of_20_hz_telemetry_on_8_gpus_keeps_memory_flat(clock: FakeClock) -> None:
    device_set = FakeDeviceSet.from_config({"count": 8, "power_w": 250}, clock=clock)
    retain_s, interval_s = 120.0, 0.05
    sampler = WindowSampler(
        device_set, RAPLReader("/nonexistent/powercap"), interval_s=interval_s, clock=clock, retain_s=retain_s
    )
    bound = 8 * (round(retain_s / interval_s) + 2)
    rss_after_warmup = 0
    for step in range(3600 * 20):
        sampler.sample_once()
        clock.advance(interval_s)
        if step == 600 * 20:  # ten minutes in: the buffers have long been full
            rss_after_warmup = _rss_bytes()
    stored = sum(len(sampler.samples(f"cuda:{i}")) for i in range(8))
    assert stored <= bound
    growth_bytes = _rss_bytes() - rss_after_warmup
    assert growth_bytes < 4 * 2**20, f"RSS grew {growth_bytes / 2**20:.1f} MiB over 50 minutes of telemetry"
    # the newest window is still measured exactly
    report = sampler.energy_for_window("cuda:7", clock() - 60.0, clock() - 30.0)
    assert report.measured and report.energy_j == pytest.approx(250.0 * 30.0, rel=1e-9)


def test_windows_older_than_the_buffer_are_not_measured_with_a_reason(clock: FakeClock) -> None:
    device_set = FakeDeviceSet.from_config({"power_w": 250}, clock=clock)
    sampler = WindowSampler(
        device_set, RAPLReader("/nonexistent"), interval_s=0.1, clock=clock, retain_s=10.0
    )
    t0 = clock()
    for _ in range(300):  # 30 s of samples into a 10 s buffer
        sampler.sample_once()
        clock.advance(0.1)
    assert len(sampler.samples("cuda:0")) == sampler.capacity == 102
    old = sampler.energy_for_window("cuda:0", t0 + 1.0, t0 + 25.0)
    assert old.measured is False and old.energy_j is None
    assert "before the oldest sample kept (the buffer holds the last 10 s)" in old.reason
    assert sampler.telemetry_for_window("cuda:0", t0 + 1.0, t0 + 25.0).samples == 0
    recent = sampler.energy_for_window("cuda:0", t0 + 22.05, t0 + 29.05)
    assert recent.measured and recent.energy_j == pytest.approx(250.0 * 7.0, rel=1e-9)
    assert sampler.telemetry_for_window("cuda:0", t0 + 22.05, t0 + 29.05).samples == 70  # 22.1 ... 29.0 s


def test_since_and_latest_read_only_the_newest_samples(clock: FakeClock) -> None:
    sampler = sampled({"count": 2, "power_w": 100}, clock, 2.0, 0.5)  # samples at +0, 0.5, ..., 2.0 s
    t0 = clock() - 2.5
    assert sampler.latest("cuda:1").t_mono_s == pytest.approx(t0 + 2.0)
    assert [s.t_mono_s - t0 for s in sampler.since("cuda:0", t0 + 1.0)] == pytest.approx([1.0, 1.5, 2.0])
    assert sampler.since("cuda:0", t0 + 5.0) == []
    assert sampler.latest("cuda:9") is None and sampler.since("cuda:9", 0.0) == []
    assert sampler.stored_samples() == 10


def test_a_sample_older_than_the_newest_is_refused(clock: FakeClock) -> None:
    from benchd.devices.telemetry_buffer import TelemetryRing

    ring = TelemetryRing(3)
    for t in (1.0, 2.0, 2.0, 3.0):
        assert ring.append(TelemetrySample(t_mono_s=t, power_w=t, memory_used_bytes=7))
    assert ring.append(TelemetrySample(t_mono_s=2.5)) is False
    assert [s.t_mono_s for s in ring.all()] == [2.0, 2.0, 3.0] and ring.dropped == 1
    assert ring.latest() == TelemetrySample(t_mono_s=3.0, power_w=3.0, memory_used_bytes=7)
    with pytest.raises(ValueError, match="at least 2"):
        TelemetryRing(1)


def test_retention_reaches_back_over_the_longest_run() -> None:
    from benchd.devices.meter import DEFAULT_RETAIN_S, retention_s

    assert retention_s(600.0) == DEFAULT_RETAIN_S == 900.0  # the default run timeout fits the default
    assert retention_s(3600.0) == 3660.0
