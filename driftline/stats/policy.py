"""The alert policy: when a drift measure becomes an alert, and when the alert ends.

Per window, each (feature, method) gets a :class:`Verdict`:

``insufficient``  fewer than ``min_rows`` values in the window: not judged at all
``drifted``       effect >= threshold and (no p-value, or BH-adjusted p <= ``p_value``)
``elevated``      not drifted, but effect >= ``resolve_ratio`` * threshold (and significant)
``clear``         anything else
``degraded``      the source's circuit breaker was open for the window (too many dead
                  letters, :mod:`driftline.stats.breaker`): not judged, like insufficient

The threshold is ``psi_threshold`` for PSI, ``null_rate_floor`` for the null rate's
Cohen's h (0.2: Cohen's "small"), and ``effect_floor`` for the effect sizes of KS (D),
chi-square (Cramer's V) and JS (distance): at large sample sizes every p-value is tiny,
so the effect-size floor is what keeps trivial shifts quiet.

Across windows (in event-time order, insufficient windows skipped) an
:class:`AlertTrack` *fires* when at least ``persistence_k`` of the last
``persistence_n`` judged windows were ``drifted``, and *resolves* with hysteresis:
only after ``resolve_after`` consecutive ``clear`` windows (``elevated`` ones reset
the count), so a score hovering around the threshold does not flap.

*Early alerts* (``early_alerts``, off by default): a track one drifted window short of
firing (``persistence_k - 1`` of its last ``persistence_n - 1`` windows drifted) may
fire on a window that is still open, when that window's rows so far (at least
``min_rows``) already score ``drifted``: :meth:`AlertTrack.fire_early`. The windows
that count are the judged ones and, after them, the *passed* ones: open windows whose
end the stream's newest event time has passed, so every on-time record of theirs is in
and only the watermark's allowance for late ones keeps them open; they count as they
score so far. Neither kind of open window is added to the track's history: each is
judged like any other when it closes, and a firing alert resolves by the same
hysteresis. An early alert comes up to two windows' time sooner (see docs/drift.md),
at the price that a partial window may not stay drifted.

Examples
--------
>>> policy = AlertPolicy(persistence_k=2, persistence_n=3, resolve_after=2)
>>> state = PolicyState()
>>> [state.observe(policy, "amount/ks", w, v) for w, v in
...  [("w1", Verdict.DRIFTED), ("w2", Verdict.CLEAR), ("w3", Verdict.DRIFTED),
...   ("w4", Verdict.ELEVATED), ("w5", Verdict.CLEAR), ("w6", Verdict.CLEAR)]]
[None, None, 'fired', None, None, 'resolved']
>>> state.tracks["amount/ks"].firing
False
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from typing import Any


class Verdict(StrEnum):
    INSUFFICIENT = "insufficient"
    DRIFTED = "drifted"
    ELEVATED = "elevated"
    CLEAR = "clear"
    DEGRADED = "degraded"


@dataclass(frozen=True)
class AlertPolicy:
    """Thresholds of the alert policy (the ``[drift]`` section of a pipeline)."""

    p_value: float = 0.01
    fdr: str = "bh"
    min_rows: int = 200
    effect_floor: float = 0.1
    psi_threshold: float = 0.2
    null_rate_floor: float = 0.2
    persistence_k: int = 2
    persistence_n: int = 3
    resolve_after: int = 3
    resolve_ratio: float = 0.8
    early_alerts: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.persistence_k <= self.persistence_n:
            raise ValueError(f"need 1 <= persistence_k ({self.persistence_k}) <= persistence_n "
                             f"({self.persistence_n})")  # fmt: skip
        if not 0 < self.resolve_ratio <= 1:
            raise ValueError(f"resolve_ratio must be in (0, 1], got {self.resolve_ratio}")

    @classmethod
    def from_settings(cls, settings: Any) -> AlertPolicy:
        """From any object (e.g. the pipeline's ``DriftConfig``) with these attribute names."""
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls) if hasattr(settings, f.name)})

    def threshold(self, method: str) -> float:
        if method == "psi":
            return self.psi_threshold
        return self.null_rate_floor if method == "null_rate" else self.effect_floor

    def verdict(self, method: str, effect: float, p_adjusted: float | None, n: int) -> Verdict:
        if n < self.min_rows or effect is None or math.isnan(effect):
            return Verdict.INSUFFICIENT
        significant = p_adjusted is None or p_adjusted <= self.p_value
        threshold = self.threshold(method)
        if significant and effect >= threshold:
            return Verdict.DRIFTED
        if significant and effect >= self.resolve_ratio * threshold:
            return Verdict.ELEVATED
        return Verdict.CLEAR


_UNJUDGED = (Verdict.INSUFFICIENT, Verdict.DEGRADED)  # neither counts nor resets a track
Passed = Sequence[tuple[str, Verdict]]  # open windows the stream has passed, as they score so far


