"""Infinite feature values become dead letters, never statistics.

One ``+Infinity`` in a numeric feature would make its window's mean infinite and its
variance NaN, and since open windows are merged batch after batch, every later batch of
that window too. So, as Spark SQL over the decoded rows (no Python per record), a
record with a numeric feature ``x`` where ``abs(x) = Infinity`` gets reason
``NOT_FINITE`` (stage ``decode``) and a detail naming the first such feature and its
value. NaN is not refused: it counts as null in the statistics (``nulls``), the way
pandas writes a missing value. Applied by :class:`driftline.spark.batch.BatchProcessor`
to every decoded batch, after the event-time check and before the batch is cached; a
record already refused keeps its first reason.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from driftline.quality.reasons import ReasonCode
from driftline.spark.decode import refuse


def not_finite_detail(numeric: Sequence[str]) -> Column | None:
    """The detail naming a row's first infinite feature of ``numeric``, null when all are
    finite; None when there are no numeric features."""
    if not numeric:
        return None
    infinite = {f: F.abs(F.col(f).cast("double")) == F.lit(float("inf")) for f in numeric}
    return F.coalesce(*[
        F.when(bad, F.concat(F.lit(f"numeric feature {f} = "), F.col(f).cast("double").cast("string"),
                             F.lit(" is not finite")))
        for f, bad in infinite.items()
    ])  # fmt: skip


def with_finite_check(rows: DataFrame, numeric: Sequence[str]) -> DataFrame:
    """``rows`` (decoded, with ``_reason`` and ``_detail``) with ``numeric`` features checked."""
    detail = not_finite_detail(numeric)
    if detail is None:
        return rows
    return refuse(rows, detail.isNotNull(), ReasonCode.NOT_FINITE, detail)


__all__ = ["not_finite_detail", "with_finite_check"]
