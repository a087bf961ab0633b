"""Scoring one window of counts against a reference profile: measures, BH, verdicts.

This is the single path from counts to drift verdicts. The streaming job feeds it the
merged window counts it keeps in Spark; :meth:`ReferenceProfile.compare` feeds it the
counts of a DataFrame. The multiple-testing family is every (feature, method) with a
p-value scored together, i.e. all features of one source in one window.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from driftline.stats.binning import CategoricalBinning
from driftline.stats.methods import drift_method
from driftline.stats.multiple_testing import adjust
from driftline.stats.policy import AlertPolicy, Verdict

if TYPE_CHECKING:
    from driftline.stats.profile import FeatureProfile

TOP_SHIFTED = 3


@dataclass(frozen=True)
class FeatureScore:
    """One row of ``drift_scores``: a feature, a method, a window's evidence."""

    feature: str
    kind: str
    method: str
    score: float
    effect: float
    p_value: float | None
    p_adjusted: float | None
    threshold: float
    n: int
    verdict: Verdict
    details: dict[str, Any] = field(default_factory=dict)
    top_shifted: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return self.verdict is Verdict.DRIFTED

    @property
    def key(self) -> str:
        return f"{self.feature}/{self.method}"

    def as_row(self) -> dict[str, Any]:
        names = ("feature", "kind", "method", "score", "effect", "p_value", "p_adjusted", "threshold", "n")
        row = {name: getattr(self, name) for name in names}
        return {**row, "verdict": str(self.verdict), "drifted": self.drifted}


def counts_for(
    profile: FeatureProfile, counts: np.ndarray, which: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(reference, current, labels) over the bins a method needs: ``coarse``, ``fine``,
    ``slots`` or ``nulls`` (``[non-null, null]``; the null slot is the last in both kinds)."""
    binning, reference = profile.binning, profile.counts
    if which == "nulls":
        return _nulls(reference), _nulls(counts), ["non-null", "null"]
    if isinstance(binning, CategoricalBinning):
        return reference, counts, list(binning.labels)
    if which == "fine":
        values = slice(0, binning.null_slot)
        return reference[values], counts[values], []
    return binning.coarse_counts(reference), binning.coarse_counts(counts), binning.coarse_labels()


def _nulls(counts: np.ndarray) -> np.ndarray:
    counts = np.asarray(counts, dtype=np.int64)
    return np.array([counts[:-1].sum(), counts[-1]], dtype=np.int64)


def top_shifted(reference: np.ndarray, current: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    """The bins whose share moved most, largest first: the evidence an on-call reads."""
    if reference.sum() == 0 or current.sum() == 0 or not labels:
        return []
    share_e, share_a = reference / reference.sum(), current / current.sum()
    order = np.argsort(-np.abs(share_a - share_e), kind="stable")[:TOP_SHIFTED]
    return [
        {"bin": labels[i], "reference": round(float(share_e[i]), 6), "current": round(float(share_a[i]), 6)}
        for i in order
    ]


def score_window(
    profiles: Mapping[str, FeatureProfile],
    window_counts: Mapping[str, np.ndarray],
    methods: Iterable[str],
    policy: AlertPolicy,
) -> list[FeatureScore]:
    """Score every feature of ``window_counts`` with every applicable method.

    ``window_counts[feature]`` are the window's slot counts over the profile's binning
    (fine grid + null slot, or vocabulary + OOV + null). Methods that do not apply
    to a feature's kind (KS on a categorical) are skipped.
    """
    methods = [drift_method(m) for m in methods]
    raw = []
    for name in sorted(window_counts):
        profile = profiles[name]
        counts = np.asarray(window_counts[name], dtype=np.int64)
        for method in methods:
            if profile.kind not in method.kinds:
                continue
            reference, current, labels = counts_for(profile, counts, method.counts)
            measure = method.compute(reference, current)
            raw.append((profile, measure, int(current.sum()), top_shifted(reference, current, labels)))
    adjusted = adjust([m.p_value for _, m, _, _ in raw], policy.fdr)
    out = []
    for (profile, measure, n, shifted), p_adjusted in zip(raw, adjusted, strict=True):
        out.append(FeatureScore(
            feature=profile.name, kind=profile.kind, method=measure.method, score=measure.score,
            effect=measure.effect, p_value=measure.p_value, p_adjusted=p_adjusted,
            threshold=policy.threshold(measure.method), n=n,
            verdict=policy.verdict(measure.method, measure.effect, p_adjusted, n),
            details=measure.details, top_shifted=shifted,
        ))  # fmt: skip
    return out


def finite_or_none(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


__all__ = ["FeatureScore", "score_window", "top_shifted"]
