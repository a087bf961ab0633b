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


class _FolderPruner:
    """Deletes entries of one source's folder under ``base``, listing it at most once per
    ``every`` seconds (driver side, after a batch committed)."""

    def __init__(self, base: str, source: str, every: float, clock=time.time) -> None:
        self.folder = fs.join(base, f"source={source}")
        self.every, self.clock = every, clock
        self._last: float | None = None

    def _due(self) -> float | None:
        """Now (epoch seconds) when a sweep is due, else None."""
        now = self.clock()
        if self._last is not None and now - self._last < self.every:
            return None
        self._last = now
        return now

    def _delete(self, spark: SparkSession, names: list[str], message: str) -> list[str]:
        """Delete ``names``; log ``message`` % (folder, how many, the first) when any."""
        for name in names:
            fs.delete(spark, fs.join(self.folder, name))
        if names:
            logger.info(message, self.folder, len(names), names[0])
        return names


class RetentionSweeper(_FolderPruner):
    """Deletes one source's expired ``dead_letters`` partitions, now and then."""

    def __init__(self, table: str, source: str, retention: timedelta, clock=time.time) -> None:
        super().__init__(table, source, min(retention / 10, timedelta(hours=1)).total_seconds(), clock)
        self.retention = retention

    def __call__(self, spark: SparkSession) -> list[str]:
        now = self._due()
        if now is None:
            return []
        gone = expired(fs.list_modified(spark, self.folder), self.retention, int(now * 1000))
        return self._delete(spark, gone, "retention_pruned table=%s partitions=%d oldest=%s")


def batches_below(names: list[str], below: int) -> list[str]:
    """The ``batch_id=N`` names with ``N < below``, in batch order."""
    numbered = [(int(n.split("=", 1)[1]), n) for n in names if n.startswith("batch_id=") and n[9:].isdigit()]
    return [name for number, name in sorted(numbered) if number < below]


class BatchPruner(_FolderPruner):
    """Keeps the newest ``keep`` batch folders of one source under ``base``."""

    def __init__(self, base: str, source: str, keep: int, every: float = 600.0, clock=time.time) -> None:
        super().__init__(base, source, every, clock)
        self.keep = keep

    def __call__(self, spark: SparkSession, batch_id: int) -> list[str]:
        if self._due() is None:
            return []
        gone = batches_below(fs.list_names(spark, self.folder), batch_id - self.keep + 1)
        return self._delete(spark, gone, "batches_pruned folder=%s batches=%d oldest=%s")
