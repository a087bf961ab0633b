"""The alert policy: verdict table, k-of-n persistence, hysteresis, and state that survives a restart."""

import json
import math
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from driftline.stats.policy import AlertPolicy, PolicyState, Verdict

D, E, C, N = Verdict.DRIFTED, Verdict.ELEVATED, Verdict.CLEAR, Verdict.INSUFFICIENT  # N: not judged
PROPERTY = settings(max_examples=200, deadline=None)


@pytest.mark.parametrize(
    ("method", "effect", "p_adjusted", "n", "expected"),
    [
        ("ks", 0.5, 0.0, 199, N),  # below min_rows = 200: not judged
        ("ks", 0.5, 0.0, 200, D),
        ("ks", 0.1, 0.01, 200, D),  # both bounds are inclusive
        ("ks", 0.5, 0.0101, 10_000, C),  # large but not significant
        ("ks", 0.099, 0.0, 200, E),  # below the floor, within resolve_ratio (0.8) of it
        ("ks", 0.081, 0.001, 200, E),
        ("ks", 0.079, 0.0, 200, C),
        ("chi2", 0.09, 0.5, 200, C),  # elevated needs significance too
        ("chi2", 0.3, 1e-9, 5000, D),
        ("js", 0.1, None, 200, D),  # JS has no p-value and uses the effect floor
        ("psi", 0.2, None, 200, D),  # PSI has no p-value and its own threshold
        ("psi", 0.19, None, 200, E),
        ("psi", 0.159, None, 200, C),
        ("psi", 3.0, None, 150, N),
        ("ks", math.nan, None, 10_000, N),  # no measure (an empty window) is not evidence
    ],
)
def test_verdict_table(method, effect, p_adjusted, n, expected) -> None:
    assert AlertPolicy().verdict(method, effect, p_adjusted, n) is expected


def test_elevated_band_follows_resolve_ratio() -> None:
    policy = AlertPolicy(resolve_ratio=0.5, psi_threshold=0.4)
    assert [policy.verdict("psi", x, None, 1000) for x in (0.41, 0.39, 0.21, 0.19)] == [D, E, E, C]
    strict = AlertPolicy(resolve_ratio=1.0)
    assert [strict.verdict("ks", x, 0.0, 1000) for x in (0.1, 0.0999)] == [D, C]


def test_thresholds_per_method() -> None:
    policy = AlertPolicy(effect_floor=0.05, psi_threshold=0.25)
    assert {m: policy.threshold(m) for m in ("psi", "ks", "chi2", "js")} == {
        "psi": 0.25, "ks": 0.05, "chi2": 0.05, "js": 0.05,
    }  # fmt: skip


def first_fire_by_sliding_window(verdicts, k: int, n: int) -> int | None:
    """Independent oracle: the first judged window where >= k of the last n judged windows drifted."""
    judged = [(i, v) for i, v in enumerate(verdicts) if v is not N]
    for position, (index, _) in enumerate(judged):
        last_n = judged[max(0, position - n + 1) : position + 1]
        if sum(v is D for _, v in last_n) >= k:
            return index
    return None


def events_of(policy: AlertPolicy, verdicts, key: str = "x/ks") -> list[str | None]:
    state = PolicyState()
    return [state.observe(policy, key, f"w{i}", v) for i, v in enumerate(verdicts)]


@PROPERTY
@given(
    kn=st.integers(1, 5).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    verdicts=st.lists(st.sampled_from([D, E, C, N]), max_size=40),
)
def test_fires_exactly_when_k_of_the_last_n_judged_windows_drifted(kn, verdicts) -> None:
    k, n = kn
    events = events_of(AlertPolicy(persistence_k=k, persistence_n=n, resolve_after=1000), verdicts)
    expected = first_fire_by_sliding_window(verdicts, k, n)
    fired = [i for i, event in enumerate(events) if event == "fired"]
    assert fired == ([] if expected is None else [expected])  # never resolves, so it fires at most once


