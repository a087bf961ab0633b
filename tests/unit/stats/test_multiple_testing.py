"""Benjamini-Hochberg against scipy, with None passthrough and the order kept."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import false_discovery_control

from driftline.stats.multiple_testing import adjust, benjamini_hochberg

PROPERTY = settings(max_examples=300, deadline=None)

p_value = st.one_of(
    st.floats(min_value=0.0, max_value=1.0),
    st.sampled_from([0.0, 0.001, 0.01, 0.05, 1.0]),  # ties
)


@PROPERTY
@given(p_values=st.lists(p_value, min_size=1, max_size=60))
def test_bh_equals_scipy_false_discovery_control(p_values) -> None:
    expected = false_discovery_control(np.array(p_values), method="bh")
    assert benjamini_hochberg(p_values) == pytest.approx(expected.tolist(), rel=1e-12, abs=1e-15)


@PROPERTY
@given(p_values=st.lists(st.one_of(p_value, st.none()), max_size=60))
def test_none_passes_through_in_place_and_does_not_count_towards_m(p_values) -> None:
    adjusted = benjamini_hochberg(p_values)
    assert len(adjusted) == len(p_values)
    assert [i for i, p in enumerate(adjusted) if p is None] == [
        i for i, p in enumerate(p_values) if p is None
    ]

    present = [p for p in p_values if p is not None]
    if present:  # the family is only the p-values that exist, in their original order
        expected = false_discovery_control(np.array(present), method="bh").tolist()
        assert [p for p in adjusted if p is not None] == pytest.approx(expected, rel=1e-12, abs=1e-15)
    for raw, adj in zip(p_values, adjusted, strict=True):
        if raw is not None:
            assert raw <= adj <= 1.0


def test_worked_example_keeps_the_input_order() -> None:
    # sorted: 0.01 (rank 1), 0.03 (2), 0.04 (3), 0.5 (4); m = 4
    # 0.01 * 4 / 1 = 0.04; 0.03 * 4 / 2 = 0.06 -> min with 0.04 * 4 / 3; 0.5 * 4 / 4 = 0.5
    assert benjamini_hochberg([0.5, 0.03, 0.01, 0.04]) == pytest.approx([0.5, 0.16 / 3, 0.04, 0.16 / 3])


def test_nan_is_left_out_of_the_family_and_stays_nan() -> None:
    adjusted = benjamini_hochberg([0.01, math.nan, 0.02])
    assert math.isnan(adjusted[1])
    assert adjusted[0] == pytest.approx(0.02) and adjusted[2] == pytest.approx(0.02)  # m = 2, not 3


def test_no_correction_is_the_identity_and_an_unknown_one_is_refused() -> None:
    p_values = [0.3, None, 0.001, 1.0]
    assert adjust(p_values, "none") == p_values
    assert adjust(p_values, "bh") == benjamini_hochberg(p_values)
    with pytest.raises(ValueError) as caught:
        adjust(p_values, "bonferroni")
    assert str(caught.value) == "unknown correction 'bonferroni'; valid: bh, none"


def test_the_largest_p_value_is_never_adjusted_below_itself() -> None:
    # p * m / m must stay p: computed as (p * m) / m it came out one ulp lower
    raw = [0.0, 0.0, 0.0, 0.0, 0.9321216678348976]
    assert benjamini_hochberg(raw)[-1] == raw[-1]
