"""Multiple-testing correction across the features tested together.

With hundreds of features tested per window at level ``alpha``, some p-values fall
below ``alpha`` by chance every window. Benjamini-Hochberg controls the false
discovery rate instead: with the ``m`` p-values sorted ascending, the adjusted value
of the ``i``-th is

    ``p_adj(i) = min_{j >= i} min(1, m * p(j) / j)``

and a test is a discovery when ``p_adj <= alpha``. ``None`` p-values (measures without
one, such as PSI) are passed through and do not count towards ``m``.

Examples
--------
>>> benjamini_hochberg([0.01, 0.04, 0.03, 0.5])
[0.04, 0.05333333333333333, 0.05333333333333333, 0.5]
>>> benjamini_hochberg([0.02, None])
[0.02, None]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CORRECTIONS = ("bh", "none")


def benjamini_hochberg(p_values: Sequence[float | None]) -> list[float | None]:
    """Benjamini-Hochberg adjusted p-values, in the input order."""
    present = [i for i, p in enumerate(p_values) if p is not None and not np.isnan(p)]
    out: list[float | None] = [None if p is None else float(p) for p in p_values]
    if not present:
        return out
    p = np.array([p_values[i] for i in present], dtype=np.float64)
    order = np.argsort(p, kind="stable")
    m = p.size
    ranked = p[order] * (m / np.arange(1, m + 1))  # factor >= 1 (exactly 1 for the largest): p_adj >= p
    adjusted_sorted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    adjusted = np.empty(m)
    adjusted[order] = adjusted_sorted
    for i, value in zip(present, adjusted, strict=True):
        out[i] = float(value)
    return out


def adjust(p_values: Sequence[float | None], method: str) -> list[float | None]:
    """Adjust with ``method`` (``"bh"`` or ``"none"``)."""
    if method == "bh":
        return benjamini_hochberg(p_values)
    if method == "none":
        return [None if p is None else float(p) for p in p_values]
    raise ValueError(f"unknown correction {method!r}; valid: {', '.join(CORRECTIONS)}")
