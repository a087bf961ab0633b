"""Inputs at the edges: corrupted profiles, infinities, numpy NaN categories."""

import json
import math

import numpy as np
import pytest

from driftline.stats import CategoricalBinning, Moments, NumericBinning, ReferenceProfile


def _profile(tmp_path):
    rng = np.random.default_rng(3)
    data = {"x": rng.normal(size=500).tolist(), "c": rng.choice(["a", "b"], 500).tolist()}
    return ReferenceProfile.fit(data, numeric=["x"], categorical=["c"], grid=100, version="v").save(
        tmp_path / "v.json"
    )


def test_a_profile_whose_counts_do_not_fit_its_bins_is_refused_naming_the_feature(tmp_path) -> None:
    path = _profile(tmp_path)
    data = json.loads(path.read_text())
    data["features"]["x"]["counts"] = data["features"]["x"]["counts"][:-3]
    path.write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r"cannot read reference profile .*feature 'x': 98 counts for 101 bins"
    ):
        ReferenceProfile.load(path)


def test_coarse_positions_outside_the_edges_are_refused() -> None:
    with pytest.raises(ValueError, match="coarse edge positions"):
        NumericBinning((1.0, 2.0), (5,))


def test_infinities_fall_in_the_outer_bins_and_stay_out_of_the_moments(tmp_path) -> None:
    values = [1.0, 2.0, 3.0, math.inf, -math.inf]
    moments = Moments().update(values)
    assert (moments.n, moments.mean, moments.maximum) == (3, 2.0, 3.0)
    binning = NumericBinning.fit(values, grid=4, bins=2)
    counts = binning.counts(values)
    assert binning.edges == (1.5, 2.0, 2.5)  # fitted on the finite values only
    assert counts.tolist() == [2, 0, 1, 2, 0]  # -inf with 1.0 in the first bin, +inf with 3.0 in the last
    profile = ReferenceProfile.fit({"x": values}, numeric=["x"], grid=4, bins=2, version="v")
    text = profile.save(tmp_path / "p.json").read_text()
    assert "NaN" not in text and "Infinity" not in text.split('"moments"')[1]


def test_numpy_nan_is_a_null_category_like_spark_sees_it() -> None:
    binning = CategoricalBinning.fit(["a", "b"])
    counts = binning.counts_of([np.float32("nan"), np.float64("nan"), None, "a"])
    assert counts.tolist() == [1, 0, 0, 3]
