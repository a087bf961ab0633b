"""Drift measures over counts, each checked against an independent computation (scipy or numpy by hand)."""

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as scipy_stats
from scipy.spatial.distance import jensenshannon
from scipy.stats.contingency import association

from driftline.stats.binning import CategoricalBinning, NumericBinning
from driftline.stats.methods import METHODS, Measure, chi2, drift_method, js, ks, null_rate, psi
from driftline.stats.policy import AlertPolicy

PROPERTY = settings(max_examples=200, deadline=None)

count_vectors = st.integers(1, 12).flatmap(
    lambda k: st.tuples(
        st.lists(st.integers(0, 400), min_size=k, max_size=k),
        st.lists(st.integers(0, 400), min_size=k, max_size=k),
    )
)


def psi_by_hand(reference, current, alpha=0.5) -> float:
    """The docstring's PSI, written out: drop bins empty in both, add ``alpha`` to every other bin."""
    kept = [(e, a) for e, a in zip(reference, current, strict=True) if e + a > 0]
    total_e, total_a = sum(e for e, _ in kept), sum(a for _, a in kept)
    k = len(kept)
    value = 0.0
    for e, a in kept:
        share_e = (e + alpha) / (total_e + alpha * k)
        share_a = (a + alpha) / (total_a + alpha * k)
        value += (share_a - share_e) * math.log(share_a / share_e)
    return value


def non_empty(pair) -> bool:
    reference, current = pair
    return sum(reference) > 0 and sum(current) > 0


# -- PSI ------------------------------------------------------------------------------------


@PROPERTY
@given(pair=count_vectors.filter(non_empty))
def test_psi_equals_the_smoothed_formula_computed_by_hand(pair) -> None:
    reference, current = pair
    measure = psi(reference, current)
    expected = psi_by_hand(reference, current)
    assert measure.score == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert measure.effect == measure.score and measure.p_value is None
    assert math.isfinite(measure.score) and measure.score >= -1e-15


@pytest.mark.parametrize("seed", range(20))
def test_psi_on_coarse_bins_of_random_samples_equals_the_hand_computation(seed) -> None:
    rng = np.random.default_rng(seed)
    binning = NumericBinning.fit(rng.gamma(2.0, size=5000))
    shift = rng.uniform(-0.5, 0.5)
    reference = binning.coarse_counts(binning.counts(rng.gamma(2.0, size=5000)))
    current = binning.coarse_counts(binning.counts(rng.gamma(2.0, size=700) + shift))
    assert psi(reference, current).score == pytest.approx(
        psi_by_hand(reference, current), rel=1e-9, abs=1e-12
    )


def test_psi_golden_value_worked_by_hand() -> None:
    # shares with alpha = 0.5 over two bins: (90.5/101, 10.5/101) vs (50.5/101, 50.5/101)
    e, a = (90.5 / 101, 10.5 / 101), (0.5, 0.5)
    expected = (a[0] - e[0]) * math.log(a[0] / e[0]) + (a[1] - e[1]) * math.log(a[1] / e[1])
    assert psi([90, 10], [50, 50]).score == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.853059, abs=1e-6)


def test_a_category_absent_from_the_reference_gives_a_finite_psi_above_the_threshold() -> None:
    binning = CategoricalBinning.fit(["a"] * 500 + ["b"] * 500)
    reference = binning.counts({"a": 500, "b": 500})
    current = binning.counts({"a": 200, "b": 200, "new": 100})  # "new" lands in the OOV slot
    measure = psi(reference, current)
    assert math.isfinite(measure.score)
    assert measure.score == pytest.approx(psi_by_hand(reference, current), rel=1e-12)
    assert measure.score > AlertPolicy().psi_threshold
    test = chi2(reference, current)
    assert math.isfinite(test.score) and test.p_value < 1e-20
    assert test.details["dof"] == 2  # a, b and OOV; the null slot is empty in both


def test_psi_grows_with_the_share_of_an_unseen_category_rather_than_an_epsilon() -> None:
    scores = [psi([1000, 0], [1000 - k, k]).score for k in (1, 10, 100, 500)]
    assert all(math.isfinite(s) for s in scores)
    assert scores == sorted(scores) and scores[0] < 0.01 < scores[-1]


