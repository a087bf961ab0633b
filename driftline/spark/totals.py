"""The job's running totals per source: records read, valid, dead-lettered, late, lost.

Each batch adds its progress record to the previous state version's totals and stores
the sum in its commit record (:mod:`driftline.spark.window_state`), so the run summary
reads one small file instead of every batch's progress row, and progress rows can be
pruned. Runs on the driver, once per batch (:func:`add_totals`) and once per run
summary; :func:`progress_totals` (the sum over the progress table) serves states whose
commits were written before totals were kept.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from driftline.spark.tables import Warehouse, read_table

COUNTS = ("read", "valid", "dead_lettered", "late", "lost", "offsets_reset")


def add_totals(totals: dict[str, Any] | None, record: dict[str, Any]) -> dict[str, Any]:
    """``totals`` (None: nothing yet) plus one batch's progress ``record``:
    ``batches`` + 1, each of :data:`COUNTS` summed, ``by_reason`` summed per reason."""
    base = totals or {}
    out: dict[str, Any] = {"batches": base.get("batches", 0) + 1}
    for key in COUNTS:
        out[key] = base.get(key, 0) + (record.get(key) or 0)
    by_reason = dict(base.get("by_reason") or {})
    for reason, count in (record.get("by_reason") or {}).items():
        by_reason[reason] = by_reason.get(reason, 0) + count
    out["by_reason"] = by_reason
    return out


def progress_totals(
    spark: SparkSession, warehouse: Warehouse, source: str, below: int | None = None
) -> dict[str, Any] | None:
    """Totals summed over the progress rows of ``source`` (batches below ``below`` when
    given); None when there are none. One read of the progress table."""
    rows = read_table(spark, warehouse.state("progress"), source)
    if rows is None:
        return None
    if below is not None:
        rows = rows.where(F.col("batch_id") < below)
    totals = None
    for row in rows.collect():
        totals = add_totals(totals, row.asDict())  # rows written before lost/offsets_reset lack them
    return totals
