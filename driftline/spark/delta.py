"""The quality tables as Delta Lake tables, committed from the driver with delta-rs.

``feature_stats``, ``drift_scores``, ``alerts``, ``quality_results``, ``schema_events``
and ``dead_letters`` are Delta tables under the warehouse: a folder of Parquet files
(hive-style partition folders, ``source=<s>/...``) and a ``_delta_log/`` of JSON
commits. Spark (with Delta's session extension), the ``deltalake`` package (pandas,
polars, DuckDB through Arrow) and any Delta reader see the same snapshot.

How a batch writes (driver side, inside ``foreachBatch``, after its rows are known):

- **Idempotent per batch.** Every commit carries a ``txn`` action
  ``(appId = driftline:<source>:<query id>, version = batch id)``, Delta's own
  ``txnAppId`` / ``txnVersion``. Before writing, the table's last version for that app
  id is read; a replayed batch whose commit is already in the log writes nothing. The
  query id changes when a checkpoint is reset, and batch ids start again with it.
- **Append** (:func:`append`) for per-batch rows (scores, alerts, results, events).
- **MERGE** (:func:`merge`) for ``feature_stats``: a window's rows are provisional while
  it is open and are upgraded in place, keyed by ``(source, window_key, feature)``, each
  time a batch changes them, until the final row (``is_final``).
- **Files Spark wrote** (:func:`add_files`): the dead letters are written by a Spark job
  (no Python per record) into their batch's partition folder, then committed as ``add``
  actions; a crashed attempt's files are never in the log and are overwritten by the
  retry.
- **Schema evolution**: appends and MERGEs add a column the rows have and the table
  lacks (older rows read it as null), so a newer driftline writes to an older table.
- **Retention**: removed files are deleted by VACUUM (:func:`vacuum`) once older than
  ``delta.deletedFileRetentionDuration``; checkpoints every
  ``delta.checkpointInterval`` commits and expired-log cleanup keep ``_delta_log``
  bounded (:data:`CONFIGURATION`).

Paths are resolved by Hadoop's FileSystem first (a relative path against its default
file system, ``file:`` made ``file:///``) and then opened by delta-rs's object store,
which reads ``file://``, ``s3://`` / ``s3a://`` and ``hdfs://`` URIs itself. One lock per
table serialises the driver's writers (two batch bodies may run at once); one driver
writes a warehouse (:func:`driftline.spark.job.claim_warehouse`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, create_table_with_add_actions
from pyspark.sql import SparkSession

from driftline.spark import fs

# table properties, set when a table is created
CONFIGURATION = {
    "delta.checkpointInterval": "50",  # a reader replays at most 50 JSON commits
    "delta.logRetentionDuration": "interval 1 day",  # older commits go once checkpointed
    "delta.enableExpiredLogCleanup": "true",
    "delta.deletedFileRetentionDuration": "interval 1 hour",  # VACUUM deletes removed files this old
}

_lock = threading.Lock()
_table_locks: dict[str, threading.Lock] = {}


def app_id(source: str, run: str) -> str:
    """The ``txn`` app id of one source's writes in one run (query id)."""
    return f"driftline:{source}:{run}"


def uri(spark: SparkSession, path: str) -> str:
    """``path`` as the URI delta-rs opens: qualified by Hadoop (``/w`` -> ``file:///w``)."""
    qualified = fs.qualify(spark, path)
    if qualified.startswith("file:/") and not qualified.startswith("file:///"):
        qualified = "file:///" + qualified[len("file:/") :].lstrip("/")
    return qualified


def _table_lock(location: str) -> threading.Lock:
    with _lock:
        return _table_locks.setdefault(location, threading.Lock())


def open_table(location: str) -> DeltaTable | None:
    """The table's newest snapshot, None when ``location`` holds no Delta table."""
    if not DeltaTable.is_deltatable(location):
        return None
    return DeltaTable(location)


def committed(table: DeltaTable | None, app: str, version: int) -> bool:
    """Whether ``table`` already holds a commit of ``app`` at ``version`` or later."""
    if table is None:
        return False
    done = table.transaction_version(app)
    return done is not None and done >= version


