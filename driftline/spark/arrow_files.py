"""The job's own small Parquet files, written and read by the driver without a Spark job.

A state version's partials (one file per kind) and a batch's progress row are a few
hundred rows the driver already holds. Handing them to Spark to write costs a Spark job
each (0.25-0.6 s on 2 cores, most of a small batch's time); here ``pyarrow`` encodes
them in the driver and the bytes go through Hadoop's FileSystem
(:mod:`driftline.spark.fs`), so the files land wherever Spark's would (``file:``,
``hdfs:``, ``s3a:``). The quality tables are Delta tables (:mod:`driftline.spark.delta`);
:func:`conform` also shapes the rows read back from them.

Layout is Spark's: a folder of ``part-*.parquet`` files; a batch folder gets
``_SUCCESS`` last (:func:`driftline.spark.tables.read_table` counts only complete
batches). Timestamps are written as ``TIMESTAMP(MICROS, isAdjustedToUTC=true)``, which
Spark reads as ``TIMESTAMP``; partition columns are never inside the files. Runs on the
driver, inside ``foreachBatch``.
"""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import SparkSession

from driftline.spark import fs

PART = "part-00000-driftline.parquet"
SUCCESS = "_SUCCESS"


def encode(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="snappy")
    return sink.getvalue()


def decode(data: bytes) -> pa.Table:
    return pq.read_table(io.BytesIO(data))


def write_file(spark: SparkSession, path: str, table: pa.Table) -> None:
    """``table`` as the one Parquet file ``path`` (replaced atomically)."""
    fs.write_bytes(spark, path, encode(table))


def read_file(spark: SparkSession, path: str) -> pa.Table | None:
    data = fs.read_bytes(spark, path)
    return None if data is None else decode(data)


def replace_folder(spark: SparkSession, folder: str, table: pa.Table, *, success: bool = True) -> None:
    """Make ``folder`` hold exactly ``table``, as one file (and ``_SUCCESS`` last).

    The new file is written first (under its final name, atomically), then every other
    entry of the folder, an earlier attempt's or Spark's ``part-*`` files, is removed:
    a reader sees the old rows or the new ones, never none."""
    write_file(spark, fs.join(folder, PART), table)
    for name in fs.list_names(spark, folder):
        if name not in (PART, SUCCESS) and not name.startswith("."):
            fs.delete(spark, fs.join(folder, name))
    if success:
        fs.write_bytes(spark, fs.join(folder, SUCCESS), b"")


def read_folder(spark: SparkSession, folder: str) -> tuple[pa.Table | None, int]:
    """The rows of every ``part-*`` file in ``folder`` (Spark's or ours) and how many
    files that was; ``(None, 0)`` when it holds none."""
    names = sorted(n for n in fs.list_names(spark, folder) if fs.data_file(n))
    tables = [read_file(spark, fs.join(folder, name)) for name in names]
    tables = [t for t in tables if t is not None]
    if not tables:
        return None, 0
    return pa.concat_tables(tables, promote_options="default"), len(tables)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with exactly ``schema``'s columns, in its order: a missing column null, any
    other column dropped, each cast to its type; a timestamp stored without a zone (a file
    Spark wrote with INT96) is read as UTC."""
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.nulls(table.num_rows, target.type))
            continue
        column = table.column(target.name)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = column.cast(pa.timestamp(column.type.unit, tz="UTC"))
        columns.append(column.cast(target.type))
    return pa.table(columns, schema=schema)