# -- KS -------------------------------------------------------------------------------------

SHAPES = {
    "normal": lambda rng, n: rng.normal(0, 1, n),
    "exponential": lambda rng, n: rng.exponential(1, n),
    "integers": lambda rng, n: rng.integers(0, 6, n).astype(float),
    "rounded": lambda rng, n: np.round(rng.uniform(0, 1, n), 1),
    "point-mass": lambda rng, n: np.where(rng.uniform(size=n) < 0.3, 0.0, rng.lognormal(0, 1, n)),
    "constant": lambda rng, n: np.full(n, 2.0),
}


@settings(max_examples=300, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    reference_shape=st.sampled_from(sorted(SHAPES)),
    current_shape=st.sampled_from(sorted(SHAPES)),
    shift=st.sampled_from([0.0, 0.0, 0.05, 0.5, 2.0]),
    scale=st.sampled_from([1.0, 1.0, 2.0]),
    reference_size=st.integers(2, 3000),
    current_size=st.integers(1, 2000),
    grid=st.sampled_from([10, 100, 1000]),
    nulls=st.integers(0, 20),
)
def test_grid_ks_is_within_the_documented_bound_below_the_exact_statistic(
    seed, reference_shape, current_shape, shift, scale, reference_size, current_size, grid, nulls
) -> None:
    rng = np.random.default_rng(seed)
    reference = SHAPES[reference_shape](rng, reference_size)
    current = SHAPES[current_shape](rng, current_size) * scale + shift
    binning = NumericBinning.fit(reference, grid=grid, bins=10)
    fine = slice(0, binning.null_slot)  # value bins only: KS ignores nulls
    reference_counts = binning.counts(reference)[fine]
    current_counts = binning.counts([*current, *[None] * nulls])[fine]

    measure = ks(reference_counts, current_counts)
    exact = scipy_stats.ks_2samp(reference, current).statistic
    bound = measure.details["ks_bound"]

    assert measure.score <= exact + 1e-12
    assert exact - measure.score <= bound + 1e-12
    r, c = reference_counts / reference_size, current_counts / current_size
    assert bound == pytest.approx(min(r.max(), c.max()), rel=1e-12)
    n_e = reference_size * current_size / (reference_size + current_size)
    stephens = (math.sqrt(n_e) + 0.12 + 0.11 / math.sqrt(n_e)) * measure.score
    assert measure.p_value == pytest.approx(min(1.0, special.kolmogorov(stephens)), rel=1e-9, abs=1e-15)
    assert measure.effect == measure.score


def test_ks_bound_is_about_one_over_the_grid_for_continuous_data() -> None:
    rng = np.random.default_rng(5)
    reference = rng.normal(size=20_000)
    binning = NumericBinning.fit(reference)  # default grid of 1000
    fine = slice(0, binning.null_slot)
    measure = ks(binning.counts(reference)[fine], binning.counts(rng.normal(size=1000))[fine])
    assert measure.details["ks_bound"] <= 1 / 1000 + 2 / reference.size


def test_ks_of_a_shift_beyond_the_whole_reference_misses_only_the_top_fine_bin() -> None:
    reference = np.arange(100.0)
    binning = NumericBinning.fit(reference, grid=10, bins=2)
    fine = slice(0, binning.null_slot)
    measure = ks(binning.counts(reference)[fine], binning.counts(reference + 1000)[fine])
    # exact D is 1; the grid cannot see inside its top bin, which holds 10 of the 100 reference values
    assert measure.score == pytest.approx(0.9) and measure.details["ks_bound"] == pytest.approx(0.1)
    assert measure.p_value < 1e-20


# -- chi-square -----------------------------------------------------------------------------