@pytest.mark.parametrize("n", [2, 3, 5])
def test_drifted_windows_spread_further_apart_than_n_never_fire(n) -> None:
    verdicts = [D if i % n == 0 else C for i in range(10 * n)]
    assert set(events_of(AlertPolicy(persistence_k=2, persistence_n=n), verdicts)) == {None}
    # one window closer and it fires on the second drifted window
    closer = [D if i % (n - 1) == 0 else C for i in range(10 * n)] if n > 2 else [D, D]
    assert events_of(AlertPolicy(persistence_k=2, persistence_n=n), closer).index("fired") == (
        n - 1 if n > 2 else 1
    )


def test_since_is_the_first_drifted_window_of_the_episode() -> None:
    state, policy = PolicyState(), AlertPolicy(persistence_k=2, persistence_n=3)
    for i, verdict in enumerate([C, D, C, D]):
        state.observe(policy, "amount/psi", f"w{i}", verdict)
    track = state.tracks["amount/psi"]
    assert track.firing and track.since == "w1"


def test_resolves_only_after_resolve_after_consecutive_clear_windows() -> None:
    policy = AlertPolicy(persistence_k=1, persistence_n=1, resolve_after=3)
    verdicts = [D, C, C, E, C, C, D, C, C, C, C]
    expected = ["fired", None, None, None, None, None, None, None, None, "resolved", None]
    assert events_of(policy, verdicts) == expected


def test_insufficient_windows_neither_count_nor_reset() -> None:
    policy = AlertPolicy(persistence_k=2, persistence_n=3, resolve_after=3)
    # judged windows: D C D -> fires on the second D although five windows passed
    verdicts = [D, N, N, N, C, D, C, C, N, N, C]
    expected = [None, None, None, None, None, "fired", None, None, None, None, "resolved"]
    assert events_of(policy, verdicts) == expected


def test_every_key_has_its_own_track() -> None:
    policy, state = AlertPolicy(persistence_k=2, persistence_n=2), PolicyState()
    events = [state.observe(policy, key, w, v) for key, w, v in
              [("a/ks", "w1", D), ("b/ks", "w1", C), ("a/ks", "w2", D), ("b/ks", "w2", D)]]  # fmt: skip
    assert events == [None, None, "fired", None]
    assert state.tracks["a/ks"].firing and not state.tracks["b/ks"].firing


@PROPERTY
@given(
    stream=st.lists(st.tuples(st.sampled_from(["a/ks", "b/psi", "c/chi2"]), st.sampled_from([D, E, C, N]))),
    cut=st.integers(0, 100),
)
def test_state_serialised_mid_episode_continues_like_an_uninterrupted_run(stream, cut) -> None:
    policy = AlertPolicy(persistence_k=2, persistence_n=3, resolve_after=2)
    cut = min(cut, len(stream))

    def feed(state, part, offset):
        return [state.observe(policy, key, f"w{offset + i}", v) for i, (key, v) in enumerate(part)]

    uninterrupted = PolicyState()
    expected = feed(uninterrupted, stream, 0)

    first = PolicyState()
    events = feed(first, stream[:cut], 0)
    restored = PolicyState.from_dict(json.loads(json.dumps(first.to_dict())))
    assert restored == first
    events += feed(restored, stream[cut:], cut)

    assert events == expected
    assert restored.to_dict() == uninterrupted.to_dict()


@pytest.mark.parametrize(
    ("settings_", "message"),
    [
        ({"persistence_k": 0}, "need 1 <= persistence_k (0) <= persistence_n (3)"),
        ({"persistence_k": 4, "persistence_n": 3}, "need 1 <= persistence_k (4) <= persistence_n (3)"),
        ({"resolve_ratio": 0.0}, "resolve_ratio must be in (0, 1], got 0.0"),
        ({"resolve_ratio": 1.5}, "resolve_ratio must be in (0, 1], got 1.5"),
    ],
)
def test_invalid_policies_are_refused_with_a_message(settings_, message) -> None:
    with pytest.raises(ValueError) as caught:
        AlertPolicy(**settings_)
    assert str(caught.value) == message


def test_from_settings_takes_the_matching_attributes_and_defaults_the_rest() -> None:
    policy = AlertPolicy.from_settings(SimpleNamespace(p_value=0.05, min_rows=10, topic="payments"))
    assert (policy.p_value, policy.min_rows) == (0.05, 10)
    assert policy.effect_floor == AlertPolicy().effect_floor


