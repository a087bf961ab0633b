"""Frozen bins: quantile edges, [e_{j-1}, e_j) bins with outer and null slots, vocabularies."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.stats.binning import (
    NULL,
    OOV,
    CategoricalBinning,
    NumericBinning,
    binning_from_dict,
    category_label,
)

PROPERTY = settings(max_examples=150, deadline=None)

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_subnormal=False)
odd = st.sampled_from([None, math.nan, math.inf, -math.inf])
# continuous-looking data, heavily tied integers, or one repeated value
references = st.one_of(
    st.lists(finite, min_size=1, max_size=300),
    st.lists(st.integers(-3, 3).map(float), min_size=1, max_size=300),
    st.tuples(finite, st.integers(1, 50)).map(lambda vn: [vn[0]] * vn[1]),
)
with_odd_values = st.lists(st.one_of(finite, odd, st.integers(-3, 3).map(float)), max_size=200)
grids = st.integers(2, 10).flatmap(
    lambda bins: st.tuples(st.integers(1, 40).map(lambda m: m * bins), st.just(bins))
)


def finite_part(values) -> np.ndarray:
    x = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return x[np.isfinite(x)]


def slot_by_comparison(edges, value) -> int:
    """Bin of ``value`` written out: the number of edges at or below it; null/NaN after the value bins."""
    if value is None or math.isnan(value):
        return len(edges) + 1
    return sum(1 for e in edges if e <= value)


@PROPERTY
@given(reference=references, grid_bins=grids)
def test_fine_edges_are_the_distinct_reference_quantiles_and_contain_the_coarse_edges(reference, grid_bins):
    grid, bins = grid_bins
    binning = NumericBinning.fit([*reference, None, math.nan, math.inf], grid=grid, bins=bins)
    fine_quantiles = np.quantile(finite_part(reference), np.arange(1, grid) / grid)
    coarse_quantiles = np.quantile(finite_part(reference), np.arange(1, bins) / bins)

    edges = np.array(binning.edges)
    assert np.all(np.diff(edges) > 0)
    np.testing.assert_array_equal(edges, np.unique(fine_quantiles))
    coarse_edges = [binning.edges[i] for i in binning.coarse]
    np.testing.assert_array_equal(coarse_edges, np.unique(coarse_quantiles))
    assert set(coarse_edges) <= set(binning.edges)
    assert binning.slots == len(edges) + 2 and binning.null_slot == len(edges) + 1


@PROPERTY
@given(reference=references, grid_bins=grids, window=with_odd_values)
def test_each_value_lands_in_the_bin_closed_on_its_lower_edge_and_nulls_in_the_null_slot(
    reference, grid_bins, window
):
    grid, bins = grid_bins
    binning = NumericBinning.fit(reference, grid=grid, bins=bins)

    expected_slots = [slot_by_comparison(binning.edges, v) for v in window]
    assert binning.assign(window).tolist() == expected_slots
    expected_counts = np.zeros(binning.slots, dtype=np.int64)
    for slot in expected_slots:
        expected_counts[slot] += 1
    np.testing.assert_array_equal(binning.counts(window), expected_counts)


@PROPERTY
@given(reference=references, grid_bins=grids, window=with_odd_values)
def test_coarse_counts_of_fine_counts_equal_counting_with_the_coarse_edges(reference, grid_bins, window):
    grid, bins = grid_bins
    binning = NumericBinning.fit(reference, grid=grid, bins=bins)
    coarse_edges = np.array([binning.edges[i] for i in binning.coarse])

    x = np.array([np.nan if v is None else v for v in window], dtype=np.float64)
    values = x[~np.isnan(x)]
    direct = np.bincount(np.searchsorted(coarse_edges, values, side="right"), minlength=len(coarse_edges) + 1)
    expected = [*direct.tolist(), int(np.isnan(x).sum())]

    assert binning.coarse_counts(binning.counts(window)).tolist() == expected
    assert len(binning.coarse_labels()) == len(expected)


@PROPERTY
@given(reference=references, grid_bins=grids, window=with_odd_values)
def test_bins_are_half_open_between_minus_and_plus_infinity(reference, grid_bins, window):
    grid, bins = grid_bins
    binning = NumericBinning.fit(reference, grid=grid, bins=bins)
    splits = [-math.inf, *binning.edges, math.inf]

    for value, slot in zip(window, binning.assign(window).tolist(), strict=True):
        if value is None or math.isnan(value):
            assert slot == binning.null_slot
        elif value == math.inf:  # the last bin is closed at +inf
            assert slot == len(splits) - 2
        else:
            assert splits[slot] <= value < splits[slot + 1]


def test_a_value_equal_to_an_edge_goes_to_the_bin_above_it() -> None:
    binning = NumericBinning.fit([1.0, 2.0, 3.0, 4.0, 5.0], grid=4, bins=2)
    assert binning.edges == (2.0, 3.0, 4.0)  # the 25/50/75 % quantiles of 1..5
    assert binning.assign([1.999, 2.0, 2.999, 3.0, 4.0, 1e300]).tolist() == [0, 1, 1, 2, 3, 3]
    assert [binning.edges[i] for i in binning.coarse] == [3.0]
    assert binning.coarse_labels() == ["[-inf, 3)", "[3, inf)", NULL]


def test_a_frequent_tied_value_is_an_edge_and_alone_in_its_bin() -> None:
    rng = np.random.default_rng(7)
    reference = rng.poisson(2.0, 5000).astype(float)
    binning = NumericBinning.fit(reference, grid=100, bins=10)
    counts = binning.counts(reference)

    values, frequencies = np.unique(reference, return_counts=True)
    frequent = values[frequencies > 2 * reference.size / 100]
    assert len(frequent) >= 5
    for value, frequency in zip(values, frequencies, strict=True):
        if value in frequent:
            assert value in binning.edges
            assert counts[int(binning.assign([value])[0])] == frequency


def test_constant_data_gets_one_edge_splitting_below_from_at_or_above() -> None:
    binning = NumericBinning.fit([4.2] * 50 + [None])
    assert binning.edges == (4.2,) and binning.coarse == (0,)
    assert binning.counts([1.0, 4.2, 4.2, 9.0, None]).tolist() == [1, 3, 1]
    assert binning.coarse_counts([1, 3, 1]).tolist() == [1, 3, 1]


@pytest.mark.parametrize(
    ("values", "grid", "bins", "message"),
    [
        (
            [None, math.nan, math.inf, -math.inf],
            1000,
            10,
            "the reference has no finite values to fit bins on",
        ),
        ([], 1000, 10, "the reference has no finite values to fit bins on"),
        ([1.0, 2.0], 1000, 3, "grid (1000) must be a multiple of bins (3), and bins >= 2"),
        ([1.0, 2.0], 1000, 1, "grid (1000) must be a multiple of bins (1), and bins >= 2"),
        ([1.0, 2.0], 5, 10, "grid (5) must be a multiple of bins (10), and bins >= 2"),
    ],
)
def test_fit_refuses_with_a_message(values, grid, bins, message) -> None:
    with pytest.raises(ValueError) as caught:
        NumericBinning.fit(values, grid=grid, bins=bins)
    assert str(caught.value) == message


@pytest.mark.parametrize("edges", [(), (1.0, 1.0), (2.0, 1.0)])
def test_edges_that_are_empty_or_not_strictly_increasing_are_refused(edges) -> None:
    with pytest.raises(ValueError, match="strictly increasing"):
        NumericBinning(edges, ())


def test_numeric_binning_round_trips_through_json() -> None:
    binning = NumericBinning.fit(np.random.default_rng(3).lognormal(size=2000), grid=100, bins=5)
    restored = binning_from_dict(json.loads(json.dumps(binning.to_dict())))
    assert restored == binning
    assert isinstance(restored, NumericBinning)


# -- categorical ---------------------------------------------------------------------------


def test_vocabulary_then_out_of_vocabulary_then_null_slot() -> None:
    binning = CategoricalBinning.fit(["FR", "DE", "DE", None, "US", math.nan])
    assert binning.vocabulary == ("DE", "FR", "US")
    assert binning.labels == ("DE", "FR", "US", OOV, NULL)
    window = ["US", "BR", "DE", None, "JP", math.nan, "US"]
    assert binning.counts_of(window).tolist() == [1, 0, 2, 2, 2]


def test_booleans_are_labelled_as_spark_casts_them_to_strings() -> None:
    binning = CategoricalBinning.fit([True, False, np.bool_(True), 1, None])
    assert binning.vocabulary == ("1", "false", "true")
    assert binning.counts_of([True, np.bool_(False), "true", 1, 0]).tolist() == [1, 1, 2, 1, 0]
    assert [category_label(v) for v in (True, False, 3, 2.5, "x", None, math.nan)] == [
        "true", "false", "3", "2.5", "x", None, None,
    ]  # fmt: skip


def test_max_categories_keeps_the_most_frequent_values_ties_broken_by_value() -> None:
    values = ["d"] + ["c"] * 3 + ["b"] * 3 + ["a"] * 5
    binning = CategoricalBinning.fit(values, max_categories=2)
    assert binning.vocabulary == ("a", "b")
    assert binning.counts_of(values).tolist() == [5, 3, 4, 0]


def test_counts_from_a_value_count_mapping_merge_values_with_the_same_label() -> None:
    binning = CategoricalBinning.fit([True, False])
    assert binning.counts({True: 2, "true": 3, False: 1, "maybe": 4, None: 5}).tolist() == [1, 5, 4, 5]


def test_categorical_binning_round_trips_through_json() -> None:
    binning = CategoricalBinning.fit(["b", "a", True, 7, None])
    restored = binning_from_dict(json.loads(json.dumps(binning.to_dict())))
    assert restored == binning
    assert isinstance(restored, CategoricalBinning)


@pytest.mark.parametrize("kind", [None, "ordinal"])
def test_an_unknown_binning_type_is_refused_naming_the_known_ones(kind) -> None:
    with pytest.raises(ValueError) as caught:
        binning_from_dict({"type": kind, "vocabulary": []})
    assert str(caught.value) == f"binning type {kind!r} is not one of numeric, categorical"
