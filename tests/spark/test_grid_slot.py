"""The job's reference-grid bins in Spark SQL against ``NumericBinning.assign`` (numpy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from driftline.spark.drift import grid_slot
from driftline.stats.binning import NumericBinning

pytestmark = pytest.mark.spark

finite = st.floats(min_value=-1e12, max_value=1e12, allow_nan=False)
odd = st.sampled_from([math.nan, math.inf, -math.inf, None, 0.0, -0.0])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reference=st.lists(finite, min_size=1, max_size=400),
    grid=st.sampled_from([2, 10, 100, 1000]),
    window=st.lists(st.one_of(finite, odd), min_size=1, max_size=60),
    on_edges=st.integers(min_value=0, max_value=10),
)
def test_grid_slot_is_numpy_searchsorted_right_with_a_null_slot(spark, reference, grid, window, on_edges):
    binning = NumericBinning.fit(reference, grid=grid, bins=2)
    values = window + list(binning.edges[:on_edges])  # values equal to an edge go to the bin above it
    frame = spark.createDataFrame([(v,) for v in values], "x DOUBLE")
    got = [r["slot"] for r in frame.select(grid_slot(F.col("x"), binning).alias("slot")).collect()]
    assert got == binning.assign(values).tolist()


def test_grid_slot_on_the_default_grid_of_ten_thousand_edges(spark):
    rng = np.random.default_rng(3)
    binning = NumericBinning.fit(rng.lognormal(size=50_000).tolist())
    assert len(binning.edges) > 9_000
    values = [*rng.lognormal(size=5_000).tolist(), *binning.edges[::97], math.inf, -math.inf, math.nan, None]
    frame = spark.createDataFrame([(v,) for v in values], "x DOUBLE")
    got = [r["slot"] for r in frame.select(grid_slot(F.col("x"), binning).alias("slot")).collect()]
    want = binning.assign(values)
    assert got == want.tolist()
    assert want[-4] == binning.null_slot - 1 and want[-3] == 0 and want[-1] == binning.null_slot
