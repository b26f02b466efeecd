"""Energy and telemetry of a measured window, computed from sampled series: pure functions.

The sampler (``meter.WindowSampler``) records :class:`TelemetrySample` series in the parent process; the
child reports its window as ``time.monotonic()`` seconds. Here:

- :func:`counter_energy` interpolates a cumulative energy counter (NVML ``TotalEnergyConsumption``, RAPL)
  linearly at the window edges and takes the delta. A counter that goes backwards was reset (driver
  reload, GPU reset): the interval around the reset is estimated from the power readings (or from the
  counter's value since it restarted from 0), and the report's ``reason`` says so.
- :func:`power_energy` integrates sampled power (trapezoids, interpolated at the edges) for devices
  without a counter.
- Either returns ``measured=False`` with a reason, never 0 J, when the window is shorter than the
  counter's update period (or the power reading's averaging period), the samples do not cover the
  window, or the counter did not move.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Sequence
from statistics import fmean

from benchd.devices.base import THROTTLE_REASONS, THROTTLING_REASONS, TelemetrySample
from benchd.records import EnergyReport, TelemetrySummary

NOT_MEASURED = "not measured"


def not_measured(reason: str, window_s: float = 0.0, source: str = "none") -> EnergyReport:
    """Return a report that says "not measured" and why."""
    return EnergyReport(measured=False, source=source, reason=f"{NOT_MEASURED}: {reason}", window_s=window_s)


def _interp(ts: Sequence[float], vs: Sequence[float], t: float) -> float:
    """Linear interpolation of the series (ts ascending) at ``t``, which must lie within ``ts``."""
    i = bisect.bisect_left(ts, t)
    if i < len(ts) and ts[i] == t:
        return vs[i]
    t0, t1, v0, v1 = ts[i - 1], ts[i], vs[i - 1], vs[i]
    return v0 + (v1 - v0) * (t - t0) / (t1 - t0)


def _covering(
    series: Sequence[TelemetrySample],
    start_s: float,
    end_s: float,
    value: Callable[[TelemetrySample], float | None],
) -> tuple[list[float], list[float]] | None:
    """Return (times, values) of the samples that have ``value``, or None if they do not cover the window."""
    points = [(s.t_mono_s, v) for s in series if (v := value(s)) is not None]
    points.sort(key=lambda p: p[0])
    if not points or points[0][0] > start_s or points[-1][0] < end_s:
        return None
    # several samples can share a timestamp (coarse clocks); keep the last of each
    dedup: dict[float, float] = {}
    for t, v in points:
        dedup[t] = v
    ts = sorted(dedup)
    return ts, [dedup[t] for t in ts]


def _unwrap(
    ts: Sequence[float], values: Sequence[float], power_w: dict[float, float | None]
) -> tuple[list[float], int]:
    """Make a cumulative counter monotonic across resets; return the series and the number of resets.

    The counter restarted from 0 somewhere between the two samples around a reset. Where both samples
    carry a power reading, the energy of that interval is estimated from them; otherwise only what the
    counter shows since the restart is counted (a lower bound).
    """
    out = list(values[:1])
    resets = 0
    for i in range(1, len(values)):
        delta = values[i] - values[i - 1]
        if delta < 0:
            resets += 1
            p0, p1 = power_w.get(ts[i - 1]), power_w.get(ts[i])
            estimate = None if p0 is None or p1 is None else (p0 + p1) / 2.0 * (ts[i] - ts[i - 1])
            delta = values[i] if estimate is None else estimate
        out.append(out[-1] + delta)
    return out, resets


def _edge_window(ts: Sequence[float], start_s: float, end_s: float) -> tuple[int, int]:
    """Indices [lo, hi] of the samples bracketing the window (last at/before start, first at/after end)."""
    lo = bisect.bisect_right(ts, start_s) - 1
    hi = bisect.bisect_left(ts, end_s)
    return max(lo, 0), min(hi, len(ts) - 1)


def _peak_power(series: Sequence[TelemetrySample], start_s: float, end_s: float) -> float | None:
    covered = _covering(series, start_s, end_s, lambda s: s.power_w)
    if covered is None:
        return None
    ts, ps = covered
    inside = [p for t, p in zip(ts, ps, strict=True) if start_s < t < end_s]
    return max([*inside, _interp(ts, ps, start_s), _interp(ts, ps, end_s)])


def _finish(
    energy_j: float, window_s: float, samples: int, source: str, peak_w: float | None, reason: str | None
) -> EnergyReport:
    mean_w = energy_j / window_s
    return EnergyReport(
        measured=True,
        source=source,
        reason=reason,
        window_s=window_s,
        energy_j=energy_j,
        energy_per_sample_j=energy_j / samples if samples > 0 else None,
        mean_power_w=mean_w,
        peak_power_w=max(peak_w, mean_w) if peak_w is not None else mean_w,
    )


def _refuse_window(window_s: float, min_window_s: float, period: str, source: str) -> EnergyReport | None:
    """A "not measured" report for an empty window or one shorter than ``period``; None when usable."""
    if window_s <= 0.0:
        return not_measured(f"empty window ({window_s:.6f} s)", max(window_s, 0.0), source)
    if window_s < min_window_s:
        return not_measured(
            f"window {window_s:.3f} s is shorter than {period} ({min_window_s:.3f} s)", window_s, source
        )
    return None


def counter_energy(
    series: Sequence[TelemetrySample],
    start_s: float,
    end_s: float,
    samples: int,
    source: str,
    min_window_s: float = 0.0,
) -> EnergyReport:
    """Energy of ``[start_s, end_s]`` from a cumulative counter series (``energy_j``).

    Args:
        series: samples with ``energy_j`` (J, cumulative); ``power_w`` where known gives the peak.
        start_s: window start, monotonic seconds.
        end_s: window end, monotonic seconds.
        samples: inference samples processed in the window (for J/sample); 0 if unknown.
        source: the report's ``source`` label.
        min_window_s: the counter's update period; a shorter window is not measured.
    """
    window_s = end_s - start_s
    refused = _refuse_window(window_s, min_window_s, "the energy counter's update period", source)
    if refused is not None:
        return refused
    covered = _covering(series, start_s, end_s, lambda s: s.energy_j)
    if covered is None:
        return not_measured("energy samples do not cover the window (sampler not running?)", window_s, source)
    ts, raw = covered
    lo, hi = _edge_window(ts, start_s, end_s)
    ts = ts[lo : hi + 1]
    values, resets = _unwrap(ts, raw[lo : hi + 1], {s.t_mono_s: s.power_w for s in series})
    energy_j = _interp(ts, values, end_s) - _interp(ts, values, start_s)
    if energy_j <= 0.0:
        return not_measured(
            f"energy counter did not advance over the {window_s:.3f} s window", window_s, source
        )
    peak_w = _peak_power(series, start_s, end_s)
    if peak_w is None:  # no power readings (RAPL): peak of the counter's slope between samples
        slopes = [(values[i + 1] - values[i]) / (ts[i + 1] - ts[i]) for i in range(len(ts) - 1)]
        peak_w = max(slopes) if slopes else None
    reason = (
        f"energy counter reset {resets} time(s) in the window; energy across a reset is estimated"
        if resets
        else None
    )
    return _finish(energy_j, window_s, samples, source, peak_w, reason)


def power_energy(
    series: Sequence[TelemetrySample],
    start_s: float,
    end_s: float,
    samples: int,
    source: str,
    min_window_s: float = 0.0,
) -> EnergyReport:
    """Energy of ``[start_s, end_s]`` by integrating sampled power (``power_w``), trapezoid rule.

    Args:
        series: samples with ``power_w`` (W).
        start_s: window start, monotonic seconds.
        end_s: window end, monotonic seconds.
        samples: inference samples processed in the window (for J/sample); 0 if unknown.
        source: the report's ``source`` label.
        min_window_s: the averaging period of the power readings; a shorter window is not measured.
    """
    window_s = end_s - start_s
    refused = _refuse_window(window_s, min_window_s, "the power reading's averaging period", source)
    if refused is not None:
        return refused
    covered = _covering(series, start_s, end_s, lambda s: s.power_w)
    if covered is None:
        return not_measured("power samples do not cover the window (sampler not running?)", window_s, source)
    ts, ps = covered
    points = [(start_s, _interp(ts, ps, start_s))]
    points += [(t, p) for t, p in zip(ts, ps, strict=True) if start_s < t < end_s]
    points.append((end_s, _interp(ts, ps, end_s)))
    pairs = zip(points, points[1:], strict=False)
    energy_j = sum((t1 - t0) * (p0 + p1) / 2.0 for (t0, p0), (t1, p1) in pairs)
    if energy_j <= 0.0:
        return not_measured(f"power readings were 0 W over the {window_s:.3f} s window", window_s, source)
    return _finish(energy_j, window_s, samples, source, max(p for _, p in points), None)


def summarize_telemetry(series: Sequence[TelemetrySample], start_s: float, end_s: float) -> TelemetrySummary:
    """Summarise the samples taken in ``[start_s, end_s]``.

    A window too short to contain a sample is summarised from the two samples around it. ``throttled``
    is True when any sample carried a throttling reason (:data:`THROTTLING_REASONS`: power cap, thermal,
    hardware slowdown, power brake); ``throttle_reasons`` lists those seen, in NVML bit order.
    """
    ordered = sorted(series, key=lambda s: s.t_mono_s)
    chosen = [s for s in ordered if start_s <= s.t_mono_s <= end_s]
    if not chosen:
        before = [s for s in ordered if s.t_mono_s < start_s][-1:]
        after = [s for s in ordered if s.t_mono_s > end_s][:1]
        chosen = before + after
    if not chosen:
        return TelemetrySummary()
    util = [s.utilization_ratio for s in chosen if s.utilization_ratio is not None]
    memory = [s.memory_used_bytes for s in chosen if s.memory_used_bytes is not None]
    temps = [s.temperature_c for s in chosen if s.temperature_c is not None]
    clocks = [s.sm_clock_hz for s in chosen if s.sm_clock_hz is not None]
    power = [s.power_w for s in chosen if s.power_w is not None]
    seen = {r for s in chosen for r in s.throttle_reasons if r in THROTTLING_REASONS}
    reasons = tuple(r for r in THROTTLE_REASONS if r in seen)
    return TelemetrySummary(
        samples=len(chosen),
        mean_utilization_ratio=fmean(util) if util else None,
        peak_memory_used_bytes=max(memory) if memory else None,
        peak_temperature_c=max(temps) if temps else None,
        mean_sm_clock_hz=fmean(clocks) if clocks else None,
        mean_power_w=fmean(power) if power else None,
        throttled=bool(reasons),
        throttle_reasons=reasons,
    )
