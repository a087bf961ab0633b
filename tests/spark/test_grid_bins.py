"""The job's reference-grid bins (a JVM ``Bucketizer``) against ``NumericBinning.assign`` (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.spark.grid_bins import GridBins, SortedGrids
from driftline.stats.binning import NumericBinning

pytestmark = pytest.mark.spark

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
odd = st.sampled_from([math.nan, math.inf, -math.inf, None, 0.0, -0.0])


def slots(spark, binnings: dict[str, NumericBinning], columns: dict[str, list]) -> dict[str, list[int]]:
    """Every column's bins as the job computes them: one bucketizer over all columns."""
    names = sorted(columns)
    rows = list(zip(*[columns[n] for n in names], strict=True))
    frame = spark.createDataFrame(rows, ", ".join(f"{n} DOUBLE" for n in names))
    grid = GridBins(spark, binnings)
    pairs = grid.slots(frame, []).select(grid.pairs().alias("p")).collect()
    got: dict[str, list[int]] = {n: [] for n in names}
    for row in pairs:
        for pair in row["p"]:
            got[pair["feature"]].append(pair["bin"])
    return got


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reference=st.lists(finite, min_size=1, max_size=400),
    grid=st.sampled_from([2, 10, 100, 1000]),
    window=st.lists(st.one_of(finite, odd), min_size=1, max_size=60),
    on_edges=st.integers(min_value=0, max_value=10),
)
def test_grid_bins_are_numpy_searchsorted_right_with_a_null_slot(spark, reference, grid, window, on_edges):
    binning = NumericBinning.fit(reference, grid=grid, bins=2)
    values = window + list(binning.edges[:on_edges])  # values equal to an edge go to the bin above it
    got = slots(spark, {"x": binning}, {"x": values})
    assert got["x"] == binning.assign(values).tolist()


def test_features_with_different_grids_share_one_bucketizer(spark):
    """Each column is cut by its own edges; a zero edge takes -0.0 like numpy does."""
    wide = NumericBinning.fit([float(v) for v in range(-50, 51)], grid=10, bins=2)
    narrow = NumericBinning((-1.0, 0.0, 1.0), (1,))
    values = [-100.0, -1.0, -0.0, 0.0, 0.5, 1.0, 7.0, math.inf, math.nan, None]
    got = slots(spark, {"a": wide, "b": narrow}, {"a": values, "b": values})
    assert got["a"] == wide.assign(values).tolist()
    assert got["b"] == narrow.assign(values).tolist() == [0, 1, 2, 2, 2, 3, 3, 3, 4, 4]


def test_grid_bins_on_the_default_grid_of_ten_thousand_edges(spark):
    rng = np.random.default_rng(3)
    binning = NumericBinning.fit(rng.lognormal(size=50_000).tolist())
    assert len(binning.edges) > 9_000
    values = [*rng.lognormal(size=5_000).tolist(), *binning.edges[::97], math.inf, -math.inf, math.nan, None]
    got = slots(spark, {"x": binning}, {"x": values})
    want = binning.assign(values)
    assert got["x"] == want.tolist()
    assert want[-4] == binning.null_slot - 1 and want[-3] == 0 and want[-1] == binning.null_slot


def sorted_counts(spark, grids: dict[str, dict[str, NumericBinning]], values: dict[str, dict[str, list]]):
    """Bin counts per (source, feature, bin) as a shared query computes them
    (:class:`SortedGrids`: one sort over every source's edges and values)."""
    from collections import Counter
    from datetime import datetime

    names = sorted({f for columns in values.values() for f in columns})
    start, end = datetime(2026, 1, 1), datetime(2026, 1, 1, 0, 5)
    rows = [
        (source, start, end, *(columns.get(n, [None] * len(v))[i] for n in names))
        for source, columns in values.items()
        for v in [next(iter(columns.values()))]
        for i in range(len(v))
    ]
    schema = ", ".join(
        ["source STRING, window_start TIMESTAMP, window_end TIMESTAMP"] + [f"{n} DOUBLE" for n in names]
    )
    frame = spark.createDataFrame(rows, schema)
    sorted_grids = SortedGrids(spark, grids)
    got = Counter()
    for row in sorted_grids.bin_partials(frame, list(values)).collect():
        got[(row["source"], row["feature"], row["bin"])] += row["count"]
    return got


def numpy_counts(grids, values):
    from collections import Counter

    want = Counter()
    for source, binnings in grids.items():
        for feature, binning in binnings.items():
            for slot in binning.assign(values[source][feature]).tolist():
                want[(source, feature, slot)] += 1
    return want


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    references=st.lists(st.lists(finite, min_size=1, max_size=200), min_size=2, max_size=2),
    grid=st.sampled_from([2, 10, 100]),
    windows=st.lists(st.lists(st.one_of(finite, odd), min_size=1, max_size=40), min_size=2, max_size=2),
    on_edges=st.integers(min_value=0, max_value=10),
)
def test_sorted_grids_count_numpy_searchsorted_per_source(spark, references, grid, windows, on_edges):
    """Two sources, one feature, each with its own grid: the sort gives each value the
    bin its own source's numpy ``assign`` gives it (edges and -0.0, inf, NaN, None too)."""
    grids = {f"s{i}": {"x": NumericBinning.fit(r, grid=grid, bins=2)} for i, r in enumerate(references)}
    values = {
        source: {"x": windows[i] + list(grids[source]["x"].edges[:on_edges])}
        for i, source in enumerate(grids)
    }
    assert sorted_counts(spark, grids, values) == numpy_counts(grids, values)


def test_sorted_grids_leave_out_features_a_source_has_no_grid_for(spark):
    """``a`` has grids for x and y, ``b`` only for y: b's x values are not binned."""
    wide = NumericBinning.fit([float(v) for v in range(-50, 51)], grid=10, bins=2)
    narrow = NumericBinning((-1.0, 0.0, 1.0), (1,))
    grids = {"a": {"x": wide, "y": narrow}, "b": {"y": wide}}
    column = [-100.0, -1.0, -0.0, 0.0, 0.5, 1.0, 7.0, math.inf, math.nan, None]
    values = {"a": {"x": column, "y": column}, "b": {"x": column, "y": column[::-1]}}
    got = sorted_counts(spark, grids, values)
    assert got == numpy_counts(grids, values)
    assert not [key for key in got if key[:2] == ("b", "x")]
    assert got[("a", "y", 2)] == 3 and got[("a", "y", narrow.null_slot)] == 2
