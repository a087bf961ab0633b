"""Windowed feature partials from a micro-batch's rows, in Spark SQL (JVM work).

Each micro-batch turns its valid, on-time rows into *partials* per (window, feature):
counts, moments and a KLL sketch for numeric features, a count per value for
categorical ones, rows and offsets per Kafka partition for each window. They are
aggregates (a few hundred rows per batch, never one per record); the driver collects
them in one action and merges them with the open windows' state
(:mod:`driftline.spark.window_state`, formulas in :mod:`driftline.stats.partials`).

Numeric partials: ``rows`` (including nulls), ``nulls``, ``n`` (non-null), ``mean``,
``m2`` (sum of squared deviations from the partial's mean, ``var_pop * n``), ``min``,
``max``, ``sketch`` (``kll_sketch_agg_double`` with ``k = 200``). NaN counts as null.
Categorical partials: ``count`` per (window, feature, value), value cast to string,
null kept as its own value. Null partials: ``count`` of nulls per (window, field), for
every nullable field of the reader schema (schema drift: a field turning all-null).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

KLL_K = 200
WINDOW_KEY = ["source", "window_start", "window_end"]


def with_window(rows: DataFrame, event_time: str, size: str, slide: str | None = None) -> DataFrame:
    """Add ``window_start`` / ``window_end`` (one row per window for sliding windows)."""
    window = F.window(F.col(event_time), size, slide) if slide else F.window(F.col(event_time), size)
    return (
        rows.withColumn("_window", window)
        .withColumn("window_start", F.col("_window.start"))
        .withColumn("window_end", F.col("_window.end"))
        .drop("_window")
    )


def _long_format(rows: DataFrame, features: Sequence[str], value: Column,
                 only: Sequence[str] | None = None) -> DataFrame:  # fmt: skip
    """One row per (input row, feature): ``feature`` and ``value`` (typed by ``value``);
    with ``only``, just the (source, feature) pairs it lists (see :func:`keep_pairs`)."""
    pairs = F.array(*[F.struct(F.lit(f).alias("feature"), value(f).alias("value")) for f in features])
    long = rows.select(*WINDOW_KEY, "_partition", "_offset", F.explode(pairs).alias("_pair")).select(
        *WINDOW_KEY, "_partition", "_offset", "_pair.feature", "_pair.value"
    )
    return keep_pairs(long, "feature", only)


PAIR_SEP = "\x1f"  # between a source and a feature in a pair key (the ASCII unit separator)


def pair_key(source: str, feature: str) -> str:
    """The key :func:`keep_pairs` matches: ``source<US>feature``."""
    return f"{source}{PAIR_SEP}{feature}"


def keep_pairs(rows: DataFrame, name: str, only: Sequence[str] | None) -> DataFrame:
    """``rows`` whose ``source`` and ``name`` column form one of ``only``'s
    :func:`pair_key` keys (all rows when ``only`` is None): the features each source of
    a shared query has (:mod:`driftline.spark.fused`)."""
    if only is None:
        return rows
    return rows.where(F.concat_ws(PAIR_SEP, "source", name).isin(list(only)))


def numeric_partials(
    rows: DataFrame, features: Sequence[str], only: Sequence[str] | None = None
) -> DataFrame:
    """Per (window, feature): the mergeable numeric state of ``rows``."""
    as_double = lambda f: F.nanvl(F.col(f).cast("double"), F.lit(None).cast("double"))  # noqa: E731
    long = _long_format(rows, features, as_double, only)
    value = F.col("value")
    return long.groupBy(*WINDOW_KEY, "feature").agg(
        F.count(F.lit(1)).alias("rows"),
        F.count_if(value.isNull()).alias("nulls"),
        F.count(value).alias("n"),
        F.avg(value).alias("mean"),
        (F.var_pop(value) * F.count(value)).alias("m2"),
        F.min(value).alias("min"),
        F.max(value).alias("max"),
        F.kll_sketch_agg_double(value, KLL_K).alias("sketch"),
    )


def categorical_partials(
    rows: DataFrame, features: Sequence[str], only: Sequence[str] | None = None
) -> DataFrame:
    """Per (window, feature, value): how many rows had that value."""
    long = _long_format(rows, features, lambda f: F.col(f).cast("string"), only)
    return long.groupBy(*WINDOW_KEY, "feature", "value").agg(F.count(F.lit(1)).alias("count"))


def window_partials(rows: DataFrame) -> DataFrame:
    """Per window and Kafka partition: the rows and offsets it saw (for offset ranges)."""
    return rows.groupBy(*WINDOW_KEY, "_topic", "_partition").agg(
        F.count(F.lit(1)).alias("rows"),
        F.min("_offset").alias("first_offset"),
        F.max("_offset").alias("last_offset"),
    )


def null_partials(rows: DataFrame, fields: Sequence[str], only: Sequence[str] | None = None) -> DataFrame:
    """Per (window, field): how many of ``rows`` have the field null (0 included)."""
    counts = F.array(*[
        F.struct(F.lit(f).alias("field"), F.count_if(F.col(f).isNull()).alias("count")) for f in fields
    ])  # fmt: skip
    per_window = rows.groupBy(*WINDOW_KEY).agg(counts.alias("_counts"))
    exploded = per_window.select(*WINDOW_KEY, F.explode("_counts").alias("_c")).select(
        *WINDOW_KEY, "_c.field", "_c.count"
    )
    return keep_pairs(exploded, "field", only)
