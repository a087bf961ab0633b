"""A long stream without drift raises no alert; one drifted feature alerts alone and on time.

50 features (40 numeric of varied shapes, ties and nulls included; 10 categorical from 2 to 40
values), a reference of 20,000 rows, 300 windows of 1,000 rows, the default methods and policy.
Window counts go through ``FeatureProfile.window_counts`` and ``ReferenceProfile.score`` as the
streaming job's do, and every verdict is fed to one ``PolicyState``.
"""

import dataclasses
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from driftline.stats.policy import AlertPolicy, PolicyState, Verdict
from driftline.stats.profile import ReferenceProfile

SEED = 20_240
REFERENCE_ROWS, WINDOWS, WINDOW_ROWS = 20_000, 300, 1_000
DRIFT_FROM, DRIFTED = 150, "num03_normal"

NUMERIC_SHAPES = {
    "normal": lambda rng, n: rng.normal(10, 2, n),
    "lognormal": lambda rng, n: rng.lognormal(3, 1, n),
    "exponential": lambda rng, n: rng.exponential(5, n),
    "uniform": lambda rng, n: rng.uniform(-1, 1, n),
    "poisson": lambda rng, n: rng.poisson(3, n).astype(float),  # heavy ties
    "student": lambda rng, n: rng.standard_t(3, n),
    "bimodal": lambda rng, n: np.where(rng.uniform(size=n) < 0.3, rng.normal(-3, 1, n), rng.normal(4, 2, n)),
    "rounded": lambda rng, n: np.round(rng.gamma(2, 2, n), 1),
}
CARDINALITIES = [2, 3, 5, 8, 12, 20, 40, 2, 4, 6]


def make_stream(rng: np.random.Generator) -> tuple[dict, dict]:
    """(reference columns, stream columns): each column drawn once for reference and stream together."""
    rows = REFERENCE_ROWS + WINDOWS * WINDOW_ROWS
    columns = {}
    shapes = sorted(NUMERIC_SHAPES)
    for i in range(40):
        shape = shapes[i % len(shapes)]
        values = NUMERIC_SHAPES[shape](rng, rows)
        if i % 3 == 0:
            values[rng.uniform(size=rows) < 0.02] = np.nan
        columns[f"num{i:02d}_{shape}"] = values
    for i, k in enumerate(CARDINALITIES):
        weights = 1.0 / np.arange(1, k + 1)  # Zipf-like shares
        labels = np.array([f"v{j}" for j in range(k)] + [None], dtype=object)
        shares = np.append(weights / weights.sum() * 0.97, 0.03)
        if k == 2 and i:  # a boolean column, labelled "true" / "false"
            labels = np.array([True, False, None], dtype=object)
        columns[f"cat{i:02d}_k{k}"] = labels[rng.choice(len(labels), rows, p=shares)]
    reference = {name: values[:REFERENCE_ROWS] for name, values in columns.items()}
    stream = {name: values[REFERENCE_ROWS:] for name, values in columns.items()}
    return reference, stream


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(SEED)
    reference, stream = make_stream(rng)
    numeric = [name for name in reference if name.startswith("num")]
    categorical = [name for name in reference if name.startswith("cat")]
    profile = ReferenceProfile.fit(pd.DataFrame(reference), numeric=numeric, categorical=categorical)
    assert profile.features["cat07_k2"].binning.vocabulary == ("false", "true")
    return profile, stream, window_counts(profile, stream)


def window_counts(profile: ReferenceProfile, stream: dict) -> list[dict[str, np.ndarray]]:
    return [
        {
            name: profile.features[name].window_counts(values[w * WINDOW_ROWS : (w + 1) * WINDOW_ROWS])
            for name, values in stream.items()
        }
        for w in range(WINDOWS)
    ]


