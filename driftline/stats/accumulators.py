"""Mergeable accumulators: ``update -> merge -> result``, round-tripping through dicts.

Merging the states of two parts of a stream equals feeding both parts to one
accumulator, which is what lets windows, partitions, micro-batches and restarts agree.

- :class:`BinCounts`: counts per slot of a frozen binning (numeric fine grid or
  categorical vocabulary). With a numeric binning it is also the *fine quantile grid*:
  :meth:`BinCounts.quantile` interpolates within the grid's bins, so its error is at
  most one fine bin's width.
- :class:`Moments`: count, mean, sum of squared deviations ``m2``, min and max, merged
  with Chan et al.'s formulas::

      n = n_a + n_b,   delta = mean_b - mean_a,   mean = mean_a + delta * n_b / n,
      m2 = m2_a + m2_b + delta^2 * n_a * n_b / n

  ``variance`` is the sample variance ``m2 / (n - 1)``. Nulls, NaN and +-inf are skipped
  (the bins count infinities in their outer bins; moments would become NaN).

Examples
--------
>>> from driftline.stats.binning import NumericBinning
>>> grid = NumericBinning.fit(range(100), grid=10, bins=2)
>>> a, b = BinCounts(grid), BinCounts(grid)
>>> _ = a.update([1.0, 50.0]), b.update([99.0, None])
>>> a.merge(b).result().tolist() == BinCounts(grid).update([1.0, 50.0, 99.0, None]).result().tolist()
True
>>> m = Moments().update([1.0, 2.0, None]).merge(Moments().update([3.0, 4.0]))
>>> (m.n, m.mean, round(m.variance, 6), m.minimum, m.maximum)
(4, 2.5, 1.666667, 1.0, 4.0)
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from driftline.stats.binning import (
    CategoricalBinning,
    NumericBinning,
    as_float_array,
    binning_from_dict,
)


@dataclass
class BinCounts:
    """Counts per slot of ``binning`` (value bins, then out-of-vocabulary / null slots)."""

    binning: NumericBinning | CategoricalBinning
    counts: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        if self.counts is None:
            self.counts = np.zeros(self.binning.slots, dtype=np.int64)
        self.counts = np.asarray(self.counts, dtype=np.int64)
        if self.counts.shape != (self.binning.slots,):
            raise ValueError(f"expected {self.binning.slots} counts, got {self.counts.shape}")

    def __eq__(self, other: object) -> bool:
        # the generated __eq__ would compare the arrays with == and raise on their truth value
        if not isinstance(other, BinCounts):
            return NotImplemented
        return self.binning == other.binning and np.array_equal(self.counts, other.counts)

    def update(self, values: Iterable[Any]) -> BinCounts:
        if isinstance(self.binning, NumericBinning):
            self.counts = self.counts + self.binning.counts(values)
        else:
            self.counts = self.counts + self.binning.counts_of(values)
        return self

    def merge(self, other: BinCounts) -> BinCounts:
        if other.binning != self.binning:
            raise ValueError("cannot merge counts over different binnings")
        return BinCounts(self.binning, self.counts + other.counts)

    def result(self) -> np.ndarray:
        return self.counts.copy()

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    def quantile(self, level: float) -> float:
        """Approximate ``level`` quantile of the non-null values, from the fine grid.

        Linear within an interior bin; a quantile in an outer bin is the outer edge.
        """
        if not isinstance(self.binning, NumericBinning):
            raise TypeError("quantiles need a numeric binning")
        values = self.counts[: self.binning.null_slot]
        total = values.sum()
        if total == 0:
            return math.nan
        cumulative = np.cumsum(values)
        # the first bin reaching the level; for level 0 the first non-empty bin
        slot = int(np.searchsorted(cumulative, level * total, side="left" if level > 0 else "right"))
        edges = self.binning.edges
        if slot == 0:
            return edges[0]
        if slot >= len(edges):
            return edges[-1]
        below = cumulative[slot - 1]
        inside = (level * total - below) / max(values[slot], 1)
        return edges[slot - 1] + inside * (edges[slot] - edges[slot - 1])

    def to_dict(self) -> dict[str, Any]:
        return {"binning": self.binning.to_dict(), "counts": self.counts.tolist()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BinCounts:
        return cls(binning_from_dict(data["binning"]), np.asarray(data["counts"], dtype=np.int64))


@dataclass
class Moments:
    """Count, mean, ``m2``, min and max of the non-null values (see the module notes)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf

    def update(self, values: Iterable[Any]) -> Moments:
        x = as_float_array(values)
        x = x[np.isfinite(x)]
        if x.size == 0:
            return self
        part = Moments(int(x.size), float(x.mean()), float(((x - x.mean()) ** 2).sum()),
                       float(x.min()), float(x.max()))  # fmt: skip
        merged = self.merge(part)
        self.n, self.mean, self.m2 = merged.n, merged.mean, merged.m2
        self.minimum, self.maximum = merged.minimum, merged.maximum
        return self

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return Moments(**self.to_dict())
        if self.n == 0:
            return Moments(**other.to_dict())
        n = self.n + other.n
        delta = other.mean - self.mean
        return Moments(
            n=n,
            mean=self.mean + delta * other.n / n,
            m2=self.m2 + other.m2 + delta * delta * self.n * other.n / n,
            minimum=min(self.minimum, other.minimum),
            maximum=max(self.maximum, other.maximum),
        )

    @property
    def variance(self) -> float:
        return self.m2 / (self.n - 1) if self.n > 1 else math.nan

    def result(self) -> dict[str, float]:
        return {"n": self.n, "mean": self.mean if self.n else math.nan, "std": math.sqrt(self.variance)
                if self.n > 1 else math.nan, "min": self.minimum, "max": self.maximum}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "mean": self.mean,
            "m2": self.m2,
            "minimum": self.minimum,
            "maximum": self.maximum,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Moments:
        return cls(int(data["n"]), float(data["mean"]), float(data["m2"]),
                   float(data["minimum"]), float(data["maximum"]))  # fmt: skip
