"""A micro-batch's decoded rows split into the classes its census counts.

Runs on the driver inside ``foreachBatch``, once per batch: it builds Spark frames (no
action); the rows are split by the executors when the batch's census and partials are
collected. Used for one source (:class:`driftline.spark.batch.BatchProcessor`) and for
all the sources of a shared query at once (:mod:`driftline.spark.fused`); either way
every row carries its ``source`` column, so the same frames serve both.

- ``decode_failed``: rows the decoder or a decode-stage check refused (``_reason`` set);
- ``checked``: the other rows with ``_rule`` (first failed rule, or null),
  ``_rule_detail`` and ``_late``, cached: partials, tables and counts all read it;
- ``rule_failed``: checked rows with ``_rule`` set;
- ``late``: the other checked rows whose (last) window ended at or before the
  watermark ``cut``: ``floor(t / slide) * slide + size <= cut``;
- ``windowed`` / ``late_windowed``: the valid and the late rows with their windows (one
  row per window), the valid ones only in windows ending after ``cut`` (a sliding
  window's earlier windows may be final already: they stay so).

``cut`` is a Spark column: a literal for one source, the row's source's watermark for a
shared query; null (no watermark yet) makes no row late. It is evaluated once per row
into a ``_cut`` column before the checked rows are cached, and everything after the cache
compares with that column, not with ``cut``. A watermark literal is folded into the code
Spark generates (a timestamp is a ``long`` constant in the Java source), so with the
watermark moving every batch, every aggregation that compared with it was compiled
again by Janino each batch (20 classes a batch in ``tests/spark/test_bounded_state.py``,
counted with Spark's ``CodegenMetrics``). Read from the cached column, the aggregations'
code is the same every batch and comes from Spark's code cache.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from driftline.quality.reasons import ReasonCode
from driftline.spark import window_stats as ws

CUT = "_cut"  # the row's watermark (null: none yet), a column of every frame of a Split


@dataclass(frozen=True)
class Split:
    """A batch's rows by class (see the module docstring)."""

    decode_failed: DataFrame
    checked: DataFrame
    rule_failed: DataFrame
    late: DataFrame
    windowed: DataFrame
    late_windowed: DataFrame

    def of(self, source: str) -> Split:
        """The rows of one source (a filter on ``source``; nothing is read again)."""
        mine = F.col("source") == F.lit(source)
        return Split(*(frame.where(mine) for frame in (
            self.decode_failed, self.checked, self.rule_failed, self.late, self.windowed, self.late_windowed,
        )))  # fmt: skip


def last_window_end(event_time: str, size_seconds: int, slide_seconds: int | None) -> Column:
    """End of the latest window containing the event time (tumbling or sliding)."""
    slide = slide_seconds or size_seconds
    seconds = F.unix_micros(F.col(event_time)) / 1_000_000
    return F.timestamp_seconds(F.floor(seconds / slide) * slide + size_seconds)


def split_rows(
    rows: DataFrame,
    with_rules: Callable[[DataFrame], DataFrame],
    cut: Column | None,
    event_time: str,
    size_seconds: int,
    slide_seconds: int | None,
    cache: Callable[[DataFrame], DataFrame],
) -> Split:
    """``rows`` (decoded, with ``source``) split by class; ``with_rules`` adds ``_rule``
    and ``_rule_detail``, ``cache`` persists the checked rows."""
    rows = rows.withColumn(CUT, F.lit(None).cast("timestamp") if cut is None else cut)
    decode_failed = rows.where(F.col("_reason").isNotNull())
    checked = with_rules(rows.where(F.col("_reason").isNull()))
    late_end = last_window_end(event_time, size_seconds, slide_seconds)
    late = F.when(F.col(CUT).isNull(), F.lit(False)).otherwise(late_end <= F.col(CUT))
    checked = cache(checked.withColumn("_late", late))
    passing = checked.where(F.col("_rule").isNull())
    window, slide = f"{size_seconds} seconds", f"{slide_seconds} seconds" if slide_seconds else None
    windowed = ws.with_window(passing.where(~F.col("_late")), event_time, window, slide)
    windowed = windowed.where(_open(F.col("window_end")))
    late_rows = passing.where(F.col("_late"))
    return Split(
        decode_failed=decode_failed,
        checked=checked,
        rule_failed=checked.where(F.col("_rule").isNotNull()),
        late=late_rows,
        windowed=windowed,
        late_windowed=ws.with_window(late_rows, event_time, window, slide),
    )


def _open(window_end: Column) -> Column:
    """A window not final yet: no watermark, or it ends after the row's ``_cut``."""
    return F.col(CUT).isNull() | (window_end > F.col(CUT))


def dead_partials(split: Split, event_time: str, size_seconds: int, slide_seconds: int | None) -> DataFrame:
    """Dead letters per (source, window, reason), for the circuit breaker
    (:mod:`driftline.stats.breaker`): a decode failure has no event time and counts in
    the window of its Kafka timestamp, a rule failure in the window of its event time.
    Windows already final (ending at or before the row's ``_cut``) are left out: their
    state is gone."""
    window, slide = f"{size_seconds} seconds", f"{slide_seconds} seconds" if slide_seconds else None

    def windowed(rows: DataFrame, when: Column, reason: Column) -> DataFrame:
        timed = rows.select("source", when.alias("_when"), reason.alias("reason"), CUT)
        return ws.with_window(timed, "_when", window, slide).select(*ws.WINDOW_KEY, "reason", CUT)

    both = windowed(split.decode_failed, F.col("_timestamp"), F.col("_reason")).unionByName(
        windowed(split.rule_failed, F.col(event_time), F.lit(ReasonCode.RULE_FAILED.value))
    )
    both = both.where(F.col("window_start").isNotNull() & _open(F.col("window_end")))
    return both.groupBy(*ws.WINDOW_KEY, "reason").agg(F.count(F.lit(1)).alias("count"))


__all__ = ["Split", "dead_partials", "last_window_end", "split_rows"]
