"""Accumulator contract: merge equals concatenation, empty input is the identity, state round-trips."""

import json
import math
import pickle
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.stats.accumulators import BinCounts, Moments
from driftline.stats.binning import CategoricalBinning, NumericBinning

PROPERTY = settings(max_examples=120, deadline=None)

NUMERIC_GRID = NumericBinning.fit(np.random.default_rng(11).normal(0, 100, 5000), grid=200, bins=10)
VOCABULARY = CategoricalBinning.fit(["a", "b", "c", True, 3])

numbers = st.one_of(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_subnormal=False),
    st.integers(-500, 500).map(float),
    st.sampled_from([None, math.nan]),
)
categories = st.one_of(
    st.sampled_from(["a", "b", "c", "d", "zz", True, False, 3, 4, None]), st.text(max_size=2)
)


@dataclass(frozen=True)
class Contract:
    """How to build, feed and compare one accumulator type."""

    name: str
    new: Any
    values: Any
    close: Any  # (merged, direct) -> bool


def moments_close(a: Moments, b: Moments) -> bool:
    if a.n != b.n or a.minimum != b.minimum or a.maximum != b.maximum:
        return False
    if a.n == 0:
        return True
    scale = max(1.0, abs(a.minimum), abs(a.maximum))
    return math.isclose(a.mean, b.mean, rel_tol=1e-9, abs_tol=1e-9 * scale) and math.isclose(
        a.m2, b.m2, rel_tol=1e-9, abs_tol=1e-9 * scale * scale * a.n
    )


CONTRACTS = [
    Contract("numeric-bins", lambda: BinCounts(NUMERIC_GRID), numbers, lambda a, b: a == b),
    Contract("categorical-bins", lambda: BinCounts(VOCABULARY), categories, lambda a, b: a == b),
    Contract("moments", Moments, numbers, moments_close),
]
contracts = pytest.mark.parametrize("contract", CONTRACTS, ids=[c.name for c in CONTRACTS])


@contracts
@PROPERTY
@given(data=st.data())
def test_merging_two_parts_equals_feeding_the_whole(contract, data) -> None:
    values = data.draw(st.lists(contract.values, max_size=120))
    cut = data.draw(st.integers(0, len(values)))
    merged = contract.new().update(values[:cut]).merge(contract.new().update(values[cut:]))
    assert contract.close(merged, contract.new().update(values))


@contracts
@PROPERTY
@given(data=st.data())
def test_merge_is_associative_and_commutative(contract, data) -> None:
    a, b, c = (contract.new().update(data.draw(st.lists(contract.values, max_size=60))) for _ in range(3))
    assert contract.close(a.merge(b).merge(c), a.merge(b.merge(c)))
    assert contract.close(a.merge(b), b.merge(a))


@contracts
@PROPERTY
@given(data=st.data())
def test_merging_with_empty_is_the_identity_and_leaves_the_inputs_alone(contract, data) -> None:
    values = data.draw(st.lists(contract.values, min_size=1, max_size=60))
    part = contract.new().update(values)
    before = pickle.dumps(part)
    assert contract.close(part.merge(contract.new()), part)
    assert contract.close(contract.new().merge(part), part)
    assert contract.close(part.merge(contract.new().update([])), part)
    for merged in (part.merge(contract.new()), contract.new().merge(part), part.merge(part)):
        merged.update(values)  # updating a merge result must not write through to its inputs
    assert pickle.dumps(part) == before


@contracts
@PROPERTY
@given(data=st.data())
def test_state_round_trips_through_json_and_pickle(contract, data) -> None:
    accumulator = contract.new().update(data.draw(st.lists(contract.values, max_size=60)))
    via_json = type(accumulator).from_dict(json.loads(json.dumps(accumulator.to_dict())))
    via_pickle = pickle.loads(pickle.dumps(accumulator))
    assert contract.close(via_json, accumulator) and contract.close(via_pickle, accumulator)
    # and the restored state keeps accumulating like the original
    more = data.draw(st.lists(contract.values, max_size=30))
    assert contract.close(via_json.update(more), accumulator.update(more))


