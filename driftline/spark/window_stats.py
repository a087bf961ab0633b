"""Windowed feature statistics as mergeable partial states, all in Spark SQL.

Each micro-batch turns its valid, on-time rows into *partials* per
(window, feature); a window's statistics are the merge of its partials over every
batch so far. The ``combine_*`` functions merge partials into partials of the same
shape, so the open windows' state (:mod:`driftline.spark.window_state`) is one
combined partial per key, updated batch by batch; :func:`finish_numeric` and
:func:`merge_categorical` turn them into the table's statistics. Merging is exact for
counts, mean, variance, min and max, and for quantiles it merges KLL sketches (Apache
DataSketches, via Spark's ``kll_*`` functions), so the order and grouping of batches
never changes a result and a backfill run as one batch yields the same windows.

Numeric partials: ``rows`` (including nulls), ``nulls``, ``n`` (non-null), ``mean``,
``m2`` (sum of squared deviations from the partial's mean), ``min``, ``max``,
``sketch``. NaN counts as null. Merge (Chan et al.):

    n = sum n_i,   mean = sum(n_i * mean_i) / n,
    m2 = sum(m2_i + n_i * (mean_i - mean)^2),   stddev = sqrt(m2 / (n - 1))  (sample)

Quantiles p01 .. p99 come from the merged KLL sketch with ``k = 200``: the rank of a
returned quantile is within about 1.65% of the asked rank with 99% confidence
(DataSketches' bound for k = 200); windows with fewer than ~``k`` values are nearly exact.

Categorical partials: ``count`` per (window, feature, value), value cast to string,
null kept as its own value. Merged: ``rows``, ``nulls``, ``distinct_count``, the top 5
categories, and the full ``category_counts`` map (capped at ``MAX_CATEGORIES``
distinct values per window, the rest summed under ``__OTHER__``).
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
QUANTILE_COLUMNS = tuple(f"p{round(q * 100):02d}" for q in QUANTILES)
KLL_K = 200
MAX_CATEGORIES = 1000
TOP_CATEGORIES = 5
OTHER = "__OTHER__"
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


def _long_format(rows: DataFrame, features: Sequence[str], value: Column) -> DataFrame:
    """One row per (input row, feature): ``feature`` and ``value`` (typed by ``value``)."""
    pairs = F.array(*[F.struct(F.lit(f).alias("feature"), value(f).alias("value")) for f in features])
    return rows.select(*WINDOW_KEY, "_partition", "_offset", F.explode(pairs).alias("_pair")).select(
        *WINDOW_KEY, "_partition", "_offset", "_pair.feature", "_pair.value"
    )


def numeric_partials(rows: DataFrame, features: Sequence[str]) -> DataFrame:
    """Per (window, feature): the mergeable numeric state of ``rows``."""
    as_double = lambda f: F.nanvl(F.col(f).cast("double"), F.lit(None).cast("double"))  # noqa: E731
    long = _long_format(rows, features, as_double)
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


def categorical_partials(rows: DataFrame, features: Sequence[str]) -> DataFrame:
    """Per (window, feature, value): how many rows had that value."""
    long = _long_format(rows, features, lambda f: F.col(f).cast("string"))
    return long.groupBy(*WINDOW_KEY, "feature", "value").agg(F.count(F.lit(1)).alias("count"))


def window_partials(rows: DataFrame) -> DataFrame:
    """Per window and Kafka partition: the rows and offsets it saw (for offset ranges)."""
    return rows.groupBy(*WINDOW_KEY, "_topic", "_partition").agg(
        F.count(F.lit(1)).alias("rows"),
        F.min("_offset").alias("first_offset"),
        F.max("_offset").alias("last_offset"),
    )


def offset_ranges(window_partials_: DataFrame) -> DataFrame:
    """Per window: ``offset_ranges``, the sorted (topic, partition, first_offset,
    last_offset) ranges its rows came from, merged over any number of batches."""
    return (
        window_partials_.groupBy(*WINDOW_KEY, "_topic", "_partition")
        .agg(F.min("first_offset").alias("first_offset"), F.max("last_offset").alias("last_offset"))
        .groupBy(*WINDOW_KEY)
        .agg(
            F.array_sort(F.collect_list(F.struct(
                F.col("_topic").alias("topic"), F.col("_partition").alias("partition"),
                "first_offset", "last_offset",
            ))).alias("offset_ranges")
        )
    )  # fmt: skip


def combine_numeric(partials: DataFrame) -> DataFrame:
    """Numeric partials of any number of batches as one partial per (window, feature):
    the same columns, merged with the formulas above (the sketches with ``kll_merge``)."""
    group = Window.partitionBy(*WINDOW_KEY, "feature")
    n_total = F.sum("n").over(group)
    mean_total = F.sum(F.col("n") * F.col("mean")).over(group) / n_total
    centered = partials.withColumn("_mean_total", mean_total)
    return centered.groupBy(*WINDOW_KEY, "feature").agg(
        F.sum("rows").alias("rows"),
        F.sum("nulls").alias("nulls"),
        F.sum("n").alias("n"),
        F.first("_mean_total", ignorenulls=True).alias("mean"),
        F.sum(
            F.coalesce(F.col("m2"), F.lit(0.0))
            + F.col("n") * F.pow(F.coalesce(F.col("mean") - F.col("_mean_total"), F.lit(0.0)), 2)
        ).alias("m2"),
        F.min("min").alias("min"),
        F.max("max").alias("max"),
        F.kll_merge_agg_double("sketch").alias("sketch"),
    )


def finish_numeric(combined: DataFrame) -> DataFrame:
    """One combined partial per (window, feature) as the table's statistics: ``stddev``
    (sample) and the quantiles from the sketch; ``m2`` is dropped, the sketch kept."""
    quantiles = F.when(
        F.col("n") > 0, F.kll_sketch_get_quantile_double("sketch", F.array(*[F.lit(q) for q in QUANTILES]))
    )
    out = combined.withColumn(
        "stddev", F.when(F.col("n") > 1, F.sqrt(F.col("m2") / (F.col("n") - 1)))
    ).withColumn("_q", quantiles)
    for index, name in enumerate(QUANTILE_COLUMNS):
        out = out.withColumn(name, F.col("_q")[index])
    return out.drop("_q", "m2")


def combine_categorical(partials: DataFrame) -> DataFrame:
    """Categorical partials as one ``count`` per (window, feature, value)."""
    return partials.groupBy(*WINDOW_KEY, "feature", "value").agg(F.sum("count").alias("count"))


def combine_window_partials(partials: DataFrame) -> DataFrame:
    """Window partials as one row per (window, topic, partition)."""
    return partials.groupBy(*WINDOW_KEY, "_topic", "_partition").agg(
        F.sum("rows").alias("rows"),
        F.min("first_offset").alias("first_offset"),
        F.max("last_offset").alias("last_offset"),
    )


def merge_categorical(partials: DataFrame) -> DataFrame:
    """Merge categorical partials into one row per (window, feature)."""
    key = [*WINDOW_KEY, "feature"]
    counts = combine_categorical(partials)
    non_null = F.col("value").isNotNull()
    summary = counts.groupBy(*key).agg(
        F.sum("count").alias("rows"),
        F.sum(F.when(~non_null, F.col("count")).otherwise(0)).alias("nulls"),
        F.sum(F.when(non_null, F.col("count")).otherwise(0)).alias("n"),
        F.count_if(non_null).alias("distinct_count"),
    )
    rank = F.row_number().over(Window.partitionBy(*key).orderBy(F.desc("count"), F.asc("value")))
    ranked = counts.where(non_null).withColumn("_rank", rank)
    top = (
        ranked.where(F.col("_rank") <= TOP_CATEGORIES)
        .groupBy(*key)
        .agg(
            F.transform(
                F.array_sort(F.collect_list(F.struct("_rank", "value", "count"))),
                lambda entry: F.struct(entry["value"].alias("value"), entry["count"].alias("count")),
            ).alias("top_categories")
        )
    )
    bucket = F.when(F.col("_rank") <= MAX_CATEGORIES, F.col("value")).otherwise(F.lit(OTHER))
    buckets = (
        ranked.withColumn("_bucket", bucket)
        .groupBy(*key, "_bucket")
        .agg(F.sum("count").alias("count"))
        .groupBy(*key)
        .agg(F.map_from_entries(F.collect_list(F.struct("_bucket", "count"))).alias("category_counts"))
    )
    return summary.join(top, key, "left").join(buckets, key, "left")
