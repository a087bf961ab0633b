"""Bins fitted once on the reference, then frozen: the yardstick never moves.

Numeric features get a *fine grid* of reference quantiles (``grid`` bins, default 10,000)
whose edges include the *coarse* PSI edges (``bins``, default 10): the coarse bins are
unions of fine bins, so one set of counts per window serves PSI, KS and quantiles.
Bin ``j`` is ``[edge_{j-1}, edge_j)``, with ``-inf`` below the first edge and ``+inf``
above the last (the last bin is closed at ``+inf``), and one more slot for nulls
(``None`` and NaN). That is ``numpy.searchsorted(edges, x, side="right")``; the job
computes the same slot on the JVM with Spark ML's ``Bucketizer``
(``driftline.spark.grid_bins``).

Categorical features get the reference vocabulary (the ``max_categories`` most frequent
values, ties broken by value), one out-of-vocabulary slot for anything else, and a null
slot. Values are labelled as Spark casts them to strings, so booleans are ``"true"`` /
``"false"``.

Examples
--------
>>> binning = NumericBinning.fit([1.0, 2.0, 3.0, 4.0, 5.0, None], grid=4, bins=2)
>>> binning.edges
(2.0, 3.0, 4.0)
>>> binning.counts([0.5, 2.0, 3.5, 9.0, float("nan"), None]).tolist()
[1, 1, 1, 1, 2]
>>> binning.coarse_counts(binning.counts([0.5, 2.0, 3.5, 9.0, None])).tolist()
[2, 2, 1]
>>> vocabulary = CategoricalBinning.fit(["DE", "FR", "DE", None, True])
>>> vocabulary.labels
('DE', 'FR', 'true', '__OOV__', '__NULL__')
>>> vocabulary.counts({"DE": 3, "BR": 2, None: 1}).tolist()
[3, 0, 0, 2, 1]
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

OOV = "__OOV__"
NULL = "__NULL__"
DEFAULT_GRID = 10_000
DEFAULT_BINS = 10
MAX_CATEGORIES = 1000


def as_float_array(values: Iterable[Any]) -> np.ndarray:
    """Values as float64 with ``None`` (and NaN) as NaN."""
    if isinstance(values, np.ndarray) and values.dtype.kind == "f":
        return values.astype(np.float64, copy=False)
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def category_label(value: Any) -> str | None:
    """The string Spark's ``CAST(value AS STRING)`` gives; ``None`` for null or NaN."""
    if value is None or (isinstance(value, float | np.floating) and math.isnan(value)):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class NumericBinning:
    """Quantile edges of a reference sample; see the module docstring for the bins.

    ``edges`` are strictly increasing (quantiles that tie are merged); ``coarse`` are
    the positions in ``edges`` of the PSI edges. ``counts`` arrays have
    ``len(edges) + 2`` slots: ``len(edges) + 1`` value bins, then the null slot.
    """

    edges: tuple[float, ...]
    coarse: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.edges or any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise ValueError(f"bin edges must be non-empty and strictly increasing, got {self.edges[:5]}...")
        if any(not 0 <= i < len(self.edges) for i in self.coarse) or list(self.coarse) != sorted(
            set(self.coarse)
        ):
            raise ValueError(
                f"coarse edge positions must be increasing indices into the edges, got {self.coarse}"
            )

    @classmethod
    def fit(
        cls, values: Iterable[Any], *, grid: int = DEFAULT_GRID, bins: int = DEFAULT_BINS
    ) -> NumericBinning:
        """Fit on the finite reference values: fine edges at levels ``j / grid``, coarse
        edges at ``k / bins`` (``grid`` must be a multiple of ``bins``)."""
        if bins < 2 or grid < bins or grid % bins:
            raise ValueError(f"grid ({grid}) must be a multiple of bins ({bins}), and bins >= 2")
        finite = as_float_array(values)
        finite = finite[np.isfinite(finite)]
        if finite.size == 0:
            raise ValueError("the reference has no finite values to fit bins on")
        quantiles = _linear_quantiles(np.sort(finite), np.arange(1, grid) / grid)
        edges = np.unique(quantiles)
        coarse_values = np.unique(quantiles[grid // bins - 1 :: grid // bins])
        coarse = np.searchsorted(edges, coarse_values)
        return cls(tuple(float(e) for e in edges), tuple(int(i) for i in coarse))

    @property
    def slots(self) -> int:
        return len(self.edges) + 2

    @property
    def null_slot(self) -> int:
        return len(self.edges) + 1

    def assign(self, values: Iterable[Any]) -> np.ndarray:
        """The slot of each value (null and NaN go to :attr:`null_slot`)."""
        x = as_float_array(values)
        slot = np.searchsorted(np.asarray(self.edges), x, side="right")
        slot[np.isnan(x)] = self.null_slot
        return slot

    def counts(self, values: Iterable[Any]) -> np.ndarray:
        return np.bincount(self.assign(values), minlength=self.slots).astype(np.int64)

    def coarse_counts(self, counts: Sequence[int] | np.ndarray) -> np.ndarray:
        """Fine counts summed into the coarse (PSI) bins, null slot kept last."""
        counts = np.asarray(counts, dtype=np.int64)
        bounds = [0, *(i + 1 for i in self.coarse), len(self.edges) + 1]
        value_bins = [counts[a:b].sum() for a, b in zip(bounds, bounds[1:], strict=False)]
        return np.array([*value_bins, counts[self.null_slot]], dtype=np.int64)

    def coarse_labels(self) -> list[str]:
        cuts = [-math.inf, *(self.edges[i] for i in self.coarse), math.inf]
        labels = [f"[{_fmt(a)}, {_fmt(b)})" for a, b in zip(cuts, cuts[1:], strict=False)]
        return [*labels, NULL]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "numeric", "edges": list(self.edges), "coarse": list(self.coarse)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericBinning:
        return cls(tuple(float(e) for e in data["edges"]), tuple(int(i) for i in data["coarse"]))


@dataclass(frozen=True)
class CategoricalBinning:
    """Reference vocabulary, then the out-of-vocabulary and null slots."""

    vocabulary: tuple[str, ...]

    @classmethod
    def fit(cls, values: Iterable[Any], *, max_categories: int = MAX_CATEGORIES) -> CategoricalBinning:
        seen = Counter(label for label in map(category_label, values) if label is not None)
        ranked = sorted(seen.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
        return cls(tuple(sorted(value for value, _ in ranked)))

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.vocabulary, OOV, NULL)

    @property
    def slots(self) -> int:
        return len(self.vocabulary) + 2

    def counts(self, counts_by_value: Mapping[Any, int]) -> np.ndarray:
        """Slot counts from ``{value: count}`` (values as Spark's string cast, ``None`` = null)."""
        index = {value: i for i, value in enumerate(self.vocabulary)}
        out = np.zeros(self.slots, dtype=np.int64)
        for value, count in counts_by_value.items():
            label = category_label(value)
            slot = self.slots - 1 if label is None else index.get(label, self.slots - 2)
            out[slot] += int(count)
        return out

    def counts_of(self, values: Iterable[Any]) -> np.ndarray:
        return self.counts(Counter(map(category_label, values)))

    def to_dict(self) -> dict[str, Any]:
        return {"type": "categorical", "vocabulary": list(self.vocabulary)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalBinning:
        return cls(tuple(data["vocabulary"]))


def _linear_quantiles(ordered: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``numpy.quantile(x, levels)`` (linear method) of already sorted ``x``, bit for bit.

    The same float operations as numpy's (virtual index ``(n - 1) * q``, then its
    two-sided lerp), without numpy's partition per level (hundreds of times faster at 10,000 levels).
    """
    n = ordered.size
    virtual = (n - 1) * levels
    low = np.clip(np.floor(virtual), 0, n - 1).astype(np.int64)
    high = np.clip(low + 1, 0, n - 1)
    gamma = virtual - np.floor(virtual)
    a, b = ordered[low], ordered[high]
    diff = b - a
    return np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)


def binning_from_dict(data: Mapping[str, Any]) -> NumericBinning | CategoricalBinning:
    kinds = {"numeric": NumericBinning, "categorical": CategoricalBinning}
    if data.get("type") not in kinds:
        raise ValueError(f"binning type {data.get('type')!r} is not one of {', '.join(kinds)}")
    return kinds[data["type"]].from_dict(data)


def _fmt(value: float) -> str:
    return "-inf" if value == -math.inf else "inf" if value == math.inf else f"{value:.6g}"
