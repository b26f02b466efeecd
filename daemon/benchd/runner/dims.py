"""Dimensions drawn per query from a distribution (sequence lengths, image sizes), seeded.

``benchd.yaml`` declares them under ``dims:`` and uses their names in input shapes::

    dims:
      seq: {dist: choice, values: [32, 64, 128], weights: [5, 3, 2]}
      # seq: 128                                           fixed
      # seq: {dist: uniform, low: 16, high: 128}           integers, both ends included
      # seq: {dist: normal, mean: 64, std: 16, low: 8, high: 128}   rounded, clipped to [low, high]
    inputs:
      - {name: input_ids, shape: [batch, seq], dtype: int64, range: [0, 30521]}
      - {name: attention_mask, shape: [batch, seq], mask: seq}

Each prepared batch gets one draw of every dimension; query ``i`` uses batch ``i % n``, so the values a
run used, and how often, follow from the query count (:func:`count_draws`). No torch here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

DISTRIBUTIONS = ("fixed", "uniform", "normal", "choice")


@dataclass(frozen=True)
class DimSpec:
    """One named dimension and the distribution its per-query value is drawn from (integers >= 1)."""

    name: str
    dist: str = "fixed"
    low: int = 1
    high: int = 1
    mean: float = 0.0
    std: float = 0.0
    values: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()

    def support(self) -> tuple[int, int]:
        """The smallest and largest value a draw can give."""
        if self.dist == "choice":
            return min(self.values), max(self.values)
        return self.low, self.high

    def describe(self) -> str:
        """The distribution in words, for messages."""
        if self.dist == "fixed":
            return str(self.low)
        if self.dist == "choice":
            return f"one of {list(self.values)}"
        if self.dist == "normal":
            return f"normal(mean {self.mean:g}, std {self.std:g}) clipped to {self.low}..{self.high}"
        return f"uniform {self.low}..{self.high}"

    def draw(self, rng: np.random.Generator, count: int) -> np.ndarray:
        """``count`` seeded draws (int64)."""
        if self.dist == "fixed":
            return np.full(count, self.low, dtype=np.int64)
        if self.dist == "uniform":
            return rng.integers(self.low, self.high + 1, size=count, dtype=np.int64)
        if self.dist == "normal":
            raw = np.rint(rng.normal(self.mean, self.std, size=count))
            return np.clip(raw, self.low, self.high).astype(np.int64)
        p = np.asarray(self.weights or [1.0] * len(self.values), dtype=np.float64)
        return rng.choice(np.asarray(self.values, dtype=np.int64), size=count, p=p / p.sum())


def fixed(name: str, value: int) -> DimSpec:
    """A dimension that always has ``value``."""
    return DimSpec(name, "fixed", value, value)


def draw_all(dims: Sequence[DimSpec], count: int, seed: int) -> list[dict[str, int]]:
    """One value of every dimension for each of ``count`` batches, reproducible from ``seed``."""
    rng = np.random.default_rng([seed, 0xD1A5])
    columns = {d.name: d.draw(rng, count).tolist() for d in dims}
    return [{name: int(col[b]) for name, col in columns.items()} for b in range(count)]


def count_draws(draws: Sequence[dict[str, int]], queries: int) -> tuple[tuple[str, int, int], ...]:
    """``(dim, value, queries)`` triples: how many of ``queries`` queries (batch ``i % n``) saw each value."""
    n = len(draws)
    if not n or not draws[0]:
        return ()
    full, rest = divmod(queries, n)
    counts: dict[str, Counter[int]] = {}
    for b, values in enumerate(draws):
        uses = full + (1 if b < rest else 0)
        for name, value in values.items():
            counts.setdefault(name, Counter())[value] += uses
    return tuple(
        (name, value, c) for name in sorted(counts) for value, c in sorted(counts[name].items()) if c
    )