def test_a_degraded_window_neither_fires_nor_resolves_and_the_breaker_round_trips() -> None:
    from driftline.stats.breaker import BreakerPolicy, BreakerState

    policy = AlertPolicy(persistence_k=2, persistence_n=3, resolve_after=1)
    state = PolicyState()
    events = [state.observe(policy, "a/psi", w, v) for w, v in
              [("w1", Verdict.DRIFTED), ("w2", Verdict.DEGRADED), ("w3", Verdict.DEGRADED)]]  # fmt: skip
    assert events == [None, None, None] and state.tracks["a/psi"].recent == [("w1", True)]
    assert state.observe(policy, "a/psi", "w4", Verdict.DRIFTED) == "fired"
    assert state.observe(policy, "a/psi", "w5", Verdict.DEGRADED) is None  # no resolution from garbage
    assert state.tracks["a/psi"].firing
    breaker = BreakerState()
    breaker.observe(BreakerPolicy(), "w5", dead=40, valid=60)
    state.breaker = breaker.to_dict()
    again = PolicyState.from_dict(state.to_dict())
    assert set(again.tracks) == {"a/psi"} and again.tracks["a/psi"].firing
    assert BreakerState.from_dict(again.breaker) == breaker and breaker.open and breaker.since == "w5"


def test_a_fired_alert_knows_the_offsets_of_its_whole_episode() -> None:
    from driftline.spark.drift import merge_ranges, offsets_label

    policy = AlertPolicy(persistence_k=2, persistence_n=3, resolve_after=1)
    state = PolicyState()
    windows = {f"w{i}": [{"topic": "t", "partition": p, "first_offset": 100 * i + p, "last_offset": 100 * i + 99}
                         for p in (0, 1)] for i in range(6)}  # fmt: skip
    events = []
    for i, verdict in enumerate([C, C, D, C, D, C]):
        state.offsets[f"w{i}"] = windows[f"w{i}"]
        events.append(state.observe(policy, "a/ks", f"w{i}", verdict))
        if events[-1] == "fired":
            episode = merge_ranges(state.episode("a/ks"))
            state.episodes["a/ks"] = episode
        state.prune_offsets()
        assert PolicyState.from_dict(state.to_dict()).offsets == state.offsets  # it round-trips
        # only windows a track still refers to are kept: at most n, plus the episode's start
        assert set(state.offsets) <= {w for w, _ in state.tracks["a/ks"].recent} | {
            state.tracks["a/ks"].since
        }
    assert events.index("fired") == 4 and events[-1] == "resolved"
    assert state.offsets == {} and state.episodes == {}  # resolved: its windows and episode are forgotten
    # from the first drifted window (w2) to the one it fired in (w4), per partition
    assert episode == [{"topic": "t", "partition": 0, "first_offset": 200, "last_offset": 499},
                       {"topic": "t", "partition": 1, "first_offset": 201, "last_offset": 499}]  # fmt: skip
    assert offsets_label(episode) == "t/0:200-499,t/1:201-499"
    assert state.episode("a/ks") == []  # not firing: no episode


@PROPERTY
@given(
    kn=st.integers(1, 5).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    verdicts=st.lists(st.sampled_from([D, E, C, N]), max_size=30),
    provisional=st.sampled_from([D, E, C, N]),
)
def test_an_early_alert_fires_exactly_when_the_open_window_closing_drifted_would(
    kn, verdicts, provisional
) -> None:
    """Against the sliding-window oracle: after any history, an open window judged so far
    ``provisional`` fires early iff the same history plus a closed drifted window fires
    there (only a drifted provisional verdict counts), with the same first flagged window."""
    k, n = kn
    policy = AlertPolicy(persistence_k=k, persistence_n=n, resolve_after=1000, early_alerts=True)
    early, closing = PolicyState(), PolicyState()
    for i, v in enumerate(verdicts):
        early.observe(policy, "x/ks", f"w{i:02d}", v)
        closing.observe(policy, "x/ks", f"w{i:02d}", v)
    was_firing = first_fire_by_sliding_window(verdicts, k, n) is not None
    open_window = f"w{len(verdicts):02d}"
    fired = early.fire_early(policy, "x/ks", open_window, provisional)
    would = closing.observe(policy, "x/ks", open_window, D) == "fired"
    assert fired == (would and provisional is D)
    if fired or was_firing:
        assert not early.one_short(policy, "x/ks")
    if fired:
        assert early.tracks["x/ks"].since == closing.tracks["x/ks"].since
        assert early.tracks["x/ks"].firing and not was_firing
        # the open window is not history yet: it is judged when it closes
        assert open_window not in [w for w, _ in early.tracks["x/ks"].recent]


