"""Drift measures over plain bin counts: PSI, KS, chi-square, Jensen-Shannon and the null rate.

Every measure takes the reference counts and the current counts over the *same*
frozen bins (see :mod:`driftline.stats.binning`) and returns a :class:`Measure`:
the score, a p-value where the measure has one, and the *effect size* the alert
policy compares with its floor. This module is the one place the formulas live;
Spark and the notebook API only feed it counts.

PSI
    ``PSI = sum_i (a_i - e_i) * ln(a_i / e_i)`` over the coarse bins (and the null
    slot; out-of-vocabulary and null slots for categoricals), ``e`` the reference
    and ``a`` the current proportions. *Smoothing*: bins empty in both samples are
    left out (they carry no information); every other bin gets a pseudo-count
    ``alpha = 0.5`` in both samples, ``p_i = (c_i + alpha) / (N + alpha * K)``. So an
    empty bin on one side contributes a large but finite term that grows with the
    other side's share (not with an arbitrary epsilon), and PSI is always finite.
    No p-value; the effect size is PSI itself.
KS
    Two-sample Kolmogorov-Smirnov statistic from counts on the fine grid of reference
    quantiles: ``D_grid = max_j |F_cur(g_j-) - F_ref(g_j-)|`` over the grid edges. Because
    both CDFs are monotone between edges, with ``r_j / R`` and ``c_j / C`` the shares
    of fine bin ``j`` in the reference and current samples,

        ``0 <= D_exact - D_grid <= min(max_j r_j / R, max_j c_j / C)``

    (``ks_bound`` in the result; about ``1 / grid`` for continuous data, 0.0001 by default). The p-value is
    the Kolmogorov distribution's tail at ``(sqrt(n_e) + 0.12 + 0.11 / sqrt(n_e)) * D``
    with ``n_e = R * C / (R + C)`` (Stephens' small-sample correction). Nulls are
    excluded (the null slot is PSI's business). Effect size: ``D``.
Chi-square
    Pearson's test of homogeneity on the 2 x K table (reference, current) over the
    vocabulary, out-of-vocabulary and null slots; slots empty in both are left out,
    ``dof = K' - 1``. Effect size: Cramer's V of the table with both samples given
    equal weight, ``V = sqrt(1/2 * sum_i (a_i - e_i)^2 / (a_i + e_i))`` in ``[0, 1]``,
    so it does not depend on how large the reference is.
JS
    Jensen-Shannon distance (square root of the divergence, base 2, in ``[0, 1]``) of
    the unsmoothed proportions. No p-value; effect size: the distance.
Null rate
    The share of nulls, ``p = nulls / rows``, reference (``p_e``) against current
    (``p_a``), over the counts ``[non-null, null]``. Two-proportion z-test with the
    pooled share ``q = (x_e + x_a) / (n_e + n_a)``:
    ``z = (p_a - p_e) / sqrt(q (1 - q) (1 / n_e + 1 / n_a))``, two-sided ``p = 2 (1 - Phi(|z|))``
    (the same p-value as Pearson's chi-square on the 2 x 2 table without Yates'
    correction). Effect size: Cohen's h, ``h = |2 asin(sqrt(p_a)) - 2 asin(sqrt(p_e))|``
    in ``[0, pi]``; Cohen calls 0.2 small, 0.5 medium, 0.8 large. A move from 10% to
    20% nulls is ``h = 0.28``; from 1% to 2% it is ``h = 0.08``. Score: ``h`` too. The
    p-value joins the window's Benjamini-Hochberg family with KS and chi-square, and
    ``h`` is compared with ``null_rate_floor``. PSI sees the same move only through its
    null slot, diluted by the value bins: at 10% -> 20% over ten even bins PSI is 0.08.

Examples
--------
>>> psi([50, 50], [50, 50]).score
0.0
>>> round(psi([90, 10], [50, 50]).score, 6)
0.853059
>>> ks([10, 10, 10, 10, 0], [0, 0, 20, 20, 0]).score
0.5
>>> round(chi2([30, 10, 0, 0], [20, 10, 10, 0]).p_value, 6)
0.002479
>>> js([1, 0], [0, 1]).score
1.0
>>> round(null_rate([900, 100], [800, 200]).effect, 4)
0.2838
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import special  # the distributions' survival functions; scipy.stats costs 0.7 s more to import

PSI_ALPHA = 0.5

Counts = Sequence[int] | np.ndarray


@dataclass(frozen=True)
class Measure:
    """One drift measure of one feature in one window."""

    method: str
    score: float
    effect: float
    p_value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _pair(reference: Counts, current: Counts) -> tuple[np.ndarray, np.ndarray]:
    e = np.asarray(reference, dtype=np.float64)
    a = np.asarray(current, dtype=np.float64)
    if e.shape != a.shape:
        raise ValueError(f"reference and current counts differ in length: {e.shape} vs {a.shape}")
    return e, a


def psi(reference: Counts, current: Counts, *, alpha: float = PSI_ALPHA) -> Measure:
    """Population Stability Index (see the module notes for the smoothing)."""
    e, a = _pair(reference, current)
    keep = (e + a) > 0
    e, a = e[keep], a[keep]
    if e.sum() == 0 or a.sum() == 0:
        return Measure("psi", math.nan, math.nan, details={"smoothing": alpha})
    k = e.size
    p_e = (e + alpha) / (e.sum() + alpha * k)
    p_a = (a + alpha) / (a.sum() + alpha * k)
    value = float(np.sum((p_a - p_e) * np.log(p_a / p_e)))
    return Measure("psi", value, value, details={"smoothing": alpha})


def ks(reference: Counts, current: Counts) -> Measure:
    """KS statistic and p-value from fine-grid counts (value bins only, no null slot)."""
    e, a = _pair(reference, current)
    total_e, total_a = e.sum(), a.sum()
    if total_e == 0 or total_a == 0:
        return Measure("ks", math.nan, math.nan, None, {"ks_bound": math.nan})
    share_e, share_a = e / total_e, a / total_a
    gaps = np.abs(np.cumsum(share_a)[:-1] - np.cumsum(share_e)[:-1])
    d = float(gaps.max()) if gaps.size else 0.0
    bound = float(min(share_e.max(), share_a.max()))
    n_e = total_e * total_a / (total_e + total_a)
    root = math.sqrt(n_e)
    p_value = float(special.kolmogorov((root + 0.12 + 0.11 / root) * d))  # kstwobign.sf
    return Measure("ks", d, d, min(1.0, p_value), {"ks_bound": bound})


def chi2(reference: Counts, current: Counts) -> Measure:
    """Chi-square test of homogeneity and the equal-weight Cramer's V."""
    e, a = _pair(reference, current)
    keep = (e + a) > 0
    e, a = e[keep], a[keep]
    if e.sum() == 0 or a.sum() == 0 or e.size < 2:
        return Measure("chi2", 0.0 if e.size == 1 else math.nan, 0.0 if e.size == 1 else math.nan,
                       1.0 if e.size == 1 else None, {"dof": 0})  # fmt: skip
    table = np.vstack([e, a])
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    statistic = float(((table - expected) ** 2 / expected).sum())
    dof = e.size - 1
    p_e, p_a = e / e.sum(), a / a.sum()
    cramers_v = math.sqrt(0.5 * float(np.sum((p_a - p_e) ** 2 / (p_a + p_e))))
    return Measure("chi2", statistic, cramers_v, float(special.chdtrc(dof, statistic)), {"dof": dof})


