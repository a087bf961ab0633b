"""The job's reference-grid bins (a JVM ``Bucketizer``) against ``NumericBinning.assign`` (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.spark.grid_bins import GridBins
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
