"""Mergeable per-window partials, combined and finished on the driver (pandas).

Spark turns a micro-batch's rows into *partials* per (window, feature) (JVM work, see
:mod:`driftline.spark.window_stats`); the driver receives them, a few hundred rows,
and this module combines them with the open windows' state and finishes the
statistics. Nothing here imports Spark: it is pure and tested against direct
computations.

Keys: ``source``, ``window_start``, ``window_end`` (aware UTC) and, per kind:

* ``numeric`` per feature: ``rows`` (nulls included), ``nulls``, ``n`` (non-null),
  ``mean``, ``m2`` (sum of squared deviations from ``mean``), ``min``, ``max`` and a
  KLL ``sketch`` (Apache DataSketches' serialised ``KllDoublesSketch``, the bytes
  Spark's ``kll_sketch_agg_double`` writes). Combined with Chan et al.::

      n = sum n_i,   mean = sum(n_i * mean_i) / n,
      m2 = sum(m2_i + n_i * (mean_i - mean)^2),   stddev = sqrt(m2 / (n - 1))  (sample)

  and the sketches merged (``KllDoublesSketch.merge``), so neither the order nor the
  grouping of batches changes a count, mean, variance, min or max, and quantiles stay
  within KLL's rank error (about 1.65% at k = 200, 99% confidence).
* ``categorical`` per (feature, value): ``count``, the value as text, null its own value.
* ``bins`` per (feature, reference-grid slot): ``count``.
* ``windows`` per (Kafka topic, partition): ``rows``, ``first_offset``, ``last_offset``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from datasketches import kll_doubles_sketch

KEY = ["source", "window_start", "window_end"]
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
QUANTILE_COLUMNS = tuple(f"p{round(q * 100):02d}" for q in QUANTILES)
MAX_CATEGORIES = 1000
TOP_CATEGORIES = 5
OTHER = "__OTHER__"

COLUMNS = {
    "numeric": [*KEY, "feature", "rows", "nulls", "n", "mean", "m2", "min", "max", "sketch"],
    "categorical": [*KEY, "feature", "value", "count"],
    "bins": [*KEY, "feature", "bin", "count"],
    "windows": [*KEY, "_topic", "_partition", "rows", "first_offset", "last_offset"],
    "dead": [*KEY, "reason", "count"],  # dead letters per window (circuit breaker)
    "nulls": [*KEY, "field", "count"],  # nulls per window and nullable field (schema drift)
}


def merge_sketches(sketches: Iterable[bytes | None]) -> bytes | None:
    """One serialised KLL sketch holding every item of ``sketches`` (None ignored)."""
    present = [bytes(s) for s in sketches if s is not None]
    if len(present) <= 1:
        return present[0] if present else None
    merged = kll_doubles_sketch.deserialize(present[0])
    for other in present[1:]:
        merged.merge(kll_doubles_sketch.deserialize(other))
    return merged.serialize()


def quantiles(sketch: bytes | None, ranks: Iterable[float] = QUANTILES) -> list[float] | None:
    """The sketch's quantiles at ``ranks`` (inclusive search); None for an empty sketch."""
    if sketch is None:
        return None
    parsed = kll_doubles_sketch.deserialize(bytes(sketch))
    if parsed.is_empty():
        return None
    return [float(parsed.get_quantile(rank, True)) for rank in ranks]  # inclusive, as Spark's kll_* do


def _none_for_nan(value):
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def combine_numeric(frame: pd.DataFrame) -> pd.DataFrame:
    """Numeric partials of any number of batches as one partial per (window, feature)."""
    keys = [*KEY, "feature"]
    if frame.empty:
        return frame[COLUMNS["numeric"]].copy()
    f = frame.assign(_nm=frame["n"] * frame["mean"].astype("float64").fillna(0.0))
    grouped = f.groupby(keys, sort=True)
    out = grouped.agg(
        rows=("rows", "sum"), nulls=("nulls", "sum"), n=("n", "sum"), _nm=("_nm", "sum"),
        min=("min", "min"), max=("max", "max"),
    )  # fmt: skip
    out["mean"] = (out["_nm"] / out["n"]).where(out["n"] > 0)
    f = f.join(out["mean"].rename("_mt"), on=keys)
    deviation = (f["mean"].astype("float64") - f["_mt"]).fillna(0.0)
    f["_m2"] = f["m2"].astype("float64").fillna(0.0) + f["n"] * deviation**2
    out["m2"] = f.groupby(keys, sort=True)["_m2"].sum()
    out["sketch"] = grouped["sketch"].agg(merge_sketches)
    return out.reset_index()[COLUMNS["numeric"]]


