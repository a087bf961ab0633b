"""Retention of the ``dead_letters`` table: batch partitions older than a setting go.

The dead-letter *topic* keeps its records for Kafka's own ``retention.ms``; the table's
per-batch partitions (``dead_letters/source=S/batch_id=N``) are deleted once they are
older than ``[tables] dead_letters_retention`` (default 30 days), measured from the
partition folder's modification time on the warehouse's file system (when the batch
wrote it). :class:`RetentionSweeper` runs on the driver after a batch has committed,
at most once per ``min(retention / 10, 1 hour)``, so the listing it needs (one call per
source) does not become per-batch work.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from pyspark.sql import SparkSession

from driftline.spark import fs

logger = logging.getLogger(__name__)


def expired(entries: list[tuple[str, int]], older_than: timedelta, now_ms: int) -> list[str]:
    """Names of ``batch_id=*`` entries modified more than ``older_than`` before ``now_ms``, oldest first."""
    cutoff = now_ms - older_than / timedelta(milliseconds=1)
    old = [
        (modified, name) for name, modified in entries if name.startswith("batch_id=") and modified < cutoff
    ]
    return [name for _, name in sorted(old)]


class RetentionSweeper:
    """Deletes one source's expired ``dead_letters`` partitions, now and then (driver side)."""

    def __init__(self, table: str, source: str, retention: timedelta, clock=time.time) -> None:
        self.folder = fs.join(table, f"source={source}")
        self.retention = retention
        self.every = min(retention / 10, timedelta(hours=1)).total_seconds()
        self.clock = clock
        self._last: float | None = None

    def __call__(self, spark: SparkSession) -> list[str]:
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return []
        self._last = now
        gone = expired(fs.list_modified(spark, self.folder), self.retention, int(now * 1000))
        for name in gone:
            fs.delete(spark, fs.join(self.folder, name))
        if gone:
            logger.info("retention_pruned table=%s partitions=%d oldest=%s", self.folder, len(gone), gone[0])
        return gone
