"""Group-sequential boundaries: the error spent over every look adds up to alpha, and no more."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import stdtrit

from benchd.analysis import LookSchedule
from benchd.analysis.sequential import t_interval, z_boundaries


def test_a_single_look_is_the_plain_interval():
    (c,) = z_boundaries((10,))
    assert c == pytest.approx(1.95996, abs=0.01)
    assert LookSchedule(8, 8).critical_value(8) == pytest.approx(stdtrit(7, 0.975), rel=0.01)


@pytest.mark.parametrize("rho", [1.0, 2.0])
def test_the_error_over_all_looks_is_alpha(rho):
    # Simulate the standardised running mean of N(0, 1) units and count paths that ever cross a boundary.
    looks = tuple(range(3, 21))
    bounds = np.array(z_boundaries(looks, 0.05, rho))
    rng = np.random.default_rng(7)
    sums = np.cumsum(rng.standard_normal((200_000, looks[-1])), axis=1)
    z = np.abs(sums[:, np.array(looks) - 1] / np.sqrt(looks))
    crossed = (z >= bounds).any(axis=1).mean()
    assert 0.045 <= crossed <= 0.052
    # rho = 2 saves its error for the end: a narrower last look than rho = 1, a wider first one.
    if rho == 2.0:
        flat = z_boundaries(looks, 0.05, 1.0)
        assert bounds[-1] < flat[-1] and bounds[0] > flat[0]


def test_critical_values_shrink_as_units_add_up_and_hold_past_the_plan():
    schedule = LookSchedule(3, 12)
    values = [schedule.critical_value(u) for u in range(3, 13)]
    assert all(b < a for a, b in zip(values, values[1:], strict=False))
    assert values[0] > 4.3  # df = 2 and a level well below 5%: wide on purpose
    assert schedule.critical_value(20) < values[-1]  # more units than planned: last level, more df
    # a batch cut short before its first look is decided once, at the first look's level
    assert schedule.critical_value(2) > values[0]
    with pytest.raises(ValueError):
        schedule.critical_value(1)
    with pytest.raises(ValueError):
        LookSchedule(1, 5)


def test_t_interval_is_mean_plus_minus_critical_standard_errors():
    mean, low, high = t_interval(np.array([1.0, 2.0, 3.0]), 2.0)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - 2.0 / np.sqrt(3), 2.0 + 2.0 / np.sqrt(3)))
    with pytest.raises(ValueError):
        t_interval(np.array([1.0]), 2.0)