@dataclass
class AlertTrack:
    """Where one (feature, method) stands: its recent judged windows and whether it fires."""

    recent: list[tuple[str, bool]] = field(default_factory=list)  # (window, drifted), oldest first
    firing: bool = False
    since: str | None = None  # first drifted window of the current episode
    clear_streak: int = 0

    def observe(self, policy: AlertPolicy, window: str, verdict: Verdict) -> str | None:
        """Feed one window's verdict; return ``"fired"``, ``"resolved"`` or ``None``."""
        if verdict in _UNJUDGED:
            return None
        self.recent = [*self.recent, (window, verdict is Verdict.DRIFTED)][-policy.persistence_n :]
        if not self.firing:
            drifted = [w for w, flagged in self.recent if flagged]
            if len(drifted) >= policy.persistence_k:
                self.firing, self.since, self.clear_streak = True, drifted[0], 0
                return "fired"
            return None
        self.clear_streak = self.clear_streak + 1 if verdict is Verdict.CLEAR else 0
        if self.clear_streak >= policy.resolve_after:
            self.recent, self.firing, self.clear_streak = [], False, 0
            return "resolved"
        return None

    def _before_next(self, policy: AlertPolicy, passed: Passed = ()) -> list[tuple[str, bool]]:
        """The windows that count with the next one: the last ``persistence_n - 1`` of the
        judged ones followed by ``passed`` (open windows as they score so far, oldest
        first; insufficient and degraded ones skipped, as in :meth:`observe`)."""
        counted = [*self.recent, *((w, v is Verdict.DRIFTED) for w, v in passed if v not in _UNJUDGED)]
        return counted[-(policy.persistence_n - 1) :] if policy.persistence_n > 1 else []

    def one_short(self, policy: AlertPolicy, passed: Passed = ()) -> bool:
        """Whether one more drifted window fires it: not firing, and ``persistence_k - 1``
        of its last ``persistence_n - 1`` windows (judged, then ``passed``) drifted."""
        if self.firing:
            return False
        return sum(flagged for _, flagged in self._before_next(policy, passed)) >= policy.persistence_k - 1

    def fire_early(self, policy: AlertPolicy, window: str, verdict: Verdict, passed: Passed = ()) -> bool:
        """An early alert: fire on ``window``, still open, whose rows so far are judged
        ``verdict``, if the track is :meth:`one_short` with the open windows before it
        that the stream has passed, ``passed`` ((window, verdict so far), oldest first).
        No open window is added to :attr:`recent` (each is observed when it closes);
        :attr:`since` is the first drifted window of the ones that count, this one if no
        other does."""
        if verdict is not Verdict.DRIFTED or not self.one_short(policy, passed):
            return False
        drifted = [w for w, flagged in self._before_next(policy, passed) if flagged]
        self.firing, self.since, self.clear_streak = True, (drifted or [window])[0], 0
        return True


BREAKER_KEY = "__breaker__"  # the circuit breaker's state, next to the tracks in the dict
OFFSETS_KEY = "__offsets__"  # offset ranges of the windows the tracks still refer to
EPISODES_KEY = "__episodes__"  # a firing alert's episode offsets, as they were when it fired


@dataclass
class PolicyState:
    """Every track of one source, keyed ``"<feature>/<method>"``, and its circuit breaker;
    round-trips through dicts."""

    tracks: dict[str, AlertTrack] = field(default_factory=dict)
    breaker: dict[str, Any] | None = None  # BreakerState.to_dict()
    # window -> its Kafka offset ranges (opaque here), kept while a track's recent windows or
    # episode start refer to it, so a fired alert can name the offsets of its whole episode
    offsets: dict[str, Any] = field(default_factory=dict)
    # key of a firing track -> its episode's offsets when it fired (kept until it resolves)
    episodes: dict[str, Any] = field(default_factory=dict)

    def observe(self, policy: AlertPolicy, key: str, window: str, verdict: Verdict) -> str | None:
        return self.tracks.setdefault(key, AlertTrack()).observe(policy, window, verdict)

    def fire_early(
        self, policy: AlertPolicy, key: str, window: str, verdict: Verdict, passed: Passed = ()
    ) -> bool:
        """:meth:`AlertTrack.fire_early` for ``key``; a key not seen yet gets a track only if it fires."""
        track = self.tracks.get(key, AlertTrack())
        if not track.fire_early(policy, window, verdict, passed):
            return False
        self.tracks[key] = track
        return True

    def one_short(self, policy: AlertPolicy, key: str, passed: Passed = ()) -> bool:
        """Whether ``key`` fires on one more drifted window after ``passed`` (a key not
        seen yet: an empty history)."""
        return self.tracks.get(key, AlertTrack()).one_short(policy, passed)

    def episode(self, key: str) -> list[Any]:
        """The offsets kept for the windows of ``key``'s current episode (from its first
        drifted window on), oldest first; empty when it is not firing."""
        track = self.tracks.get(key)
        if track is None or not track.firing or track.since is None:
            return []
        return [self.offsets[w] for w in sorted(self.offsets) if w >= track.since]

    def prune_offsets(self) -> None:
        """Forget the offsets of windows no track refers to any more, and the episodes of
        tracks no longer firing."""
        used = {w for t in self.tracks.values() for w, _ in t.recent} | {
            t.since for t in self.tracks.values() if t.firing and t.since
        }
        self.offsets = {w: r for w, r in self.offsets.items() if w in used}
        self.episodes = {k: e for k, e in self.episodes.items() if k in self.tracks and self.tracks[k].firing}

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {key: asdict(track) for key, track in sorted(self.tracks.items())}
        if self.breaker is not None:
            out[BREAKER_KEY] = self.breaker
        if self.offsets:
            out[OFFSETS_KEY] = dict(sorted(self.offsets.items()))
        if self.episodes:
            out[EPISODES_KEY] = dict(sorted(self.episodes.items()))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyState:
        tracks = {
            key: AlertTrack([tuple(r) for r in t["recent"]], t["firing"], t["since"], t["clear_streak"])
            for key, t in data.items()
            if key not in (BREAKER_KEY, OFFSETS_KEY, EPISODES_KEY)
        }
        return cls(tracks, data.get(BREAKER_KEY), dict(data.get(OFFSETS_KEY) or {}),
                   dict(data.get(EPISODES_KEY) or {}))  # fmt: skip
