"""Reference profiles: what "normal" looked like, frozen once, versioned, compared against.

A :class:`ReferenceProfile` holds per feature the binning fitted on the reference
(see :mod:`driftline.stats.binning`), the reference's counts over it and, for
numerics, its moments. It is saved as JSON (readable, diffable, small: a few KB per
feature) and loaded by the streaming job, which scores windows from counts alone.

Examples
--------
>>> import numpy as np, pandas as pd
>>> rng = np.random.default_rng(0)
>>> reference = pd.DataFrame({"x": rng.normal(0, 1, 5000), "c": rng.choice(["a", "b"], 5000)})
>>> profile = ReferenceProfile.fit(reference, numeric=["x"], categorical=["c"], version="v1")
>>> current = pd.DataFrame({"x": rng.normal(0.5, 1, 1000), "c": rng.choice(["a", "b"], 1000)})
>>> result = profile.compare(current)
>>> result[["feature", "method", "drifted"]].to_dict("records")  # doctest: +NORMALIZE_WHITESPACE
[{'feature': 'c', 'method': 'psi', 'drifted': False},
 {'feature': 'c', 'method': 'chi2', 'drifted': False},
 {'feature': 'c', 'method': 'null_rate', 'drifted': False},
 {'feature': 'x', 'method': 'psi', 'drifted': True},
 {'feature': 'x', 'method': 'ks', 'drifted': True},
 {'feature': 'x', 'method': 'null_rate', 'drifted': False}]
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from driftline.stats.accumulators import Moments
from driftline.stats.binning import (
    DEFAULT_BINS,
    DEFAULT_GRID,
    MAX_CATEGORIES,
    CategoricalBinning,
    NumericBinning,
    binning_from_dict,
)
from driftline.stats.policy import AlertPolicy
from driftline.stats.scoring import FeatureScore, score_window

FORMAT_VERSION = 1
DEFAULT_METHODS = ("psi", "ks", "chi2", "null_rate")


@dataclass(frozen=True)
class FeatureProfile:
    """One feature of the reference: its frozen bins and the reference's counts in them."""

    name: str
    kind: str
    binning: NumericBinning | CategoricalBinning
    counts: np.ndarray
    moments: Moments | None = None

    def window_counts(self, values: Iterable[Any]) -> np.ndarray:
        """Slot counts of raw ``values`` over this feature's bins."""
        if isinstance(self.binning, NumericBinning):
            return self.binning.counts(values)
        return self.binning.counts_of(values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "binning": self.binning.to_dict(),
            "counts": self.counts.tolist(),
            "moments": None if self.moments is None else self.moments.to_dict(),
        }

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> FeatureProfile:
        moments = data.get("moments")
        binning = binning_from_dict(data["binning"])
        counts = np.asarray(data["counts"], dtype=np.int64)
        if counts.shape != (binning.slots,) or data["kind"] not in ("numeric", "categorical"):
            raise ValueError(f"feature {name!r}: {counts.size} counts for {binning.slots} bins, kind "
                             f"{data['kind']!r} (expected numeric or categorical)")  # fmt: skip
        return cls(
            name, data["kind"], binning, counts, None if moments is None else Moments.from_dict(moments)
        )