def _commit(txns: Sequence[tuple[str, int]]) -> CommitProperties:
    """Commit properties carrying one ``txn`` action per ``(app, version)``."""
    now = int(time.time() * 1000)
    return CommitProperties(
        app_transactions=[Transaction(app_id=app, version=version, last_updated=now) for app, version in txns]
    )


# -- one commit per table for a block of writes ------------------------------------------
Entry = tuple[pa.Table, str, int]  # rows, app id, version: one source's batch of one table
_staged = threading.local()  # .writes: {(location, kind, partition_by, keys): [(rows, app, version)]}


@contextmanager
def one_commit_per_table() -> Iterator[Callable[[], None]]:
    """Stage this thread's :func:`append` and :func:`merge` calls inside the block and
    commit them: one commit per table (and kind of write), carrying every staged
    ``(app, version)`` as its own ``txn`` action, so a replay still skips each source's
    batch on its own. A shared query's batch (driver side, the query's ``foreachBatch``
    thread) wraps its sources' steps in it: 50 sources make one ``feature_stats`` MERGE
    a batch instead of 50. The block gets a function that commits what is staged so far
    (to time it); what is left is committed when the block ends. When the block raises,
    nothing staged is committed (the batch fails and Spark replays it)."""
    if getattr(_staged, "writes", None) is not None:  # inside one already: the outer block commits
        yield lambda: None
        return
    _staged.writes = {}
    try:
        yield _commit_staged
        _commit_staged()
    finally:
        _staged.writes = None


def _commit_staged() -> None:
    """Commit what this thread staged (see :func:`one_commit_per_table`)."""
    writes, _staged.writes = _staged.writes, {}
    for (location, kind, partition_by, keys), entries in writes.items():
        if kind == "append":
            _append_entries(location, entries, partition_by)
        else:
            _merge_entries(location, entries, keys, partition_by)


def _stage(location: str, kind: str, rows: pa.Table, partition_by: Sequence[str], keys: Sequence[str],
           app: str, version: int) -> bool:  # fmt: skip
    """Stage a write when inside :func:`one_commit_per_table`; False when not inside one."""
    writes = getattr(_staged, "writes", None)
    if writes is None:
        return False
    writes.setdefault((location, kind, tuple(partition_by), tuple(keys)), []).append((rows, app, version))
    return True


def append(
    spark: SparkSession, path: str, rows: pa.Table, *, partition_by: Sequence[str], app: str, version: int
) -> bool:
    """Append ``rows`` to the table at ``path`` (created on the first write) as commit
    ``(app, version)``; False, and nothing written, when that commit is already there.
    Inside :func:`one_commit_per_table` it is staged (True) and committed at the end."""
    location = uri(spark, path)
    if _stage(location, "append", rows, partition_by, (), app, version):
        return True
    return _append_entries(location, [(rows, app, version)], partition_by)


def _pending(table: DeltaTable | None, entries: list[Entry]) -> list:
    """The entries whose ``(app, version)`` commit is not in ``table`` yet."""
    return [(rows, app, version) for rows, app, version in entries if not committed(table, app, version)]


def _rows_and_txns(entries: list[Entry]) -> tuple[pa.Table, list[tuple[str, int]]]:
    rows = pa.concat_tables([r for r, _, _ in entries], promote_options="default")
    return rows, [(app, version) for _, app, version in entries]


def _append_entries(location: str, entries: list[Entry], partition_by: Sequence[str]) -> bool:
    """One append commit of the entries not committed yet; False when there are none."""
    with _table_lock(location):
        table = open_table(location)
        entries = _pending(table, entries)
        if not entries:
            return False
        _append(location, table, *_rows_and_txns(entries), partition_by)
        return True


def _append(location: str, table: DeltaTable | None, rows: pa.Table, txns: Sequence[tuple[str, int]],
            partition_by: Sequence[str]) -> None:  # fmt: skip
    """One append commit carrying ``txns``; the table is created (with
    :data:`CONFIGURATION`) when ``table`` is None. The caller holds the table's lock."""
    write_deltalake(
        table if table is not None else location, rows, mode="append", partition_by=list(partition_by),
        configuration=CONFIGURATION if table is None else None, commit_properties=_commit(txns),
        schema_mode="merge",
    )  # fmt: skip


