"""Retention of per-batch folders: ``dead_letters`` by age, progress rows by count.

The dead-letter *topic* keeps its records for Kafka's own ``retention.ms``; the Delta
table's per-batch partitions (``dead_letters/source=S/batch_id=N``) are deleted once
they are older than ``[tables] dead_letters_retention`` (default 30 days), measured
from the partition folder's modification time on the warehouse's file system (when the
batch wrote it). :class:`RetentionSweeper` runs on the driver after a batch has
committed, at most once per ``min(retention / 10, 1 hour)``, so the listing it needs
(one call per source) does not become per-batch work. A sweep:

1. DELETEs the expired batches' rows from the table (one commit, partition-only, so
   no file is read);
2. VACUUMs ``dead_letters`` and ``feature_stats`` (whose MERGEs replace a window's file
   every time it changes): files removed longer ago than the table's
   ``delta.deletedFileRetentionDuration`` (1 hour) are deleted;
3. deletes the expired folders that no longer hold a data file.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from pyspark.sql import SparkSession

from driftline.spark import delta, fs

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
    """Deletes one source's expired ``dead_letters`` batches, now and then, and vacuums
    the tables whose files are replaced (``vacuumed``)."""

    def __init__(self, table: str, source: str, retention: timedelta, clock=time.time,
                 vacuumed: tuple[str, ...] = (), vacuum_hours: int | None = None) -> None:  # fmt: skip
        super().__init__(table, source, min(retention / 10, timedelta(hours=1)).total_seconds(), clock)
        self.table, self.source, self.retention, self.vacuumed = table, source, retention, vacuumed
        self.vacuum_hours = vacuum_hours  # None: each table's deletedFileRetentionDuration

    def __call__(self, spark: SparkSession) -> list[str]:
        now = self._due()
        if now is None:
            return []
        gone = expired(fs.list_modified(spark, self.folder), self.retention, int(now * 1000))
        if gone:
            ids = ", ".join(name.split("=", 1)[1] for name in gone)
            source = self.source.replace("'", "''")
            delta.delete(spark, self.table, f"source = '{source}' AND batch_id IN ({ids})")
        for table in (self.table, *self.vacuumed):
            delta.vacuum(spark, table, self.vacuum_hours)
        empty = [name for name in gone if not _holds_data(spark, fs.join(self.folder, name))]
        self._delete(spark, empty, "retention_pruned table=%s partitions=%d oldest=%s")
        return gone


def _holds_data(spark: SparkSession, folder: str) -> bool:
    return any(fs.data_file(name) for name in fs.list_names(spark, folder))


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
