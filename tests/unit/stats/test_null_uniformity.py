"""Calibration by simulation: under no drift the p-values are uniform; a real shift is found.

Findings that shaped these tests (measured over 40 seeds each, 1,000 windows of 500 rows against a
reference of 20,000 normal draws):

- KS on a 1,000-bin grid gives p-values that are valid but measurably *conservative*: the grid
  statistic is below the exact one by about half a fine bin (mean 0.0005, about 4 % of the
  statistic's spread under the null). A two-sided uniformity test rejects at 1 % for 25 of 40 seeds;
  the one-sided test for p-values that are too small never does. With the default 10,000-bin grid
  the two-sided test rejects for 0 of 40 seeds, which is why 10,000 is the default. Uniformity is
  tested on the default grid, and validity (never too small) on a coarse one.
- All windows scored against one shared reference are correlated through it; for chi-square that
  alone made the two-sided test reject for 2 of 40 seeds (0 of 40 with a fresh reference per
  window), so the chi-square test draws a fresh reference per window, as the uniformity claim is
  about reference and window sampling together.
"""

import numpy as np
from scipy import stats as scipy_stats

from driftline.stats.binning import DEFAULT_GRID, CategoricalBinning, NumericBinning
from driftline.stats.methods import chi2, ks
from driftline.stats.policy import AlertPolicy, Verdict

REFERENCE_ROWS, WINDOWS, WINDOW_ROWS = 20_000, 1_000, 500
CATEGORIES = {"card": 0.45, "bank": 0.25, "wallet": 0.15, "cash": 0.1, "crypto": 0.05}


def ks_p_values(
    rng: np.random.Generator, grid: int = DEFAULT_GRID, shift: float = 0.0, windows: int = WINDOWS
) -> list:
    reference = rng.normal(size=REFERENCE_ROWS)
    binning = NumericBinning.fit(reference, grid=grid)
    fine = slice(0, binning.null_slot)
    reference_counts = binning.counts(reference)[fine]
    return [
        ks(reference_counts, binning.counts(window)[fine])
        for window in rng.normal(shift, 1.0, size=(windows, WINDOW_ROWS))
    ]


def test_ks_p_values_are_uniform_under_no_drift_on_the_default_grid() -> None:
    p_values = [m.p_value for m in ks_p_values(np.random.default_rng(1))]
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.01


def test_ks_p_values_on_a_coarse_grid_are_never_too_small_under_no_drift() -> None:
    p_values = np.array([m.p_value for m in ks_p_values(np.random.default_rng(1), grid=1000)])
    # alternative="greater": the p-values' CDF lies above the uniform one somewhere, i.e. false alarms
    assert scipy_stats.kstest(p_values, "uniform", alternative="greater").pvalue > 0.01
    for level in (0.01, 0.05):  # false-alarm rate at most nominal, allowing three binomial SDs
        assert np.mean(p_values <= level) <= level + 3 * np.sqrt(level * (1 - level) / WINDOWS)


def test_chi2_p_values_are_uniform_under_no_drift() -> None:
    rng = np.random.default_rng(1)
    labels, shares = list(CATEGORIES), list(CATEGORIES.values())
    binning = CategoricalBinning.fit(labels)
    p_values = []
    for _ in range(WINDOWS):
        reference = binning.counts(dict(zip(labels, rng.multinomial(REFERENCE_ROWS, shares), strict=True)))
        window = binning.counts_of(rng.choice(labels, size=WINDOW_ROWS, p=shares))
        p_values.append(chi2(reference, window).p_value)
    assert scipy_stats.kstest(p_values, "uniform").pvalue > 0.01


def test_a_half_sigma_shift_is_drifted_in_nearly_every_window() -> None:
    policy = AlertPolicy()
    measures = ks_p_values(np.random.default_rng(1), shift=0.5, windows=200)
    verdicts = [policy.verdict("ks", m.effect, m.p_value, WINDOW_ROWS) for m in measures]
    assert np.mean([v is Verdict.DRIFTED for v in verdicts]) > 0.95
