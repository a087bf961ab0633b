"""ReferenceProfile: fit on any frame, save/load, compare and score, and the errors users see."""

import json
import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats as scipy_stats
from scipy.stats import false_discovery_control

from driftline.stats.policy import AlertPolicy
from driftline.stats.profile import ReferenceProfile

COLUMNS = ["feature", "kind", "method", "score", "effect", "p_value", "p_adjusted", "threshold", "n",
           "verdict", "drifted"]  # fmt: skip


def frame(seed: int, rows: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.lognormal(3, 1, rows) + shift
    amount[rng.uniform(size=rows) < 0.05] = np.nan
    flag = rng.uniform(size=rows) < 0.3
    return pd.DataFrame({
        "amount": amount,
        "items": rng.poisson(3, rows),
        "country": rng.choice(["DE", "FR", "US", None], rows, p=[0.5, 0.3, 0.15, 0.05]),
        "flag": pd.Series(flag, dtype=object).where(rng.uniform(size=rows) > 0.02, None),
    })  # fmt: skip


def fit(data, **kwargs) -> ReferenceProfile:
    return ReferenceProfile.fit(data, numeric=["amount", "items"], categorical=["country", "flag"], **kwargs)


@pytest.fixture(scope="module")
def reference() -> pd.DataFrame:
    return frame(1, 4000)


@pytest.fixture(scope="module")
def profile(reference) -> ReferenceProfile:
    return fit(reference, grid=200, bins=10, version="v1", metadata={"source": "test"})


def test_pandas_pyarrow_and_plain_dicts_give_the_same_profile(reference, profile) -> None:
    as_arrow = fit(pa.Table.from_pandas(reference), grid=200, bins=10, version="v1")
    as_dict = fit({name: reference[name].tolist() for name in reference}, grid=200, bins=10, version="v1")
    assert as_arrow.to_dict()["features"] == profile.to_dict()["features"]
    assert as_dict.to_dict()["features"] == profile.to_dict()["features"]
    assert as_arrow.fingerprint == profile.fingerprint


def test_fitted_counts_and_moments_describe_the_reference(reference, profile) -> None:
    amount = profile.features["amount"]
    values = reference["amount"].to_numpy()
    finite = values[~np.isnan(values)]
    assert amount.counts.sum() == len(reference) and profile.rows == len(reference)
    assert amount.counts[amount.binning.null_slot] == np.isnan(values).sum()
    assert amount.moments.n == finite.size
    assert amount.moments.mean == pytest.approx(finite.mean(), rel=1e-12)
    assert amount.moments.variance == pytest.approx(np.var(finite, ddof=1), rel=1e-9)

    country = profile.features["country"]
    assert country.binning.labels == ("DE", "FR", "US", "__OOV__", "__NULL__")
    expected = [int((reference["country"] == c).sum()) for c in ("DE", "FR", "US")]
    assert country.counts.tolist() == [*expected, 0, int(reference["country"].isna().sum())]


def test_window_counts_count_a_window_like_the_fit_counted_the_reference(reference, profile) -> None:
    for name, feature in profile.features.items():
        np.testing.assert_array_equal(feature.window_counts(reference[name]), feature.counts)
    window = pd.Series(["DE", "BR", None, "US", "BR", "DE", "JP"], dtype=object)
    expected = [2, 0, 1, int(window.isin(["BR", "JP"]).sum()), int(window.isna().sum())]
    assert profile.features["country"].window_counts(window).tolist() == expected


def test_boolean_columns_are_labelled_true_and_false_from_pandas_and_arrow(reference, profile) -> None:
    as_arrow = fit(pa.Table.from_pandas(reference), grid=200, bins=10)
    for fitted in (profile, as_arrow):
        assert fitted.features["flag"].binning.labels == ("false", "true", "__OOV__", "__NULL__")
    flags = reference["flag"]
    assert profile.features["flag"].counts.tolist() == [
        int((flags == False).sum()), int((flags == True).sum()), 0, int(flags.isna().sum()),  # noqa: E712
    ]  # fmt: skip
    # a window of only True: the evidence names the Spark-style label
    window = {"flag": profile.features["flag"].window_counts([True] * 500)}
    (row,) = profile.score(window, methods=["psi"])
    shifted = {entry["bin"]: entry["current"] for entry in row.top_shifted[:2]}
    assert shifted == {"true": 1.0, "false": 0.0}


def test_save_and_load_round_trip(tmp_path, profile) -> None:
    path = profile.save(tmp_path / "nested" / "reference.json")
    loaded = ReferenceProfile.load(path)
    assert loaded.to_dict() == profile.to_dict()
    assert loaded.fingerprint == profile.fingerprint
    assert (loaded.version, loaded.metadata) == ("v1", {"source": "test"})
    assert not path.with_suffix(".json.tmp").exists()

    current = frame(2, 1000, shift=5.0)
    assert loaded.compare(current).equals(profile.compare(current))


def test_fingerprint_follows_the_bins_and_counts_not_the_labels(reference, profile) -> None:
    assert fit(reference, grid=200, bins=10, version="other").fingerprint == profile.fingerprint
    assert fit(reference.iloc[:-1], grid=200, bins=10, version="v1").fingerprint != profile.fingerprint
    assert fit(reference, grid=100, bins=10, version="v1").fingerprint != profile.fingerprint


def test_the_default_version_is_the_creation_time(reference) -> None:
    assert re.fullmatch(r"\d{8}T\d{6}Z", fit(reference).version)


def test_compare_returns_one_row_per_feature_and_applicable_method(reference, profile) -> None:
    current = frame(3, 1500)
    result = profile.compare(current, methods=["psi", "ks", "chi2", "js"])
    assert list(result.columns) == COLUMNS
    assert sorted(zip(result["feature"], result["method"], strict=True)) == sorted(
        [(f, m) for f in ("amount", "items") for m in ("psi", "ks", "js")]
        + [(f, m) for f in ("country", "flag") for m in ("psi", "chi2", "js")]
    )
    # one Benjamini-Hochberg family over every p-value of the call
    tested = result[result["p_value"].notna()]
    expected = false_discovery_control(tested["p_value"].to_numpy(), method="bh")
    np.testing.assert_allclose(tested["p_adjusted"].to_numpy(), expected, rtol=1e-12)
    assert result.loc[result["method"] == "psi", "p_value"].isna().all()

    ks_row = result[(result["feature"] == "amount") & (result["method"] == "ks")].iloc[0]
    amount = current["amount"].dropna()
    assert ks_row["n"] == len(amount)  # KS leaves nulls out
    exact = scipy_stats.ks_2samp(reference["amount"].dropna(), amount).statistic
    feature = profile.features["amount"]
    fine = slice(0, feature.binning.null_slot)
    r, c = feature.counts[fine], feature.window_counts(current["amount"])[fine]
    bound = min(r.max() / r.sum(), c.max() / c.sum())
    assert ks_row["score"] <= exact + 1e-12 and exact - ks_row["score"] <= bound + 1e-12
    assert not result["drifted"].any()


def test_compare_flags_a_shifted_feature_and_limits_itself_to_the_named_features(profile) -> None:
    current = frame(4, 1500)
    current["amount"] = current["amount"] * 3
    result = profile.compare(current, features=["amount", "country"], policy=AlertPolicy(min_rows=100))
    assert set(result["feature"]) == {"amount", "country"}
    drifted = result[result["drifted"]]
    assert set(zip(drifted["feature"], drifted["method"], strict=True)) == {
        ("amount", "psi"),
        ("amount", "ks"),
    }


def test_scoring_an_unknown_feature_names_the_valid_ones(profile) -> None:
    with pytest.raises(KeyError) as caught:
        profile.score({"amount": profile.features["amount"].counts, "colour": np.zeros(3)})
    assert caught.value.args[0] == (
        "features ['colour'] are not in reference profile 'v1'; it has: amount, country, flag, items"
    )


def test_fit_errors_name_the_feature_or_column() -> None:
    data = pd.DataFrame({"x": [None, np.nan, np.inf], "y": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError) as caught:
        ReferenceProfile.fit(data, numeric=["y", "x"])
    assert str(caught.value) == "feature 'x': the reference has no finite values to fit bins on"
    with pytest.raises(KeyError) as missing:
        ReferenceProfile.fit(data, numeric=["y"], categorical=["z"])
    assert missing.value.args[0] == "the data has no column 'z'"
    with pytest.raises(ValueError, match="name at least one numeric or categorical feature"):
        ReferenceProfile.fit(data)


GOOD = {"format": 1, "version": "v", "rows": 1, "created_at": "2024-01-01T00:00:00+00:00", "metadata": {}}


@pytest.mark.parametrize(
    "content",
    [
        "{not json",
        json.dumps({**GOOD, "format": 2, "features": {}}),
        json.dumps({k: v for k, v in GOOD.items() if k != "rows"} | {"features": {}}),
        "[]",
        "null",
        json.dumps({**GOOD, "features": {"x": {"kind": "numeric", "binning": None, "counts": []}}}),
        json.dumps({**GOOD, "features": ["x"]}),
        json.dumps({**GOOD, "features": {"x": {"kind": "numeric", "counts": [1],
                                               "binning": {"type": "numeric", "edges": [2, 1], "coarse": [0]}}}}),
    ],
    ids=["not-json", "future-format", "missing-key", "array", "null", "null-binning", "features-list",
         "bad-edges"],
)  # fmt: skip
def test_loading_a_broken_file_names_the_path(tmp_path, content) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ValueError) as caught:
        ReferenceProfile.load(path)
    assert str(caught.value).startswith(f"cannot read reference profile {path}: ")


def test_loading_a_missing_file_names_the_path(tmp_path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match=re.escape(f"cannot read reference profile {path}: ")):
        ReferenceProfile.load(path)


def test_a_loaded_profile_of_an_older_format_is_refused_with_the_supported_one(tmp_path, profile) -> None:
    data = profile.to_dict() | {"format": 0}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as caught:
        ReferenceProfile.load(path)
    assert str(caught.value).endswith(
        "reference profile format 0 is not supported (this driftline reads format 1)"
    )


def test_the_minimal_document_the_broken_ones_start_from_loads(tmp_path) -> None:
    path = tmp_path / "minimal.json"
    path.write_text(json.dumps({**GOOD, "features": {}}))
    loaded = ReferenceProfile.load(path)
    assert (loaded.version, loaded.rows, loaded.features) == ("v", 1, {})