def run(profile: ReferenceProfile, windows: list[dict], policy: AlertPolicy) -> tuple[list, Counter]:
    """Every (window, key, event) the policy emits over the stream, and how often each verdict came."""
    state, events, verdicts = PolicyState(), [], Counter()
    for w, counts in enumerate(windows):
        for score in profile.score(counts, policy=policy):
            verdicts[score.verdict] += 1
            event = state.observe(policy, score.key, f"w{w:03d}", score.verdict)
            if event:
                events.append((w, score.key, event))
    return events, verdicts


def test_no_drift_raises_no_alert(setup) -> None:
    profile, _, windows = setup
    policy = AlertPolicy()
    assert sum(len(w) for w in windows) == 50 * WINDOWS
    events, verdicts = run(profile, windows, policy)
    assert events == []
    # every measure was judged (40 numeric x psi, ks, null_rate + 10 categorical x psi, chi2,
    # null_rate per window)
    assert sum(verdicts.values()) == WINDOWS * 150 and verdicts[Verdict.INSUFFICIENT] == 0


def test_one_drifted_feature_alerts_alone_within_persistence_n_windows(setup) -> None:
    profile, stream, windows = setup
    policy = AlertPolicy()
    values = stream[DRIFTED].copy()
    values[DRIFT_FROM * WINDOW_ROWS :] += 0.5 * 2.0  # half a standard deviation of normal(10, 2)
    shifted = window_counts(profile, {DRIFTED: values})
    drifted = [{**counts, DRIFTED: shift[DRIFTED]} for counts, shift in zip(windows, shifted, strict=True)]

    events, _ = run(profile, drifted, policy)
    fired = [(w, key) for w, key, event in events if event == "fired"]
    assert fired, "the drifted feature never fired"
    assert all(key.startswith(f"{DRIFTED}/") for _, key in fired), fired
    first = min(w for w, _ in fired)
    assert DRIFT_FROM <= first < DRIFT_FROM + policy.persistence_n
    # KS sees the shift in every window, so it fires on the k-th drifted window exactly
    assert (DRIFT_FROM + policy.persistence_k - 1, f"{DRIFTED}/ks") in fired
    assert not [e for e in events if e[2] == "resolved"]  # the drift persists to the end


def test_nulls_moving_from_10_to_20_percent_alert_on_the_null_rate_alone(setup) -> None:
    """A feature whose share of nulls doubles (10% -> 20%) while its values keep their shape:
    PSI's null slot sees it diluted (under its 0.2 threshold at 1,000 rows), KS not at all;
    the null rate fires on the k-th window and nothing else does."""
    profile, stream, windows = setup
    policy, rng = AlertPolicy(), np.random.default_rng(SEED + 1)
    name = "num01_exponential"  # no nulls in the stream: give it 10% in both, then 20%
    reference_rows = NUMERIC_SHAPES["exponential"](rng, REFERENCE_ROWS)
    reference_rows[rng.uniform(size=REFERENCE_ROWS) < 0.10] = np.nan
    values = stream[name].copy()
    share = np.where(np.arange(values.size) < DRIFT_FROM * WINDOW_ROWS, 0.10, 0.20)
    values[rng.uniform(size=values.size) < share] = np.nan
    refit = ReferenceProfile.fit(pd.DataFrame({name: reference_rows}), numeric=[name], categorical=[])
    features = {**profile.features, name: refit.features[name]}
    nulled = dataclasses.replace(profile, features=features)
    counts = window_counts(nulled, {name: values})
    changed = [{**w, name: c[name]} for w, c in zip(windows, counts, strict=True)]

    events, _ = run(nulled, changed, policy)
    fired = [(w, key) for w, key, event in events if event == "fired"]
    assert fired == [(DRIFT_FROM + policy.persistence_k - 1, f"{name}/null_rate")], fired
    scores = {s.method: s for s in nulled.score(changed[-1], policy=policy) if s.feature == name}
    assert scores["psi"].score < policy.psi_threshold  # PSI alone would not have seen it
    assert scores["null_rate"].details["current_share"] == pytest.approx(0.20, abs=0.04)