def combine_counts(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    """``categorical`` or ``bins`` partials as one ``count`` per key."""
    keys = COLUMNS[kind][:-1]
    if frame.empty:
        return frame[COLUMNS[kind]].copy()
    if kind == "categorical":
        # pandas' hash table for object strings stops at a NUL, so "" and "\x00" would be one
        # value (found by the property test); Arrow strings hash every byte
        frame = frame.assign(value=frame["value"].astype("string[pyarrow]"))
    out = frame.groupby(keys, sort=True, dropna=False)["count"].sum().reset_index()[COLUMNS[kind]]
    if kind == "categorical":
        out["value"] = out["value"].astype(object).where(out["value"].notna(), None)
    return out


def combine_windows(frame: pd.DataFrame) -> pd.DataFrame:
    """Window partials as one row per (window, topic, partition)."""
    if frame.empty:
        return frame[COLUMNS["windows"]].copy()
    out = frame.groupby([*KEY, "_topic", "_partition"], sort=True).agg(
        rows=("rows", "sum"), first_offset=("first_offset", "min"), last_offset=("last_offset", "max")
    )
    return out.reset_index()[COLUMNS["windows"]]


def combine(kind: str, frame: pd.DataFrame) -> pd.DataFrame:
    """The combine function of ``kind``."""
    if kind == "numeric":
        return combine_numeric(frame)
    if kind == "windows":
        return combine_windows(frame)
    return combine_counts(frame, kind)


def finish_numeric(combined: pd.DataFrame) -> list[dict]:
    """One row per (window, feature): counts, mean, sample ``stddev``, min, max,
    ``p01`` .. ``p99`` from the sketch (None without values) and the sketch itself."""
    rows = []
    for r in combined.itertuples(index=False):
        n = int(r.n)
        values = quantiles(r.sketch) if n > 0 else None
        row = {
            "source": r.source, "window_start": r.window_start, "window_end": r.window_end,
            "feature": r.feature, "kind": "numeric", "rows": int(r.rows), "nulls": int(r.nulls), "n": n,
            "mean": _none_for_nan(r.mean) if n > 0 else None,
            "stddev": math.sqrt(r.m2 / (n - 1)) if n > 1 else None,
            "min": _none_for_nan(r.min), "max": _none_for_nan(r.max), "sketch": r.sketch,
        }  # fmt: skip
        row.update(zip(QUANTILE_COLUMNS, values or [None] * len(QUANTILES), strict=True))
        rows.append(row)
    return rows


def finish_categorical(counts: pd.DataFrame) -> list[dict]:
    """One row per (window, feature) from combined value counts: ``rows``, ``nulls``,
    ``n``, ``distinct_count`` (non-null values), ``top_categories`` (the 5 most
    frequent, count descending then value) and ``category_counts`` (the
    ``MAX_CATEGORIES`` most frequent, the rest summed under ``__OTHER__``)."""
    rows = []
    for (source, start, end, feature), group in counts.groupby([*KEY, "feature"], sort=True, dropna=False):
        present = group[group["value"].notna()]
        ranked = sorted(zip(present["value"], present["count"], strict=True), key=lambda vc: (-vc[1], vc[0]))
        total, nulls = int(group["count"].sum()), int(group.loc[group["value"].isna(), "count"].sum())
        buckets = [(value, int(count)) for value, count in ranked[:MAX_CATEGORIES]]
        if len(ranked) > MAX_CATEGORIES:
            buckets.append((OTHER, int(sum(count for _, count in ranked[MAX_CATEGORIES:]))))
        rows.append({
            "source": source, "window_start": start, "window_end": end, "feature": feature,
            "kind": "categorical", "rows": total, "nulls": nulls, "n": total - nulls,
            "distinct_count": len(ranked),
            "top_categories": [{"value": v, "count": int(c)} for v, c in ranked[:TOP_CATEGORIES]] or None,
            "category_counts": buckets or None,
        })  # fmt: skip
    return rows


def offset_ranges(windows: pd.DataFrame) -> dict[tuple, list[dict]]:
    """Per window key ``(source, start, end)``: its sorted (topic, partition,
    first_offset, last_offset) ranges."""
    out: dict[tuple, list[dict]] = {}
    named = combine_windows(windows).rename(columns={"_topic": "topic", "_partition": "partition"})
    for r in named.itertuples(index=False):
        out.setdefault((r.source, r.window_start, r.window_end), []).append({
            "topic": r.topic, "partition": int(r.partition), "first_offset": int(r.first_offset),
            "last_offset": int(r.last_offset),
        })  # fmt: skip
    for ranges in out.values():
        ranges.sort(key=lambda part: (part["topic"], part["partition"], part["first_offset"]))
    return out


def bin_counts(bins: pd.DataFrame, slots: dict[str, int]) -> dict[tuple, np.ndarray]:
    """Per (window_start, feature) with a grid of ``slots[feature]`` slots: the counts."""
    out: dict[tuple, np.ndarray] = {}
    for (start, feature), group in bins.groupby(["window_start", "feature"], sort=True):
        counts = np.zeros(slots[feature], dtype=np.int64)
        np.add.at(counts, group["bin"].to_numpy(dtype=np.int64), group["count"].to_numpy(dtype=np.int64))
        out[(start, feature)] = counts
    return out
