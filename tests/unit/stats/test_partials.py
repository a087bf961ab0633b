"""Driver-side partials: combining the batches' partials in any grouping gives the
statistics of all the values at once (checked against numpy/scipy on the whole sample)."""

from __future__ import annotations

import math
from collections import Counter
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest
from datasketches import kll_doubles_sketch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy import stats

from driftline.stats import partials as pt

PROPERTY = settings(max_examples=80, deadline=None)
START, END = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 0, 5, tzinfo=UTC)


def _numeric_partial(values: list[float | None]) -> dict:
    """What Spark's numeric_partials computes for one (window, feature), by hand."""
    present = [v for v in values if v is not None]
    sketch = kll_doubles_sketch(200)
    for v in present:
        sketch.update(v)
    n = len(present)
    return {
        "source": "s", "window_start": START, "window_end": END, "feature": "x", "rows": len(values),
        "nulls": len(values) - n, "n": n, "mean": float(np.mean(present)) if n else None,
        "m2": float(np.var(present) * n) if n else None, "min": min(present) if n else None,
        "max": max(present) if n else None, "sketch": sketch.serialize(),
    }  # fmt: skip


values = st.lists(st.one_of(st.floats(-1e4, 1e4, allow_nan=False, allow_subnormal=False), st.none()),
                  min_size=1, max_size=300)  # fmt: skip


@PROPERTY
@given(values, st.lists(st.integers(1, 299), max_size=5))
def test_combining_batches_gives_the_whole_samples_moments(sample, cuts) -> None:
    bounds = [0, *sorted({c for c in cuts if c < len(sample)}), len(sample)]
    batches = [sample[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
    combined = pt.combine_numeric(pd.DataFrame([_numeric_partial(b) for b in batches]))
    assert len(combined) == 1
    row = pt.finish_numeric(combined)[0]
    present = np.array([v for v in sample if v is not None])
    assert (
        row["rows"] == len(sample) and row["nulls"] == len(sample) - len(present) and row["n"] == len(present)
    )
    if len(present) == 0:
        assert row["mean"] is None and row["stddev"] is None and row["p50"] is None
        return
    assert row["mean"] == pytest.approx(present.mean(), rel=1e-9, abs=1e-9)
    assert row["min"] == present.min() and row["max"] == present.max()
    if len(present) > 1:
        assert row["stddev"] == pytest.approx(np.std(present, ddof=1), rel=1e-7, abs=1e-7)
    else:
        assert row["stddev"] is None
    # under k = 200 values the merged sketch is exact: its quantiles are sample values at those ranks
    if len(present) <= 200:
        ordered = np.sort(present)
        for q, name in zip(pt.QUANTILES, pt.QUANTILE_COLUMNS, strict=True):
            assert row[name] == ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def test_merged_quantiles_are_within_the_kll_bound_on_a_large_sample() -> None:
    rng = np.random.default_rng(3)
    sample = rng.lognormal(size=50_000)
    parts = [_numeric_partial(list(chunk)) for chunk in np.array_split(sample, 40)]
    row = pt.finish_numeric(pt.combine_numeric(pd.DataFrame(parts)))[0]
    for q, name in zip(pt.QUANTILES, pt.QUANTILE_COLUMNS, strict=True):
        rank = stats.percentileofscore(sample, row[name], kind="weak") / 100
        assert abs(rank - q) < 0.0165, (name, rank, q)


@PROPERTY
@given(st.lists(st.one_of(st.sampled_from(["a", "b", "c", "d"]), st.none(), st.text(max_size=2)),
                min_size=1, max_size=200),
       st.integers(1, 199))  # fmt: skip
@example(["", "\x00"], 1)  # pandas' object-string hash table once made these one value
def test_categorical_counts_combine_to_the_whole_samples_counts(sample, cut) -> None:
    def partial(chunk):
        return [{"source": "s", "window_start": START, "window_end": END, "feature": "c", "value": v, "count": n}
                for v, n in Counter(chunk).items()]  # fmt: skip

    frame = pd.DataFrame(partial(sample[:cut]) + partial(sample[cut:]))
    row = pt.finish_categorical(pt.combine_counts(frame, "categorical"))[0]
    counts = Counter(v for v in sample if v is not None)
    assert row["rows"] == len(sample) and row["nulls"] == sample.count(None)
    assert row["distinct_count"] == len(counts)
    expected_top = sorted(counts.items(), key=lambda vc: (-vc[1], vc[0]))[: pt.TOP_CATEGORIES]
    assert [(e["value"], e["count"]) for e in row["top_categories"] or []] == expected_top
    assert dict(row["category_counts"] or []) == dict(counts)


def test_category_counts_beyond_the_cap_are_summed_under_other() -> None:
    frame = pd.DataFrame([
        {"source": "s", "window_start": START, "window_end": END, "feature": "c", "value": f"v{i:04d}",
         "count": 2 if i < 10 else 1}
        for i in range(pt.MAX_CATEGORIES + 7)
    ])  # fmt: skip
    row = pt.finish_categorical(pt.combine_counts(frame, "categorical"))[0]
    counts = dict(row["category_counts"])
    assert len(counts) == pt.MAX_CATEGORIES + 1 and counts[pt.OTHER] == 7
    assert sum(counts.values()) == row["n"] == pt.MAX_CATEGORIES + 7 + 10


def test_windows_and_bins_combine_by_key() -> None:
    base = {"source": "s", "window_start": START, "window_end": END}
    windows = pd.DataFrame([
        {**base, "_topic": "t", "_partition": 0, "rows": 3, "first_offset": 10, "last_offset": 20},
        {**base, "_topic": "t", "_partition": 0, "rows": 2, "first_offset": 5, "last_offset": 12},
        {**base, "_topic": "t", "_partition": 1, "rows": 1, "first_offset": 7, "last_offset": 7},
    ])  # fmt: skip
    combined = pt.combine_windows(windows)
    assert combined[["_partition", "rows", "first_offset", "last_offset"]].values.tolist() == [
        [0, 5, 5, 20],
        [1, 1, 7, 7],
    ]
    ranges = pt.offset_ranges(windows)[("s", pd.Timestamp(START), pd.Timestamp(END))]
    assert [(r["partition"], r["first_offset"], r["last_offset"]) for r in ranges] == [(0, 5, 20), (1, 7, 7)]
    bins = pd.DataFrame([{**base, "feature": "x", "bin": b, "count": 1} for b in [0, 3, 3, 5, 3]])
    counts = pt.bin_counts(pt.combine_counts(bins, "bins"), {"x": 7})
    assert counts[(pd.Timestamp(START), "x")].tolist() == [1, 0, 0, 3, 0, 1, 0]
