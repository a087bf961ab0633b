"""Retention of the quality tables and of the job's progress rows.

Each quality table keeps a source's partitions for a set time: ``dead_letters`` for
``[tables] dead_letters_retention`` (30 days), ``feature_stats``, ``drift_scores``,
``alerts``, ``quality_results`` and ``schema_events`` for ``[tables] retention``
(90 days). A partition's age is the newest ``modificationTime`` the Delta log holds for
its files (when the job last committed to it: a batch's rows, or a window's last
MERGE), so expiry needs no folder timestamps (object stores have none) and no listing.

:class:`TableRetention` is one per table per driver (:func:`for_table`): every source
the driver writes registers with it, and whichever batch commits first once a sweep is
due (a minute after the driver began, then at most once per ``min(shortest retention /
10, 1 hour)``) sweeps the table for all of them, so 50 sources cost one sweep an hour,
not 50, and a job's first batches (a backlog, a run until idle) pay none. A sweep:

1. reads the snapshot's add actions and finds each registered source's partitions
   whose newest file is older than its retention;
2. DELETEs them (one commit; partition columns only, so no data file is read);
3. VACUUMs the table: files removed (by this DELETE, earlier ones, or MERGEs that
   replaced a window's file) longer ago than ``delta.deletedFileRetentionDuration``
   (1 hour) are deleted; the lite VACUUM reads the log's tombstones, not the folders;
4. removes the folders of partitions it expired once they hold nothing but markers
   (those whose files VACUUM deleted; the driver remembers them until then, so a
   restart leaves them empty on disk).

Steps 1 and 2 hold the table's lock (:func:`driftline.spark.delta.expire_partitions`),
so no batch of this driver commits to a partition between its expiry and its DELETE.
A run until idle sweeps once more at its end if it has not swept
(:func:`sweep_unswept`): a scheduled run shorter than the first minute still expires.

:class:`BatchPruner` keeps the newest progress rows of a source.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

from pyspark.sql import SparkSession

from driftline.spark import delta, fs

logger = logging.getLogger(__name__)

DELETE_CHUNK = 500  # partition values per DELETE predicate
FIRST_SWEEP_AFTER = 60.0  # seconds after the driver began: a restarted job sweeps, its first batches do not
# the quality tables and the partition column (under source=<s>) that retention expires
PARTITIONED_BY = {
    "dead_letters": "batch_id",
    "feature_stats": "window_key",
    "drift_scores": "batch_id",
    "alerts": "batch_id",
    "quality_results": "batch_id",
    "schema_events": "batch_id",
}


def expired(
    files: Iterable[tuple[str, str, int]], older_than: dict[str, timedelta], now_ms: int
) -> dict[str, list[str]]:
    """Per source of ``older_than``, the partition values whose newest file (``files``:
    (source, partition value, modification time in epoch ms), one or more per partition)
    was committed more than ``older_than[source]`` before ``now_ms``, oldest first. A
    partition with one recent file is kept whole."""
    newest: dict[tuple[str, str], int] = {}
    for source, value, modified in files:
        if source in older_than:
            newest[(source, value)] = max(modified, newest.get((source, value), modified))
    gone: dict[str, list[tuple[int, str]]] = {}
    for (source, value), modified in newest.items():
        if modified < now_ms - older_than[source] / timedelta(milliseconds=1):
            gone.setdefault(source, []).append((modified, value))
    return {source: [value for _, value in sorted(old)] for source, old in sorted(gone.items())}


class TableRetention:
    """Expires the partitions (``column``: ``batch_id`` or ``window_key``) of one Delta
    table for the sources registered with :meth:`keep` (driver side, at the end of a
    source's batch, once its state version is written; see the module docstring)."""

    def __init__(self, table: str, column: str, clock=time.time, vacuum_hours: int | None = None) -> None:
        self.table, self.column, self.clock = table, column, clock
        self.vacuum_hours = vacuum_hours  # None: the table's deletedFileRetentionDuration
        self.retention: dict[str, timedelta] = {}
        self._pending: set[tuple[str, str]] = set()  # expired partitions whose folders may hold files
        self._started = clock()  # the first sweep waits FIRST_SWEEP_AFTER: not in a job's first batches
        self._last: float | None = None
        self._lock = threading.Lock()

    def keep(self, source: str, retention: timedelta) -> TableRetention:
        """Keep ``source``'s partitions for ``retention`` (the last registration wins)."""
        with self._lock:
            self.retention[source] = retention
        return self

    @property
    def every(self) -> float:
        """Seconds between sweeps: a tenth of the shortest retention, at most an hour."""
        return min(min(self.retention.values()) / 10, timedelta(hours=1)).total_seconds()

    def __call__(self, spark: SparkSession, *, at_end: bool = False) -> dict[str, list[str]]:
        """Sweep when one is due (else nothing); returns the expired partition values per
        source. ``at_end``: a run until idle ends, sweep now unless this driver already
        has. A batch that finds another source's batch sweeping goes on without waiting;
        a sweep that fails is logged and tried again at the next interval (the batch's
        state is written; housekeeping does not fail it)."""
        if not self._lock.acquire(blocking=False):
            return {}
        try:
            now = self.clock()
            if not self.retention or not (self._last is None if at_end else self._due(now)):
                return {}
            self._last = now
            return self._sweep(spark, now)
        except Exception as error:  # noqa: BLE001 - logged; the next sweep tries again
            reason = (str(error).splitlines() or [type(error).__name__])[0]
            logger.warning("retention_failed table=%s error=%s", self.table, reason)
            return {}
        finally:
            self._lock.release()

    def _due(self, now: float) -> bool:
        if self._last is None:  # the first sweep: FIRST_SWEEP_AFTER after the driver began
            return now - self._started >= min(self.every, FIRST_SWEEP_AFTER)
        return now - self._last >= self.every

    def _sweep(self, spark: SparkSession, now: float) -> dict[str, list[str]]:
        gone = delta.expire_partitions(spark, self.table, self.column,
                                       lambda newest: expired(newest, self.retention, int(now * 1000)),
                                       chunk=DELETE_CHUNK)  # fmt: skip
        for source, values in gone.items():
            logger.info("retention_expired table=%s source=%s partitions=%d oldest=%s",
                        self.table, source, len(values), values[0])  # fmt: skip
            self._pending.update((source, value) for value in values)
        delta.vacuum(spark, self.table, self.vacuum_hours)
        if self._pending:  # the expired partitions' folders, once VACUUM has emptied them
            self._pending -= delta.remove_partition_folders(
                spark, self.table, self.column, sorted(self._pending)
            )
        return gone


_tables: dict[tuple[str, str], TableRetention] = {}
_tables_lock = threading.Lock()


def for_table(table: str, column: str) -> TableRetention:
    """The driver's one :class:`TableRetention` of ``table``."""
    with _tables_lock:
        return _tables.setdefault((table, column), TableRetention(table, column))


def sweep_unswept(spark: SparkSession) -> None:
    """Sweep every table of this driver that has not been swept yet (``driftline run
    --until-idle`` calls it once the queries are idle: a scheduled run that ends within a
    minute still expires its tables)."""
    with _tables_lock:
        tables = list(_tables.values())
    for table in tables:
        table(spark, at_end=True)


def batches_below(names: list[str], below: int) -> list[str]:
    """The ``batch_id=N`` names with ``N < below``, in batch order."""
    numbered = [(int(n.split("=", 1)[1]), n) for n in names if n.startswith("batch_id=") and n[9:].isdigit()]
    return [name for number, name in sorted(numbered) if number < below]


class BatchPruner:
    """Keeps the newest ``keep`` batch folders of one source under ``base``, listing the
    folder at most once per ``every`` seconds (driver side, at the end of a batch)."""

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