@PROPERTY
@given(values=st.lists(numbers, max_size=200), cuts=st.lists(st.integers(0, 200), max_size=3))
def test_moments_merged_from_parts_match_numpy_on_the_non_null_values(values, cuts) -> None:
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    x = x[~np.isnan(x)]
    bounds = [0, *sorted(min(c, len(values)) for c in cuts), len(values)]
    moments = Moments()
    for a, b in zip(bounds, bounds[1:], strict=False):
        moments = moments.merge(Moments().update(values[a:b]))
    assert moments.n == x.size
    if x.size == 0:
        assert (moments.minimum, moments.maximum) == (math.inf, -math.inf)
        assert math.isnan(moments.variance) and math.isnan(moments.result()["mean"])
        return
    scale = max(1.0, float(np.abs(x).max()))
    assert moments.mean == pytest.approx(np.mean(x), rel=1e-9, abs=1e-9 * scale)
    assert (moments.minimum, moments.maximum) == (x.min(), x.max())
    if x.size > 1:
        assert moments.variance == pytest.approx(np.var(x, ddof=1), rel=1e-9, abs=1e-9 * scale**2)
        assert moments.result()["std"] == pytest.approx(np.std(x, ddof=1), rel=1e-9, abs=1e-6 * scale)
    else:
        assert math.isnan(moments.variance) and math.isnan(moments.result()["std"])


def test_moments_of_nothing_or_only_nulls_count_zero() -> None:
    for values in ([], [None, math.nan]):
        moments = Moments().update(values)
        assert moments.n == 0 and moments.result()["n"] == 0
        assert math.isnan(moments.result()["mean"]) and math.isnan(moments.result()["std"])


def test_bin_counts_over_different_binnings_do_not_merge() -> None:
    other = NumericBinning.fit(range(100), grid=10, bins=2)
    with pytest.raises(ValueError, match="different binnings"):
        BinCounts(NUMERIC_GRID).merge(BinCounts(other))
    with pytest.raises(ValueError, match=f"expected {other.slots} counts"):
        BinCounts(other, np.zeros(3, dtype=np.int64))


def test_bin_counts_equality_compares_the_counts() -> None:
    a = BinCounts(NUMERIC_GRID).update([1.0, 2.0])
    assert a == BinCounts(NUMERIC_GRID).update([2.0, 1.0])
    assert a != BinCounts(NUMERIC_GRID).update([1.0, 500.0])
    assert a != BinCounts(VOCABULARY)


@PROPERTY
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.integers(1, 3000),
    level=st.floats(min_value=0.0, max_value=1.0),
    shape=st.sampled_from(["normal", "integers", "lognormal"]),
)
def test_grid_quantile_lies_in_the_fine_bin_of_the_data_quantile(seed, size, level, shape) -> None:
    """The docstring's "at most one fine bin's width": the grid estimate and the data's quantile
    (numpy's inverted-CDF definition, the one counts can resolve) share a fine bin."""
    rng = np.random.default_rng(seed)
    draw = {
        "normal": lambda n: rng.normal(0, 1, n),
        "integers": lambda n: rng.integers(0, 20, n).astype(float),
        "lognormal": lambda n: rng.lognormal(0, 1, n),
    }[shape]
    binning = NumericBinning.fit(draw(4000), grid=100, bins=10)
    data = draw(size)
    estimate = BinCounts(binning).update([*data, None]).quantile(level)

    exact = float(np.quantile(data, level, method="inverted_cdf"))
    edges = binning.edges
    slot = int(np.searchsorted(edges, exact, side="right"))
    if slot == 0:  # in the outer bins the estimate is the outer edge
        assert estimate == edges[0]
    elif slot == len(edges):
        assert estimate == edges[-1]
    else:
        assert edges[slot - 1] <= estimate <= edges[slot]
        assert abs(estimate - exact) <= edges[slot] - edges[slot - 1]


def test_grid_quantile_interpolates_linearly_inside_a_bin() -> None:
    binning = NumericBinning((0.0, 10.0, 20.0), (1,))  # bins (-inf, 0), [0, 10), [10, 20), [20, inf), null
    counts = BinCounts(binning, np.array([0, 4, 4, 0, 3]))  # nulls do not count
    # level 0.25 of 8 values: 2 of the 4 in [0, 10) -> halfway; 0.75: 2 of the 4 in [10, 20)
    assert [counts.quantile(q) for q in (0.0, 0.125, 0.25, 0.75, 1.0)] == [0.0, 2.5, 5.0, 15.0, 20.0]
    # level 0 is the lower edge of the first non-empty bin, not the grid's first edge
    assert BinCounts(binning, np.array([0, 0, 4, 0, 0])).quantile(0.0) == 10.0


def test_quantile_of_no_values_is_nan_and_of_a_vocabulary_is_an_error() -> None:
    assert math.isnan(BinCounts(NUMERIC_GRID).update([None]).quantile(0.5))
    with pytest.raises(TypeError, match="numeric binning"):
        BinCounts(VOCABULARY).update(["a"]).quantile(0.5)