@PROPERTY
@given(pair=count_vectors)
def test_chi2_equals_scipy_on_the_table_without_empty_columns(pair) -> None:
    reference, current = np.array(pair[0]), np.array(pair[1])
    table = np.vstack([reference, current])
    table = table[:, table.sum(axis=0) > 0]
    assume(table.shape[1] >= 2 and reference.sum() > 0 and current.sum() > 0)

    measure = chi2(reference, current)
    expected = scipy_stats.chi2_contingency(table, correction=False)
    assert measure.score == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert measure.p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
    assert measure.details["dof"] == expected.dof

    # Cramer's V of the table with both rows scaled to the same total (R * C each)
    equal_weight = np.vstack([table[0] * table[1].sum(), table[1] * table[0].sum()])
    assert measure.effect == pytest.approx(association(equal_weight, method="cramer"), rel=1e-9, abs=1e-12)
    assert 0.0 <= measure.effect <= 1.0


def test_cramers_v_does_not_depend_on_the_reference_size() -> None:
    reference, current = np.array([30, 50, 20]), np.array([40, 40, 20])
    assert chi2(reference * 100, current).effect == pytest.approx(chi2(reference, current).effect, rel=1e-12)
    assert chi2(reference * 100, current).score > chi2(reference, current).score  # unlike the statistic


def test_cramers_v_is_one_for_disjoint_samples_and_zero_for_equal_shares() -> None:
    assert chi2([10, 0, 0], [0, 5, 5]).effect == pytest.approx(1.0)
    same = chi2([10, 20, 30], [20, 40, 60])
    assert same.effect == 0.0 and same.score == 0.0 and same.p_value == pytest.approx(1.0)


def test_chi2_of_a_single_shared_category_is_no_evidence() -> None:
    measure = chi2([50, 0, 0], [20, 0, 0])
    assert (measure.score, measure.effect, measure.p_value, measure.details["dof"]) == (0.0, 0.0, 1.0, 0)


# -- Jensen-Shannon -------------------------------------------------------------------------


@PROPERTY
@given(pair=count_vectors.filter(non_empty))
def test_js_equals_scipy_jensenshannon_base_2(pair) -> None:
    reference, current = pair
    measure = js(reference, current)
    expected = jensenshannon(np.array(reference, float), np.array(current, float), base=2)
    assert measure.score == pytest.approx(expected, rel=1e-9, abs=1e-7)
    assert 0.0 <= measure.score <= 1.0 and measure.p_value is None


# -- null rate ------------------------------------------------------------------------------

null_pairs = st.tuples(st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 5000), st.integers(0, 5000))


@PROPERTY
@given(counts=null_pairs.filter(lambda c: c[0] + c[1] > 0 and c[2] + c[3] > 0))
def test_null_rate_p_value_equals_pearson_on_the_2x2_table_and_h_is_cohens(counts) -> None:
    """The two-proportion z-test's p-value is Pearson's chi-square on the 2 x 2 table
    without Yates' correction (scipy); h is Cohen's arcsine difference, computed apart."""
    valued_e, nulls_e, valued_a, nulls_a = counts
    measure = null_rate([valued_e, nulls_e], [valued_a, nulls_a])
    p_e, p_a = nulls_e / (valued_e + nulls_e), nulls_a / (valued_a + nulls_a)
    h = abs(2 * np.arcsin(np.sqrt(p_a)) - 2 * np.arcsin(np.sqrt(p_e)))
    assert measure.effect == pytest.approx(h, abs=1e-12) and measure.score == measure.effect
    table = np.array([[valued_e, nulls_e], [valued_a, nulls_a]])
    if (table.sum(axis=0) == 0).any():  # no nulls, or only nulls, on both sides: nothing moved
        assert measure.p_value == 1.0 and measure.effect == 0.0
        return
    expected = scipy_stats.chi2_contingency(table, correction=False).pvalue
    assert measure.p_value == pytest.approx(expected, rel=1e-6, abs=1e-300)


