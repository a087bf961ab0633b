"""The ``feature_stats`` table: one row per (source, window, feature), written by the driver.

Partitioned ``source=<s>/window_key=<yyyyMMdd'T'HHmmss>``; a window's partition is
replaced whenever a batch changes it (rows added, the window closed, late rows
counted), one Parquet file per partition, written with :mod:`driftline.spark.arrow_files`
(no Spark job: the rows are finished on the driver from the open windows' state).
Every file has the full column set below, numeric and categorical columns alike (the
other kind's are null), so any reader sees one schema.

Runs on the driver inside ``foreachBatch``.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
from pyspark.sql import SparkSession

from driftline.spark import arrow_files, fs
from driftline.spark.tables import as_utc
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


def window_key(start: datetime) -> str:
    """The partition of the window starting at ``start`` (naive local or aware): its UTC
    start as ``yyyyMMdd'T'HHmmss``."""
    return as_utc(start).strftime("%Y%m%dT%H%M%S")


def partition(root: str, source: str, start: datetime) -> str:
    return fs.join(root, f"source={source}", f"window_key={window_key(start)}")


def replace_windows(spark: SparkSession, root: str, source: str, rows: list[dict]) -> int:
    """Replace the partitions of the windows in ``rows`` (dicts with :data:`SCHEMA`'s
    keys, any missing one null) with exactly those rows; returns how many partitions."""
    by_window: dict[datetime, list[dict]] = {}
    for row in rows:
        by_window.setdefault(row["window_start"], []).append(row)
    for start, window_rows in sorted(by_window.items()):
        table = pa.Table.from_pylist(window_rows, schema=SCHEMA)
        arrow_files.replace_folder(spark, partition(root, source, start), table, success=False)
    return len(by_window)


def read_window(spark: SparkSession, root: str, source: str, start: datetime) -> list[dict] | None:
    """The rows of one window's partition (None when it was never written)."""
    table, _ = arrow_files.read_folder(spark, partition(root, source, start))
    return None if table is None else arrow_files.conform(table, SCHEMA).to_pylist()