def js(reference: Counts, current: Counts) -> Measure:
    """Jensen-Shannon distance, base 2."""
    e, a = _pair(reference, current)
    if e.sum() == 0 or a.sum() == 0:
        return Measure("js", math.nan, math.nan)
    p_e, p_a = e / e.sum(), a / a.sum()
    mid = (p_e + p_a) / 2

    def kl(p: np.ndarray) -> float:
        inside = p > 0
        return float(np.sum(p[inside] * np.log2(p[inside] / mid[inside])))

    value = math.sqrt(max(0.0, (kl(p_e) + kl(p_a)) / 2))
    return Measure("js", value, value)


def null_rate(reference: Counts, current: Counts) -> Measure:
    """Share of nulls, reference vs current: two-proportion z-test and Cohen's h.

    ``reference`` and ``current`` are ``[non-null, null]`` counts (see the module notes)."""
    e, a = _pair(reference, current)
    if e.shape != (2,):
        raise ValueError(f"null_rate takes [non-null, null] counts, got {e.size} slots")
    n_e, n_a = e.sum(), a.sum()
    if n_e == 0 or n_a == 0:
        return Measure("null_rate", math.nan, math.nan, None, {})
    p_e, p_a = e[1] / n_e, a[1] / n_a
    h = abs(2 * math.asin(math.sqrt(p_a)) - 2 * math.asin(math.sqrt(p_e)))
    pooled = (e[1] + a[1]) / (n_e + n_a)
    spread = pooled * (1 - pooled) * (1 / n_e + 1 / n_a)
    # spread 0: no nulls on either side, or only nulls: the shares are equal
    p_value = 1.0 if spread == 0 else float(2 * special.ndtr(-abs(p_a - p_e) / math.sqrt(spread)))
    details = {"reference_share": round(float(p_e), 6), "current_share": round(float(p_a), 6)}
    return Measure("null_rate", h, h, min(1.0, p_value), details)


@dataclass(frozen=True)
class DriftMethod:
    """A registered measure: what it needs and which feature kinds it applies to."""

    name: str
    compute: Callable[[Counts, Counts], Measure]
    kinds: tuple[str, ...]
    # "coarse" (PSI bins + null), "fine" (value bins of the grid), "slots" (categorical),
    # "nulls" ([non-null, null])
    counts: str


METHODS: dict[str, DriftMethod] = {
    "psi": DriftMethod("psi", psi, ("numeric", "categorical"), "coarse"),
    "ks": DriftMethod("ks", ks, ("numeric",), "fine"),
    "chi2": DriftMethod("chi2", chi2, ("categorical",), "slots"),
    "js": DriftMethod("js", js, ("numeric", "categorical"), "coarse"),
    "null_rate": DriftMethod("null_rate", null_rate, ("numeric", "categorical"), "nulls"),
}


def drift_method(name: str) -> DriftMethod:
    """The registered method ``name``; an error lists the valid names."""
    if name not in METHODS:
        raise KeyError(f"unknown drift method {name!r}; valid methods: {', '.join(METHODS)}")
    return METHODS[name]