def test_null_rate_of_10_to_20_percent_is_a_small_effect_that_psi_dilutes() -> None:
    """The issue's case: nulls from 10% to 20% at 3,000 rows, values spread over ten even
    bins. Cohen's h 0.284 passes the 0.2 floor with a tiny p-value; PSI over the same
    slots stays under its 0.2 threshold, and KS (values only) sees no change at all."""
    reference = [270] * 10 + [300]  # ten value bins of 9%, then 10% nulls
    current = [240] * 10 + [600]  # ten of 8%, 20% nulls
    measure = null_rate(shaped("null_rate", reference), shaped("null_rate", current))
    assert measure.effect == pytest.approx(2 * math.asin(math.sqrt(0.2)) - 2 * math.asin(math.sqrt(0.1)))
    assert measure.p_value < 1e-15
    assert measure.details == {"reference_share": 0.1, "current_share": 0.2}
    policy = AlertPolicy()
    assert policy.verdict("null_rate", measure.effect, measure.p_value, 3000) == "drifted"
    assert psi(reference, current).score < policy.psi_threshold
    assert ks(reference[:-1], current[:-1]).score == 0.0


def test_null_rate_refuses_counts_other_than_valued_and_null() -> None:
    with pytest.raises(ValueError, match=r"null_rate takes \[non-null, null\] counts, got 3 slots"):
        null_rate([1, 2, 3], [1, 2, 3])


# -- every registered method ----------------------------------------------------------------

registered = pytest.mark.parametrize("name", sorted(METHODS))
# methods over bins of values (the null rate takes [non-null, null], below)
binned = pytest.mark.parametrize("name", sorted(n for n, m in METHODS.items() if m.counts != "nulls"))


def shaped(name: str, counts):
    """``counts`` (slots, the null slot last) as the method ``name`` takes them."""
    if drift_method(name).counts == "nulls":
        return [sum(counts[:-1]), counts[-1]]
    return counts


@binned
@PROPERTY
@given(pair=count_vectors.filter(non_empty), where=st.integers(0, 12))
def test_a_bin_empty_in_both_samples_changes_nothing(name, pair, where) -> None:
    reference, current = pair
    where = min(where, len(reference))
    compute = drift_method(name).compute
    widened = compute([*reference[:where], 0, *reference[where:]], [*current[:where], 0, *current[where:]])
    plain = compute(reference, current)
    assert widened.score == pytest.approx(plain.score, rel=1e-12, abs=1e-15)
    assert widened.effect == pytest.approx(plain.effect, rel=1e-12, abs=1e-15)
    assert (widened.p_value is None) == (plain.p_value is None)
    if plain.p_value is not None:
        assert widened.p_value == pytest.approx(plain.p_value, rel=1e-9, abs=1e-15)


@registered
@PROPERTY
@given(pair=count_vectors.filter(non_empty))
def test_swapping_reference_and_current_gives_the_same_score(name, pair) -> None:
    reference, current = shaped(name, pair[0]), shaped(name, pair[1])
    compute = drift_method(name).compute
    forward, backward = compute(reference, current), compute(current, reference)
    assert forward.score == pytest.approx(backward.score, rel=1e-9, abs=1e-12)
    assert forward.effect == pytest.approx(backward.effect, rel=1e-9, abs=1e-12)


@registered
def test_identical_counts_score_zero(name) -> None:
    counts = shaped(name, [120, 0, 30, 7, 0, 43])
    measure = drift_method(name).compute(counts, counts)
    assert isinstance(measure, Measure) and measure.method == name
    assert measure.score == 0.0 and measure.effect == 0.0
    assert measure.p_value is None or measure.p_value == pytest.approx(1.0)


@registered
def test_an_empty_window_gives_nan_which_the_policy_treats_as_insufficient(name) -> None:
    measure = drift_method(name).compute(shaped(name, [10, 20, 30]), shaped(name, [0, 0, 0]))
    assert math.isnan(measure.effect)
    assert AlertPolicy().verdict(name, measure.effect, measure.p_value, 10_000) == "insufficient"


@binned
def test_counts_of_different_lengths_are_refused(name) -> None:
    with pytest.raises(ValueError, match=r"differ in length: \(3,\) vs \(2,\)"):
        drift_method(name).compute([1, 2, 3], [1, 2])


def test_registry_lists_the_valid_names_for_an_unknown_method() -> None:
    with pytest.raises(KeyError) as caught:
        drift_method("nope")
    valid = ("psi", "ks", "chi2", "js", "null_rate")
    assert caught.value.args[0] == f"unknown drift method 'nope'; valid methods: {', '.join(valid)}"
    assert {name: drift_method(name).name for name in METHODS} == {n: n for n in valid}
