"""Retention of per-batch folders: ``dead_letters`` by age, progress rows by count.

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


def batches_below(names: list[str], below: int) -> list[str]:
    """The ``batch_id=N`` names with ``N < below``, in batch order."""
    numbered = [(int(n.split("=", 1)[1]), n) for n in names if n.startswith("batch_id=") and n[9:].isdigit()]
    return [name for number, name in sorted(numbered) if number < below]


class BatchPruner:
    """Keeps the newest ``keep`` batch folders of one source under ``base`` (driver side,
    after a batch committed); lists the folder at most once per ``every`` seconds."""

    def __init__(self, base: str, source: str, keep: int, every: float = 600.0, clock=time.time) -> None:
        self.folder = fs.join(base, f"source={source}")
        self.keep, self.every, self.clock = keep, every, clock
        self._last: float | None = None

    def __call__(self, spark: SparkSession, batch_id: int) -> list[str]:
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return []
        self._last = now
        gone = batches_below(fs.list_names(spark, self.folder), batch_id - self.keep + 1)
        for name in gone:
            fs.delete(spark, fs.join(self.folder, name))
        if gone:
            logger.info("batches_pruned folder=%s batches=%d oldest=%s", self.folder, len(gone), gone[0])
        return gone
