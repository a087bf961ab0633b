"""A micro-batch's counts: classes, rule failures, windows.

Runs on the driver inside ``foreachBatch`` (:mod:`driftline.spark.batch`), once per
batch, over the batch's cached frames. :func:`census_frame` is a union of three small
aggregations, collected in the same Spark action as the batch's partials
(:func:`driftline.spark.window_state.collect`), and :func:`read_census` reads it:

- per class and rule: how many rows, and the newest event time of the valid rows.
  A decode failure's class is its reason code; a rows that passed decoding is
  ``RULE_FAILED`` when a rule failed, else ``LATE_DATA`` when late, else ``VALID``.
  A row none of these conditions holds for (a null where a flag is expected) gets no
  class, so it is missing from every count and the batch fails to reconcile;
- per window of the late rows: how many (their ``late_rows`` in ``feature_stats``);
- per window of the valid, on-time rows: how many (the windows this batch touched).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from driftline.quality.reasons import ReasonCode

VALID = "VALID"
LATE = ReasonCode.LATE_DATA.value


@dataclass
class Census:
    """What :func:`census_frame` counted (timestamps aware UTC)."""

    by_class: dict[str, int] = field(default_factory=dict)
    rule_failures: dict[str, int] = field(default_factory=dict)
    max_event_time: datetime | None = None
    late_windows: list[tuple[datetime, datetime, int]] = field(default_factory=list)
    valid_windows: list[tuple[datetime, datetime]] = field(default_factory=list)

    @property
    def valid(self) -> int:
        return self.by_class.get(VALID, 0)

    @property
    def late(self) -> int:
        return self.by_class.get(LATE, 0)

    @property
    def dead_by_reason(self) -> dict[str, int]:
        """Decode and rule failures per reason code (late rows are counted apart)."""
        return {c: n for c, n in self.by_class.items() if c not in (VALID, LATE)}


def census_frame(
    decode_failed: DataFrame,
    checked: DataFrame,
    event_time: str,
    late_windowed: DataFrame,
    windowed: DataFrame,
) -> DataFrame:
    """The batch's counts as one small frame (see the module docstring).

    Every count is per ``source`` (a column of the rows): one source's batch has one,
    a shared query's batch all of its sources (:mod:`driftline.spark.fused`).
    ``decode_failed``: rows with ``_reason`` set; ``checked``: the other rows with
    ``_rule`` (first failed rule, or null) and ``_late``; ``late_windowed`` /
    ``windowed``: the late and the valid rows with their windows (one row per window).
    """
    null_string, null_time = F.lit(None).cast("string"), F.lit(None).cast("timestamp")
    klass = (
        F.when(F.col("_rule").isNotNull(), F.lit(ReasonCode.RULE_FAILED.value))
        .when(F.col("_late"), F.lit(LATE))
        .when(~F.col("_late"), F.lit(VALID))
    )
    rows = decode_failed.select(
        "source", F.col("_reason").alias("class"), null_string.alias("rule"), null_time.alias("t")
    ).unionByName(
        checked.select(
            "source",
            klass.alias("class"),
            F.col("_rule").alias("rule"),
            F.when(klass == VALID, F.col(event_time)).alias("t"),
        )
    )
    classes = rows.groupBy("source", "class", "rule").agg(F.count(F.lit(1)).alias("n"), F.max("t").alias("t"))
    classes = classes.select(
        "source", F.lit("class").alias("part"), "class", "rule",
        null_time.alias("start"), null_time.alias("end"), "n", "t",
    )  # fmt: skip

    def per_window(frame: DataFrame, part: str) -> DataFrame:
        counted = frame.groupBy("source", "window_start", "window_end").agg(F.count(F.lit(1)).alias("n"))
        return counted.select(
            "source", F.lit(part).alias("part"), null_string.alias("class"), null_string.alias("rule"),
            F.col("window_start").alias("start"), F.col("window_end").alias("end"), "n", null_time.alias("t"),
        )  # fmt: skip

    return classes.unionByName(per_window(late_windowed, "late")).unionByName(per_window(windowed, "valid"))


def read_census(rows) -> Census:
    """The :class:`Census` in the collected rows of :func:`census_frame` (mappings)."""
    census = Census()
    for row in rows:
        if row["part"] == "class":
            if row["class"] is None:
                continue  # unclassified: left out of every count, so the batch does not reconcile
            census.by_class[row["class"]] = census.by_class.get(row["class"], 0) + row["n"]
            if row["rule"] is not None:
                census.rule_failures[row["rule"]] = census.rule_failures.get(row["rule"], 0) + row["n"]
            if row["class"] == VALID:
                census.max_event_time = row["t"]
        elif row["part"] == "late":
            census.late_windows.append((row["start"], row["end"], row["n"]))
        else:
            census.valid_windows.append((row["start"], row["end"]))
    census.late_windows.sort()
    census.valid_windows.sort()
    return census
