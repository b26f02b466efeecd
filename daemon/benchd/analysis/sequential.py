"""Intervals that stay valid while a batch looks after every unit and stops as soon as it decides.

A comparison batch decides after each *unit* (one worker process and the pairs it ran) from the first
``min_units`` on, and stops at the first look that decides: a sequential test. Reading a fixed 95% interval
at every look would inflate its error rate with the number of looks. Instead the batch spends its 5% error
over the planned looks with a Lan-DeMets power spending function, ``alpha(f) = alpha * f ** rho`` at
information fraction ``f = units / max_units`` (Jennison and Turnbull, "Group Sequential Methods with
Applications to Clinical Trials", 2000, ch. 7): the critical values ``c_k`` are chosen so that a
standardised mean crosses ``+/- c_k`` at look ``k`` (and at no earlier look) with probability
``alpha(f_k) - alpha(f_{k-1})``. The intervals ``mean +/- c_k * se`` then hold their 95% coverage jointly
over every look, so the interval at whatever look the batch stops is a valid 95% interval.

The crossing probabilities are computed by numerical integration of the Brownian motion the running sum
follows, on a grid (Armitage, McPherson and Rowe, 1969): deterministic, and cheap enough to cache per
schedule. With few units the standard deviation is estimated from few values, so each look's nominal
level is read off Student's t with ``units - 1`` degrees of freedom instead of the normal (the usual
t-adjusted boundary).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr, stdtrit

#: Two-sided error of every interval, over all looks of a batch together.
ALPHA = 0.05
#: Share of the unit values trimmed from each end before the mean (20%: Wilcox's usual choice).
TRIM = 0.2
#: Spending exponent: 1 spends evenly over the looks (early stops possible), larger saves it for the end.
DEFAULT_RHO = 1.0
_GRID_POINTS_PER_SD = 40
_GRID_HALF_WIDTH_SD = 9.0


@dataclass(frozen=True)
class LookSchedule:
    """The planned looks of a batch: after every unit from ``min_units`` to ``max_units``.

    Attributes:
        min_units: units before the first look (at least 2: one unit says nothing about spread).
        max_units: units at the last possible look.
        alpha: two-sided error spent over all looks together.
        rho: the spending exponent.
    """

    min_units: int
    max_units: int
    alpha: float = ALPHA
    rho: float = DEFAULT_RHO

    def __post_init__(self) -> None:
        if not 2 <= self.min_units <= self.max_units:
            raise ValueError(f"need 2 <= min_units <= max_units, got {self.min_units} and {self.max_units}")
        if not 0.0 < self.alpha < 1.0 or self.rho <= 0.0:
            raise ValueError(f"need 0 < alpha < 1 and rho > 0, got {self.alpha} and {self.rho}")

    @property
    def looks(self) -> tuple[int, ...]:
        """Units at each planned look."""
        return tuple(range(self.min_units, self.max_units + 1))

    def z_boundary(self, units: int) -> float:
        """The normal-scale critical value of the look after ``units`` units.

        Raises:
            ValueError: ``units`` is below ``min_units``.
        """
        if units < self.min_units:
            raise ValueError(f"no look after {units} units: the first is after {self.min_units}")
        bounds = z_boundaries(self.looks, self.alpha, self.rho)
        return bounds[min(units, self.max_units) - self.min_units]

    def critical_value(self, units: int, df: int | None = None) -> float:
        """The critical value for a mean of ``units`` (at least 2) values with an estimated deviation.

        The look's nominal two-sided level from :meth:`z_boundary`, read off Student's t with ``df``
        degrees of freedom (default ``units - 1``; a trimmed mean has fewer). Past ``max_units`` (more
        units than planned) the last look's level applies; before ``min_units`` (a batch cut short before
        its first look, decided once) the first look's level does, which is valid because no earlier look
        was taken.
        """
        if units < 2:
            raise ValueError("a critical value needs at least two units")
        df = units - 1 if df is None else df
        if df < 1:
            raise ValueError(f"a critical value needs at least one degree of freedom, got {df}")
        z = self.z_boundary(max(units, self.min_units))
        nominal = 2.0 * float(ndtr(-z))
        return float(stdtrit(df, 1.0 - nominal / 2.0))

    def fixed(self) -> LookSchedule:
        """The same error at a single look (for a batch that is decided once, never sequentially)."""
        return LookSchedule(self.max_units, self.max_units, self.alpha, self.rho)


@functools.lru_cache(maxsize=128)
def z_boundaries(looks: tuple[int, ...], alpha: float = ALPHA, rho: float = DEFAULT_RHO) -> tuple[float, ...]:
    """Two-sided normal boundaries ``c_k`` for looks after ``looks[k]`` units (increasing).

    ``P(|Z_j| < c_j for j < k, |Z_k| >= c_k) = alpha * ((f_k) ** rho - (f_{k-1}) ** rho)`` under the null,
    where ``Z_k`` is the standardised sum of the first ``looks[k]`` independent standard normals and
    ``f_k = looks[k] / looks[-1]``.

    Raises:
        ValueError: ``looks`` is empty, not increasing, or starts below 1.
    """
    if not looks or looks[0] < 1 or any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
        raise ValueError(f"looks must be increasing positive unit counts, got {looks}")
    n_max = looks[-1]
    sd_max = math.sqrt(n_max)
    step = 1.0 / _GRID_POINTS_PER_SD  # grid spacing in units of one unit's standard deviation
    half = _GRID_HALF_WIDTH_SD * sd_max
    x = np.arange(-half, half + step / 2, step)
    density = _normal_pdf(x, looks[0]) * step  # probability mass per grid cell of S_1
    spent = 0.0
    bounds = []
    previous = 0
    for k, n in enumerate(looks):
        if k > 0:
            density = _convolve_normal(density, n - previous, step)
        previous = n
        target = alpha * (n / n_max) ** rho - spent
        c = _boundary_for_mass(x, density, math.sqrt(n), target)
        outside = np.abs(x) >= c * math.sqrt(n)
        spent += float(density[outside].sum())
        density = np.where(outside, 0.0, density)
        bounds.append(c)
    return tuple(bounds)


def _normal_pdf(x: np.ndarray, variance: float) -> np.ndarray:
    return np.exp(-0.5 * x * x / variance) / math.sqrt(2.0 * math.pi * variance)


def _convolve_normal(mass: np.ndarray, variance: float, step: float) -> np.ndarray:
    """The mass after adding an independent N(0, variance) step (kernel cut at 9 sd)."""
    reach = int(math.ceil(_GRID_HALF_WIDTH_SD * math.sqrt(variance) / step))
    offsets = np.arange(-reach, reach + 1) * step
    kernel = _normal_pdf(offsets, variance) * step
    kernel /= kernel.sum()
    return np.convolve(mass, kernel, mode="same")


def _boundary_for_mass(x: np.ndarray, mass: np.ndarray, sd: float, target: float) -> float:
    """The smallest c whose two-sided tail ``|x| >= c * sd`` holds at most ``target`` of the mass."""
    if target <= 0.0:
        return math.inf
    order = np.argsort(-np.abs(x), kind="stable")  # outermost grid points first
    tail = np.cumsum(mass[order])
    inside = int(np.searchsorted(tail, target, side="right"))  # points that fit in the tail
    if inside == 0:
        return float(np.abs(x[order[0]]) / sd)
    return float(np.abs(x[order[inside - 1]]) / sd)


def t_interval(values: np.ndarray, critical: float) -> tuple[float, float, float]:
    """``(mean, low, high)`` of ``mean +/- critical * sd / sqrt(n)`` over ``values`` (sd with ddof=1).

    Raises:
        ValueError: fewer than two values.
    """
    n = len(values)
    if n < 2:
        raise ValueError("a t interval needs at least two values")
    mean = float(np.mean(values))
    half = critical * float(np.std(values, ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def trimmed_count(n: int, trim: float = TRIM) -> int:
    """Values cut from each end of ``n`` sorted values: ``floor(trim * n)`` (none below five at 20%)."""
    return int(math.floor(trim * n))


def trimmed_interval(
    values: np.ndarray, schedule: LookSchedule, trim: float = TRIM
) -> tuple[float, float, float]:
    """``(trimmed mean, low, high)``: Yuen's interval for the ``trim``-trimmed mean at a look of ``schedule``.

    The ``g = trimmed_count(n)`` smallest and largest values are left out of the mean; the standard error
    comes from the winsorized variance, ``sqrt((n - 1) * s_w^2 / (h * (h - 1)))`` with ``h = n - 2g``, and the
    critical value from ``schedule`` with ``h - 1`` degrees of freedom (Yuen, "The two-sample trimmed t for
    unequal population variances", Biometrika 1974; Wilcox, "Introduction to Robust Estimation and
    Hypothesis Testing", 2017, ch. 4). With ``g = 0`` it is the plain t interval.

    Raises:
        ValueError: fewer than two values.
    """
    n = len(values)
    if n < 2:
        raise ValueError("an interval needs at least two values")
    g = trimmed_count(n, trim)
    h = n - 2 * g
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    center = float(np.mean(ordered[g : n - g]))
    winsorized = np.clip(ordered, ordered[g], ordered[n - g - 1])
    se = math.sqrt((n - 1) * float(np.var(winsorized, ddof=1)) / (h * (h - 1)))
    half = schedule.critical_value(n, df=h - 1) * se
    return center, center - half, center + half