def merge(
    spark: SparkSession, path: str, rows: pa.Table, *, keys: Sequence[str], partition_by: Sequence[str],
    app: str, version: int,
) -> bool:  # fmt: skip
    """MERGE ``rows`` into the table at ``path``: a row whose ``keys`` match is updated
    (every column), any other inserted; one commit ``(app, version)``, skipped when it is
    already there. The merge condition names the partition columns, so only the files of
    the partitions ``rows`` touch are read and rewritten. Inside
    :func:`one_commit_per_table` it is staged (True) and merged at the end."""
    location = uri(spark, path)
    if _stage(location, "merge", rows, partition_by, keys, app, version):
        return True
    return _merge_entries(location, [(rows, app, version)], keys, partition_by)


def _merge_entries(location: str, entries: list[Entry], keys: Sequence[str],
                   partition_by: Sequence[str]) -> bool:  # fmt: skip
    """One MERGE commit of the entries not committed yet; False when there are none."""
    with _table_lock(location):
        table = open_table(location)
        entries = _pending(table, entries)
        if not entries:
            return False
        rows, txns = _rows_and_txns(entries)
        if table is None:  # the first write creates the table: nothing to merge with
            _append(location, None, rows, txns, partition_by)
            return True
        literal = _partition_literals(rows, partition_by)
        condition = " AND ".join([*(f"t.`{k}` = s.`{k}`" for k in keys), *literal])
        merger = table.merge(rows, condition, source_alias="s", target_alias="t", merge_schema=True,
                             commit_properties=_commit(txns))  # fmt: skip
        merger.when_matched_update_all().when_not_matched_insert_all().execute()
        return True


def _partition_literals(rows: pa.Table, partition_by: Sequence[str]) -> list[str]:
    """``t.col IN ('a', 'b')`` for each partition column: the target files to read."""
    out = []
    for column in partition_by:
        values = sorted({str(v) for v in rows.column(column).to_pylist() if v is not None})
        if values:
            quoted = ", ".join(_quoted(v) for v in values)
            out.append(f"t.`{column}` IN ({quoted})")
    return out


def add_files(
    spark: SparkSession, path: str, folder: str, schema: pa.Schema, partition_values: dict[str, str], *,
    app: str, version: int, write: Callable[[], None] = lambda: None,
) -> int:  # fmt: skip
    """Commit the Parquet files in partition ``folder`` of the table at ``path`` as
    ``add`` actions of commit ``(app, version)``; returns how many (0 when the commit is
    already there or the folder holds none). ``write`` makes the files (a Spark job that
    overwrites ``folder``); it runs only when the commit is not there yet, so a replay
    writes nothing, and outside the table's lock, so another batch's commit does not
    wait for it (only this batch writes ``folder``). ``schema``: the table's columns,
    partition columns included."""
    location = uri(spark, path)
    relative = folder[len(path.rstrip("/")) + 1 :]
    if committed(open_table(location), app, version):
        return 0
    write()
    with _table_lock(location):
        table = open_table(location)  # again: another batch may have committed meanwhile
        files = [(name, size, modified) for name, size, modified in fs.list_files(spark, folder)
                 if fs.data_file(name)]  # fmt: skip
        if not files:
            return 0
        actions = [
            AddAction(
                path=f"{relative}/{name}",
                size=size,
                partition_values=partition_values,
                modification_time=modified,
                data_change=True,
                stats=json.dumps({}),
            )  # fmt: skip
            for name, size, modified in files
        ]
        schema = DeltaSchema.from_arrow(schema)
        if table is None:
            create_table_with_add_actions(
                location, schema, actions, mode="append", partition_by=list(partition_values),
                configuration=CONFIGURATION, commit_properties=_commit([(app, version)]),
            )  # fmt: skip
        else:
            table.create_write_transaction(actions, mode="append", schema=schema,
                                           partition_by=list(partition_values),
                                           commit_properties=_commit([(app, version)]))  # fmt: skip
        return len(actions)