@PROPERTY
@given(
    kn=st.integers(1, 5).flatmap(lambda n: st.tuples(st.integers(1, n), st.just(n))),
    verdicts=st.lists(st.sampled_from([D, E, C, N]), max_size=30),
    passed=st.lists(st.sampled_from([D, E, C, N]), max_size=3),
    provisional=st.sampled_from([D, E, C, N]),
)
def test_open_windows_the_stream_has_passed_count_as_they_score(kn, verdicts, passed, provisional) -> None:
    """The open windows, oldest first, as the job meets them: the ones the stream has
    passed (``passed``, each also an open window that may fire itself), then the current
    one. An early alert fires on the first open window where the sliding-window oracle,
    run over the history and the open windows as they score so far, fires; never where the
    history alone had fired already; with the oracle's first flagged window; and no open
    window enters the history."""
    k, n = kn
    policy = AlertPolicy(persistence_k=k, persistence_n=n, resolve_after=1000, early_alerts=True)
    early, closing = PolicyState(), PolicyState()
    for i, v in enumerate(verdicts):
        early.observe(policy, "x/ks", f"w{i:02d}", v)
    open_verdicts = [*passed, provisional]
    labels = [f"w{len(verdicts) + j:02d}" for j in range(len(open_verdicts))]
    fired_at = None
    for j, v in enumerate(open_verdicts):
        prior = list(zip(labels[:j], passed[:j], strict=True))
        if early.fire_early(policy, "x/ks", labels[j], v, prior):
            assert fired_at is None  # once per episode
            fired_at = len(verdicts) + j
    expected = first_fire_by_sliding_window([*verdicts, *open_verdicts], k, n)
    assert fired_at == (expected if expected is not None and expected >= len(verdicts) else None)
    if fired_at is not None:
        for i, v in enumerate([*verdicts, *open_verdicts][: fired_at + 1]):
            closing.observe(policy, "x/ks", f"w{i:02d}", v)
        assert early.tracks["x/ks"].since == closing.tracks["x/ks"].since
        assert not set(labels) & {w for w, _ in early.tracks["x/ks"].recent}


def test_an_early_alert_is_judged_again_when_its_window_closes_and_resolves_by_hysteresis() -> None:
    policy = AlertPolicy(persistence_k=2, persistence_n=3, resolve_after=2, early_alerts=True)
    state = PolicyState()
    assert state.observe(policy, "a/ks", "w1", D) is None
    assert not state.fire_early(policy, "a/ks", "w2", E)  # not drifted so far: nothing
    assert state.fire_early(policy, "a/ks", "w2", D)
    assert state.tracks["a/ks"].since == "w1" and state.tracks["a/ks"].recent == [("w1", True)]
    assert not state.fire_early(policy, "a/ks", "w2", D)  # firing already: once per episode
    # w2 closes clear after all: no second "fired", and the hysteresis resolves it as usual
    assert [state.observe(policy, "a/ks", w, C) for w in ("w2", "w3")] == [None, "resolved"]
    # a track with no drifted window is not one short under 2-of-3; a new key under 1-of-n is
    assert not state.one_short(policy, "b/ks") and not state.fire_early(policy, "b/ks", "w1", D)
    assert "b/ks" not in state.tracks  # asking leaves no empty track in the saved state
    single = AlertPolicy(persistence_k=1, persistence_n=1, early_alerts=True)
    assert state.one_short(single, "b/ks") and state.fire_early(single, "b/ks", "w1", D)
    assert state.tracks["b/ks"].since == "w1"
    # the state round-trips mid-episode like any other
    assert PolicyState.from_dict(json.loads(json.dumps(state.to_dict()))).tracks == state.tracks
