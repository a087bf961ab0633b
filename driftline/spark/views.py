"""The quality tables as Spark SQL views, for ``driftline sql`` and notebooks.

Each table under the warehouse becomes a temporary view of the same name, every
source's rows together (``source`` is a column, from the partition folders):

``feature_stats``  one row per (source, window, feature): the newest version of each
                   window (MERGEd in place, never appended to)
``drift_scores``   one row per (source, window, feature, method)
``alerts``         fired and resolved events
``quality_results`` one row per (source, window, window expectation): success, observed value
``schema_events``  schema drift: new writer schema ids, all-null fields, unseen categories
``dead_letters``   every dead-lettered record with its reason and original bytes

Every table is a Delta table, read as its newest snapshot (the files its log lists),
so a batch being written (or one a crash interrupted, which its replay rewrites) is
never half-counted. A table no batch has written yet is not registered;
:func:`register_views` returns the names it did.

Runs on the driver, once per ``driftline sql`` call: each table's log is read, no data
until a query runs.
"""

from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession

from driftline.spark import fs
from driftline.spark.tables import read_table

WINDOW_TABLES = ("feature_stats",)  # source=<s>/window_key=<k>: replaced per window
# source=<s>/batch_id=<n>
BATCH_TABLES = ("drift_scores", "alerts", "quality_results", "schema_events", "dead_letters")
TABLES = WINDOW_TABLES + BATCH_TABLES


def table_frame(spark: SparkSession, warehouse: str, name: str) -> DataFrame | None:
    """Table ``name`` of the warehouse at ``warehouse`` (a Hadoop path or URI), or None
    when nothing has been written to it yet."""
    frame = read_table(spark, fs.join(warehouse, name))
    if frame is None or name not in WINDOW_TABLES:
        return frame
    return frame.drop("window_key")  # a folder name, not data


def register_views(spark: SparkSession, warehouse: str) -> list[str]:
    """Register every written quality table of ``warehouse`` as a temporary view; return
    their names, in :data:`TABLES` order."""
    names = []
    for name in TABLES:
        frame = table_frame(spark, warehouse, name)
        if frame is not None:
            frame.createOrReplaceTempView(name)
            names.append(name)
    return names


__all__ = ["TABLES", "register_views", "table_frame"]
