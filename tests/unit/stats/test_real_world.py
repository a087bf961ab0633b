"""driftline.stats on real data with documented drift, shipped offline inside statsmodels.

Two data sets, two kinds of drift, nothing downloaded at run time:

Nile (``statsmodels.datasets.nile``) -- a *level shift*.
    Annual flow of the Nile at Aswan, 1871-1970 (10^8 m^3). The flow drops abruptly
    from 1899 on (mean 1097.75 over 1871-1898, 849.97 over 1899-1970): Cobb, G. W.
    (1978), "The problem of the Nile: conditional solution to a changepoint problem",
    Biometrika 65(2), 243-251; the canonical change-point example (statsmodels'
    description: "an apparent changepoint near 1898"), usually attributed to the
    first Aswan dam (building began 1898) and a drier climate. KS, whose p-value
    accounts for the tiny sample, is the method that must see it.

US real GDP growth (``statsmodels.datasets.macrodata``) -- a *variance drop* (the
"Great Moderation").
    Quarterly real GDP 1959Q1-2009Q3; the annualised quarter-on-quarter growth rate
    keeps about the same mean after 1984 (3.4 % -> 3.1 %) but its standard deviation
    halves (4.3 -> 2.1 points): McConnell, M. M. and Perez-Quiros, G. (2000), "Output
    fluctuations in the United States: what has changed since the early 1980's?",
    American Economic Review 90(5), 1464-1476, and Kim, C.-J. and Nelson, C. R.
    (1999), Review of Economics and Statistics 81(4), 608-616, both date the break
    at 1984Q1. A scale change with an unchanged centre is what KS is weakest at and
    PSI (mass leaving the outer bins) sees: PSI must flag it, KS does not.

Every undrifted window the tests judge is out of sample: held out of the reference
it is compared with. Nothing here is random.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats
from statsmodels.datasets import macrodata, nile

from driftline.stats import AlertPolicy, FeatureScore, PolicyState, ReferenceProfile, Verdict

# -- Nile ------------------------------------------------------------------------------
NILE_CHANGE = 1899  # first year of the lower level (Cobb 1978)
NILE_DECADE = 10
# Windows are decades of annual data: min_rows=10 judges complete decades only (the
# 1969-1970 tail is "insufficient"). 10 rows suffice for KS: with a 28-year
# reference n_e = 28 * 10 / 38 = 7.4, and D >= 0.6 already gives p < 0.01.
NILE_POLICY = AlertPolicy(min_rows=NILE_DECADE)
# PSI is scored but its verdict is not asserted on the Nile: with 10 rows its sampling
# noise is of the order of the 0.2 rule-of-thumb threshold (held-out pre-change
# decades score 0.30-1.18 with the default 10 bins), and PSI has no p-value to
# account for n. Its direction and value are checked instead.

# -- GDP growth ------------------------------------------------------------------------
GDP_BREAK = 1984  # 1984Q1 (McConnell & Perez-Quiros 2000; Kim & Nelson 1999)
GDP_WINDOW = 40  # ten years of quarters
# PSI on quartile bins: PSI's sampling noise is about (K - 1) * (1/N + 1/M) for K bins
# and N, M rows. With the default K = 10 and windows of 40-50 quarters that is ~0.4,
# twice the 0.2 threshold, so noise alone would alert; with K = 4 it is 0.09-0.13.
GDP_BINS = 4
GDP_POLICY = AlertPolicy(min_rows=GDP_WINDOW)


@pytest.fixture(scope="module")
def flow() -> pd.DataFrame:
    data = nile.load_pandas().data
    return pd.DataFrame({"year": data["year"].astype(int), "volume": data["volume"].astype(float)})


@pytest.fixture(scope="module")
def growth() -> pd.DataFrame:
    data = macrodata.load_pandas().data
    return pd.DataFrame({
        "year": data["year"].to_numpy()[1:].astype(int),
        "quarter": data["quarter"].to_numpy()[1:].astype(int),
        "growth": 400 * np.diff(np.log(data["realgdp"].to_numpy())),  # annualised, in %
    })  # fmt: skip


def years(frame: pd.DataFrame, first: int, last: int) -> pd.DataFrame:
    return frame[(frame["year"] >= first) & (frame["year"] <= last)]


def scored(profile: ReferenceProfile, frame: pd.DataFrame, policy: AlertPolicy) -> dict[str, FeatureScore]:
    """Score ``frame`` with PSI and KS; the FeatureScores carry ``ks_bound`` and ``top_shifted``."""
    counts = {name: f.window_counts(frame[name].to_numpy()) for name, f in profile.features.items()}
    return {s.method: s for s in profile.score(counts, methods=("psi", "ks"), policy=policy)}


def independent_psi(reference: np.ndarray, current: np.ndarray, bins: int, alpha: float = 0.5) -> float:
    """PSI from raw values, written from the methods docstring: bins at the reference's
    ``k / bins`` quantiles, ``[a, b)``; bins empty on both sides dropped; pseudo-count ``alpha``."""
    edges = np.unique(np.quantile(reference, np.arange(1, bins) / bins))
    e = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1)
    a = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1)
    keep = (e + a) > 0
    e, a = e[keep].astype(float), a[keep].astype(float)
    p_e = (e + alpha) / (e.sum() + alpha * e.size)
    p_a = (a + alpha) / (a.sum() + alpha * a.size)
    return float(np.sum((p_a - p_e) * np.log(p_a / p_e)))


def check_against_scipy(ks: FeatureScore, reference: np.ndarray, current: np.ndarray) -> None:
    """The grid KS statistic is the exact one to within ``ks_bound``, and its p-value is
    the documented Stephens-corrected Kolmogorov tail of it (close to scipy's exact one)."""
    exact = stats.ks_2samp(reference, current)
    bound = ks.details["ks_bound"]
    # at most the reference's largest share in one fine bin: a value's ties (1160 is there 3 times)
    assert 0 < bound <= np.unique(reference, return_counts=True)[1].max() / reference.size
    assert -1e-12 <= exact.statistic - ks.score <= bound + 1e-12
    n_e = reference.size * current.size / (reference.size + current.size)
    root = math.sqrt(n_e)
    assert ks.p_value == pytest.approx(stats.kstwobign.sf((root + 0.12 + 0.11 / root) * ks.score), rel=1e-9)
    assert (ks.p_value <= 0.01) == (exact.pvalue <= 0.01)
    if exact.pvalue >= 1e-3:  # asymptotic vs exact: close where it matters
        assert 0.8 <= ks.p_value / exact.pvalue <= 1.25


# -- Nile: a level shift ---------------------------------------------------------------
def test_nile_data_is_the_documented_series(flow):
    assert len(flow) == 100 and flow["year"].tolist() == list(range(1871, 1971))
    before = years(flow, 1871, NILE_CHANGE - 1)["volume"]
    after = years(flow, NILE_CHANGE, 1970)["volume"]
    assert before.mean() == pytest.approx(1097.75) and after.mean() == pytest.approx(849.972, abs=1e-3)


def test_nile_post_change_decades_are_flagged_by_ks(flow):
    reference = years(flow, 1871, NILE_CHANGE - 1)  # all 28 pre-change years
    profile = ReferenceProfile.fit(reference, numeric=["volume"])
    state, events = PolicyState(), []
    flagged, insufficient = [], []
    for start in range(NILE_CHANGE, 1971, NILE_DECADE):
        window = years(flow, start, start + NILE_DECADE - 1)
        result = profile.compare(window, methods=("psi", "ks"), policy=NILE_POLICY).set_index("method")
        by_method = scored(profile, window, NILE_POLICY)
        ks, psi = by_method["ks"], by_method["psi"]
        # the notebook API and the streaming path (counts -> score) agree
        assert result.loc["ks", "score"] == ks.score and result.loc["ks", "verdict"] == str(ks.verdict)
        assert result.loc["ks", "p_adjusted"] == ks.p_adjusted == ks.p_value  # one p-value in the family
        assert result.loc["psi", "score"] == psi.score and psi.p_value is None
        if ks.verdict is Verdict.INSUFFICIENT:
            insufficient.append(start)
            continue
        label = f"{start}-{start + NILE_DECADE - 1}"
        if ks.drifted:
            flagged.append(start)
        events.append((label, state.observe(NILE_POLICY, "volume/ks", label, ks.verdict)))
        # the level fell: D is large, and the lowest PSI bin is the one that gained most
        assert ks.score > 0.5
        check_against_scipy(ks, reference["volume"].to_numpy(), window["volume"].to_numpy())
        top = psi.top_shifted[0]
        assert top["bin"].startswith("[-inf,") and top["current"] >= 0.6 > 0.11 > top["reference"]
        assert psi.score == pytest.approx(
            independent_psi(reference["volume"].to_numpy(), window["volume"].to_numpy(), bins=10), rel=1e-9
        )
        assert psi.score > 1.0
    # 6 of the 7 full decades; 1909-1918 (two 1100+ years in it) has D = 0.529 but
    # p = 0.0197 > 0.01, so it is "clear". The 1969-1970 tail has 2 rows.
    assert flagged == [1899, 1919, 1929, 1939, 1949, 1959]
    assert insufficient == [1969]
    # with persistence 2-of-3 the alert fires at 1919-1928, dating the episode from 1899-1908
    assert [label for label, event in events if event == "fired"] == ["1919-1928"]
    assert state.tracks["volume/ks"].since == "1899-1908"


def test_nile_pre_change_decades_held_out_are_not_flagged(flow):
    """Each of the 19 decades inside 1871-1898, held out of a reference fitted on the other 18 years."""
    pre = years(flow, 1871, NILE_CHANGE - 1)
    judged = {}
    for start in range(1871, NILE_CHANGE - NILE_DECADE + 1):
        inside = pre["year"].between(start, start + NILE_DECADE - 1)
        profile = ReferenceProfile.fit(pre[~inside], numeric=["volume"])
        ks = scored(profile, pre[inside], NILE_POLICY)["ks"]
        check_against_scipy(ks, pre.loc[~inside, "volume"].to_numpy(), pre.loc[inside, "volume"].to_numpy())
        judged[start] = ks
    assert len(judged) == 19
    assert not any(ks.drifted for ks in judged.values())
    assert all(ks.verdict is Verdict.CLEAR for ks in judged.values())
    # the closest call: 1880-1889 and 1881-1890 (both hold 1888, 799, the lowest pre-change year)
    assert min(ks.p_adjusted for ks in judged.values()) == pytest.approx(0.0128, abs=5e-4)


def test_nile_first_flagged_window_contains_the_change_point(flow):
    """A monitor with a reference of 1871-1888 scans sliding decades from 1889 on."""
    reference = years(flow, 1871, 1888)
    profile = ReferenceProfile.fit(reference, numeric=["volume"])
    verdicts = {}
    for start in range(1889, 1971 - NILE_DECADE + 1):
        window = years(flow, start, start + NILE_DECADE - 1)
        verdicts[start] = profile.compare(window, methods=("ks",), policy=NILE_POLICY)["drifted"].item()
    first = min(start for start, drifted in verdicts.items() if drifted)
    # 1897-1906: the first decade with 8 post-change years; 1889-1898 (all pre-change)
    # to 1896-1905 (7 post-change years, p = 0.032) are clear
    assert first == 1897 and first <= NILE_CHANGE <= first + NILE_DECADE - 1
    assert not any(verdicts[start] for start in range(1889, first))
    # against an 18-year reference power is lower: 46 of the 65 decades from 1897 on are
    # flagged; the misses, 1901-1910 .. 1910-1919, 1929-1938 and 1952-1961 .. 1959-1968,
    # have D >= 0.46 but p between 0.0128 and 0.097 (wetter years: 1908-1910, 1916-1917, 1964)
    flagged = [start for start, drifted in verdicts.items() if drifted]
    assert flagged == [*range(1897, 1901), *range(1911, 1929), *range(1930, 1952), 1960, 1961]


def test_nile_from_pyarrow_matches_pandas(flow):
    profile = ReferenceProfile.fit(pa.Table.from_pandas(years(flow, 1871, 1898)), numeric=["volume"])
    assert (
        profile.fingerprint == ReferenceProfile.fit(years(flow, 1871, 1898), numeric=["volume"]).fingerprint
    )
    window = years(flow, 1899, 1908)
    from_arrow = profile.compare(pa.Table.from_pandas(window), policy=NILE_POLICY)
    pd.testing.assert_frame_equal(from_arrow, profile.compare(window, policy=NILE_POLICY))


# -- GDP growth: a variance drop -------------------------------------------------------
def test_gdp_growth_data_shows_the_documented_variance_drop(growth):
    assert len(growth) == 202 and (growth["year"].iloc[0], growth["quarter"].iloc[0]) == (1959, 2)
    before = years(growth, 1959, GDP_BREAK - 1)["growth"]
    after = years(growth, GDP_BREAK, 2007)["growth"]
    assert len(before) == 99 and len(after) == 96
    assert after.std() / before.std() == pytest.approx(0.47, abs=0.01)
    assert abs(after.mean() - before.mean()) < 0.35


def test_gdp_growth_psi_flags_the_great_moderation_and_ks_does_not(growth):
    reference = years(growth, 1959, GDP_BREAK - 1)  # 1959Q2-1983Q4, 99 quarters
    profile = ReferenceProfile.fit(reference, numeric=["growth"], bins=GDP_BINS)
    ref_values = reference["growth"].to_numpy()
    expected = {(1984, 1995): (0.712, 0.0313), (1996, 2007): (0.642, 0.0846)}  # PSI, KS p
    for (first, last), (psi_value, ks_p) in expected.items():
        window = years(growth, first, last)
        by_method = scored(profile, window, GDP_POLICY)
        psi, ks = by_method["psi"], by_method["ks"]
        assert psi.drifted and psi.score == pytest.approx(psi_value, abs=5e-4)
        assert psi.score == pytest.approx(independent_psi(ref_values, window["growth"].to_numpy(), GDP_BINS))
        # the direction: both outer quartile bins lose share, an inner one gains it
        for shift in psi.top_shifted:
            outer = shift["bin"].startswith("[-inf,") or shift["bin"].endswith(", inf)")
            assert (
                (shift["current"] < shift["reference"]) if outer else (shift["current"] > shift["reference"])
            )
        assert psi.top_shifted[0]["current"] > 0.45  # from 25 % of the reference to ~48 %
        # KS: D ~ 0.2 at 48 rows is not significant at 1 %. Expected for a scale change
        # with an unchanged centre: it is why PSI is run too.
        assert not ks.drifted and ks.p_adjusted == pytest.approx(ks_p, abs=5e-4)
        check_against_scipy(ks, ref_values, window["growth"].to_numpy())
    # 2008Q1-2009Q3, the Great Recession: 7 quarters, not judged
    tail = profile.compare(years(growth, 2008, 2009), policy=GDP_POLICY)
    assert (tail["verdict"] == "insufficient").all() and (tail["n"] == 7).all()


def test_gdp_growth_pre_break_halves_held_out_are_not_flagged(growth):
    pre = years(growth, 1959, GDP_BREAK - 1)
    early, late = years(pre, 1959, 1971), years(pre, 1972, GDP_BREAK - 1)  # 51 and 48 quarters
    for reference, held_out in ((early, late), (late, early)):
        profile = ReferenceProfile.fit(reference, numeric=["growth"], bins=GDP_BINS)
        result = profile.compare(held_out, policy=GDP_POLICY).set_index("method")
        assert (result["verdict"] == "clear").all(), result
        assert result.loc["psi", "score"] < 0.1 and result.loc["ks", "p_adjusted"] > 0.5


def test_gdp_growth_first_flagged_window_contains_the_break(growth):
    """Reference 1959Q2-1971Q4; ten-year windows sliding a year at a time, 1972-1981 to 1998-2007."""
    profile = ReferenceProfile.fit(years(growth, 1959, 1971), numeric=["growth"], bins=GDP_BINS)
    psi_flags, ks_flags = {}, {}
    for start in range(1972, 1999):
        window = years(growth, start, start + 9)
        assert len(window) == GDP_WINDOW
        result = profile.compare(window, policy=GDP_POLICY).set_index("method")
        psi_flags[start], ks_flags[start] = (
            bool(result.loc["psi", "drifted"]),
            bool(result.loc["ks", "drifted"]),
        )
    first = min(start for start, drifted in psi_flags.items() if drifted)
    # 1982-1991 holds 1984Q1 and 8 post-break years; 1972-1981 .. 1974-1983 (all pre-break)
    # and every window up to 1981-1990 (PSI 0.175, "elevated") are not flagged
    assert first == 1982 and first <= GDP_BREAK <= first + 9
    assert all(psi_flags[start] == (start >= first) for start in psi_flags)
    assert not any(ks_flags.values())