def _column(data: Any, name: str, *, numeric: bool) -> np.ndarray:
    """One column of a pandas DataFrame, pyarrow Table, polars DataFrame or dict of arrays."""
    try:
        column = data[name]
    except (KeyError, TypeError) as exc:
        raise KeyError(f"the data has no column {name!r}") from exc
    if hasattr(column, "to_pylist"):  # pyarrow (Chunked)Array
        values = column.to_pylist()
    elif hasattr(column, "isna"):  # pandas Series
        values = column.astype(object).where(column.notna(), None).tolist()
    elif hasattr(column, "to_list"):  # polars Series
        values = column.to_list()
    else:
        values = list(column)
    if numeric:
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    return np.array(values, dtype=object)


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-feature reference bins and counts; see the module docstring."""

    features: dict[str, FeatureProfile]
    version: str
    rows: int
    created_at: str
    metadata: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def fit(
        cls,
        data: Any,
        *,
        numeric: Sequence[str] = (),
        categorical: Sequence[str] = (),
        grid: int = DEFAULT_GRID,
        bins: int = DEFAULT_BINS,
        max_categories: int = MAX_CATEGORIES,
        version: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> ReferenceProfile:
        """Fit bins on ``data`` (pandas, pyarrow, polars or a dict of columns).

        Numeric features get ``grid`` fine quantile bins containing ``bins`` coarse
        (PSI) bins; categoricals the ``max_categories`` most frequent values.
        ``version`` defaults to the creation time, ``YYYYMMDDTHHMMSSZ`` (sorts by age).
        """
        if not numeric and not categorical:
            raise ValueError("name at least one numeric or categorical feature to profile")
        features: dict[str, FeatureProfile] = {}
        rows = 0
        for name in numeric:
            values = _column(data, name, numeric=True)
            rows = len(values)
            try:
                binning = NumericBinning.fit(values, grid=grid, bins=bins)
            except ValueError as exc:
                raise ValueError(f"feature {name!r}: {exc}") from exc
            features[name] = FeatureProfile(name, "numeric", binning, binning.counts(values),
                                            Moments().update(values))  # fmt: skip
        for name in categorical:
            values = _column(data, name, numeric=False)
            rows = len(values)
            binning = CategoricalBinning.fit(values, max_categories=max_categories)
            features[name] = FeatureProfile(name, "categorical", binning, binning.counts_of(values))
        created = datetime.now(UTC)
        return cls(features, version or created.strftime("%Y%m%dT%H%M%SZ"), rows,
                   created.isoformat(timespec="seconds"), dict(metadata or {}))  # fmt: skip

    # -- scoring --------------------------------------------------------------------
    def score(
        self,
        window_counts: Mapping[str, np.ndarray],
        *,
        methods: Iterable[str] = DEFAULT_METHODS,
        policy: AlertPolicy | None = None,
    ) -> list[FeatureScore]:
        """Score slot counts per feature (what the streaming job keeps per window)."""
        unknown = sorted(set(window_counts) - set(self.features))
        if unknown:
            raise KeyError(f"features {unknown} are not in reference profile {self.version!r}; "
                           f"it has: {', '.join(sorted(self.features))}")  # fmt: skip
        return score_window(self.features, window_counts, methods, policy or AlertPolicy())

    def compare(
        self,
        current: Any,
        *,
        methods: Iterable[str] = DEFAULT_METHODS,
        policy: AlertPolicy | None = None,
        features: Sequence[str] | None = None,
    ):
        """Compare a DataFrame with the reference: a pandas DataFrame with one row per
        feature and method (feature, kind, method, score, effect, p_value, p_adjusted,
        threshold, n, verdict, drifted), one BH family for the whole call."""
        import pandas as pd

        names = list(features or self.features)
        counts = {
            name: self.features[name].window_counts(
                _column(current, name, numeric=self.features[name].kind == "numeric")
            )
            for name in names
        }
        scores = self.score(counts, methods=methods, policy=policy)
        return pd.DataFrame([s.as_row() for s in scores])

    # -- persistence ----------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "version": self.version,
            "rows": self.rows,
            "created_at": self.created_at,
            "metadata": self.metadata,
            "features": {name: f.to_dict() for name, f in sorted(self.features.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if data.get("format") != FORMAT_VERSION:
            raise ValueError(f"reference profile format {data.get('format')!r} is not supported "
                             f"(this driftline reads format {FORMAT_VERSION})")  # fmt: skip
        features = {name: FeatureProfile.from_dict(name, f) for name, f in data["features"].items()}
        return cls(features, str(data["version"]), int(data["rows"]), data["created_at"],
                   dict(data.get("metadata") or {}))  # fmt: skip

    @property
    def fingerprint(self) -> str:
        """SHA-256 (first 12 hex digits) of the bins and counts: equal profiles, equal prints."""
        body = json.dumps(self.to_dict()["features"], sort_keys=True).encode()
        return hashlib.sha256(body).hexdigest()[:12]

    def save(self, path: str | Path) -> Path:
        """Write the profile as JSON (parents created); return the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(path.suffix + ".tmp")
        temporary.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        temporary.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> ReferenceProfile:
        path = Path(path)
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:  # any malformed content
            raise ValueError(f"cannot read reference profile {path}: {exc}") from exc