def read(spark: SparkSession, path: str, filters: list[tuple] | None = None) -> pa.Table | None:
    """The rows of the table's newest snapshot (``filters``: partition filters such as
    ``[("source", "=", "payments")]``); None when there is no table."""
    table = open_table(uri(spark, path))
    if table is None:
        return None
    return table.to_pyarrow_table(filters=filters)


def vacuum(spark: SparkSession, path: str, retention_hours: int | None = None) -> list[str]:
    """Delete the files the table no longer references that were removed longer ago than
    ``retention_hours`` (default: its ``delta.deletedFileRetentionDuration``); returns them."""
    location = uri(spark, path)
    with _table_lock(location):
        table = open_table(location)
        if table is None:
            return []
        return table.vacuum(
            retention_hours, dry_run=False, enforce_retention_duration=retention_hours is None
        )


def newest_per_partition(table: DeltaTable, column: str) -> list[tuple[str, str, int]]:
    """(source, ``column``'s partition value as text, newest modification time in epoch
    ms of its files) per partition of ``table``'s snapshot: its add actions, grouped in
    Arrow (the log, not a listing)."""
    actions = pa.table(table.get_add_actions(flatten=True))
    names = ["partition.source", f"partition.{column}", "modification_time"]
    if any(name not in actions.column_names for name in names):
        return []
    grouped = actions.select(names).group_by(names[:2]).aggregate([("modification_time", "max")])
    sources, values, newest = (grouped.column(n).to_pylist() for n in (*names[:2], "modification_time_max"))
    return [(s, str(v), m) for s, v, m in zip(sources, values, newest, strict=True)]


def expire_partitions(spark: SparkSession, path: str, column: str,
                      choose: Callable[[list[tuple[str, str, int]]], dict[str, list[str]]],
                      chunk: int) -> dict[str, list[str]]:  # fmt: skip
    """DELETE the partitions ``choose`` picks (per source, ``column`` values) from the
    table's newest snapshot's partitions (:func:`newest_per_partition`), holding the
    table's lock from reading the snapshot to the last DELETE, so no commit of this
    driver lands in between; ``chunk`` values per DELETE commit (a predicate over
    partition columns only: no data file is read). Returns what ``choose`` picked."""
    location = uri(spark, path)
    with _table_lock(location):
        table = open_table(location)
        if table is None:
            return {}
        gone = choose(newest_per_partition(table, column))
        numeric = pa.types.is_integer(pa.schema(table.schema().to_arrow()).field(column).type)
        for source, values in gone.items():
            for start in range(0, len(values), chunk):
                listed = ", ".join(
                    str(int(v)) if numeric else _quoted(v) for v in values[start : start + chunk]
                )
                table.delete(f"source = {_quoted(source)} AND {column} IN ({listed})")
        return gone


def remove_partition_folders(spark: SparkSession, path: str, column: str,
                             partitions: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:  # fmt: skip
    """Delete the folders of ``partitions`` ((source, value) of ``column``) that the table
    no longer lists and that hold nothing but Spark's and Hadoop's markers (``_SUCCESS``,
    ``*.crc``), under the table's lock. Returns the partitions done with: removed, or
    written again since (a live partition's folder is not ours to remove). A folder with
    data files (VACUUM has not deleted them yet) or anything else (a Spark write in
    flight) stays, and its partition is not returned."""
    location = uri(spark, path)
    with _table_lock(location):
        table = open_table(location)
        live = {(s, v) for s, v, _ in newest_per_partition(table, column)} if table is not None else set()
        done = set()
        for source, value in partitions:
            if (source, value) in live:
                done.add((source, value))
                continue
            folder = fs.join(path, f"source={source}", f"{column}={value}")
            if all(name == "_SUCCESS" or name.endswith(".crc") for name in fs.list_names(spark, folder)):
                fs.delete(spark, folder)
                done.add((source, value))
        return done


def _quoted(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
