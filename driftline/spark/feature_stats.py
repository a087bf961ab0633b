"""The ``feature_stats`` table: one row per (source, window, feature), written by the driver.

A Delta table partitioned ``source=<s>/window_key=<yyyyMMdd'T'HHmmss>``. A window's
rows are provisional while it is open; whenever a batch changes them (rows added, the
window closed, late rows counted) they are MERGEd in, keyed by ``(source, window_key,
feature)``, in one commit per batch (:func:`driftline.spark.delta.merge`; no Spark job:
the rows are finished on the driver from the open windows' state).
Every file has the full column set below, numeric and categorical columns alike (the
other kind's are null), so any reader sees one schema.

Runs on the driver inside ``foreachBatch``.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from pyspark.sql import SparkSession

from driftline.spark import arrow_files, delta
from driftline.spark.tables import Warehouse, as_utc
from driftline.stats.partials import QUANTILE_COLUMNS

_TIME = pa.timestamp("us", tz="UTC")
CATEGORY = pa.struct([("value", pa.string()), ("count", pa.int64())])
RANGE = pa.struct([("topic", pa.string()), ("partition", pa.int32()), ("first_offset", pa.int64()),
                   ("last_offset", pa.int64())])  # fmt: skip
# the files' columns; ``source`` and ``window_key`` are the partition folders
SCHEMA = pa.schema([
    ("window_start", _TIME), ("window_end", _TIME), ("feature", pa.string()), ("kind", pa.string()),
    ("rows", pa.int64()), ("nulls", pa.int64()), ("n", pa.int64()), ("mean", pa.float64()),
    ("stddev", pa.float64()), ("min", pa.float64()), ("max", pa.float64()),
    *((name, pa.float64()) for name in QUANTILE_COLUMNS),
    ("sketch", pa.binary()), ("distinct_count", pa.int64()), ("top_categories", pa.list_(CATEGORY)),
    ("category_counts", pa.map_(pa.string(), pa.int64())), ("offset_ranges", pa.list_(RANGE)),
    ("late_rows", pa.int64()), ("is_final", pa.bool_()), ("pipeline", pa.string()), ("batch_id", pa.int64()),
])  # fmt: skip


KEYS = ("source", "window_key", "feature")  # what a MERGE matches rows on
PARTITIONS = ("source", "window_key")


def window_key(start: datetime) -> str:
    """The partition of the window starting at ``start`` (naive local or aware): its UTC
    start as ``yyyyMMdd'T'HHmmss``."""
    return as_utc(start).strftime("%Y%m%dT%H%M%S")


def merge_windows(
    spark: SparkSession, warehouse: Warehouse, source: str, batch_id: int, rows: list[dict]
) -> int:
    """MERGE ``rows`` (dicts with :data:`SCHEMA`'s keys, any missing one null) into the
    table as batch ``batch_id``'s commit: each (window, feature) row replaces the one
    it keys; returns how many windows."""
    if not rows:
        return 0
    table = pa.Table.from_pylist(rows, schema=SCHEMA)
    keys = [window_key(start) for start in table.column("window_start").to_pylist()]
    table = table.append_column("source", pa.array([source] * table.num_rows, pa.string()))
    table = table.append_column("window_key", pa.array(keys, pa.string()))
    app = warehouse.app(source)
    delta.merge(spark, warehouse.table("feature_stats"), table, keys=KEYS, partition_by=PARTITIONS, app=app,
                version=batch_id)  # fmt: skip
    return len(set(keys))


def read_window(spark: SparkSession, warehouse: Warehouse, source: str, start: datetime) -> list[dict] | None:
    """The rows of one window (None when it was never written)."""
    filters = [("source", "=", source), ("window_key", "=", window_key(start))]
    table = delta.read(spark, warehouse.table("feature_stats"), filters)
    if table is None or table.num_rows == 0:
        return None
    return arrow_files.conform(table, SCHEMA).to_pylist()
