"""Where the quality tables and the job's own state live, and how they are written.

Under the pipeline's warehouse directory:

``feature_stats/``     Delta: one row per (source, window, feature); partitioned by
                       ``source`` / ``window_key``, a window's rows MERGEd whenever a
                       batch touches it (:mod:`driftline.spark.feature_stats`)
``dead_letters/``      Delta: one row per dead-lettered record; ``source`` / ``batch_id``
``drift_scores/``,     Delta: per closed window; ``source`` / ``batch_id``
``alerts/``, ``quality_results/``, ``schema_events/``
``_state/progress/``   Parquet: one row of counts per batch; ``source`` / ``batch_id``
``_state/open/``       Parquet: the open windows' partials, versioned per batch
                       (:mod:`driftline.spark.window_state`)

The quality tables are Delta Lake tables: each batch's write is one commit carrying
the batch's ``txn`` (:mod:`driftline.spark.delta`), so writing batch N again writes
nothing (exactly once across replays); timestamps are UTC instants. Dead letters are
written by Spark (:func:`overwrite`) and committed by the driver; the rows the driver
builds are committed by delta-rs. The job's own state is plain Parquet, written by
pyarrow (:mod:`driftline.spark.arrow_files`); its folders are listed through Hadoop's
FileSystem (:mod:`driftline.spark.fs`), so the warehouse may be on shared storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession

from driftline.spark import delta, fs


def as_utc(moment: datetime) -> datetime:
    """A timestamp Spark handed back (naive, in local time) as an aware UTC datetime."""
    return moment.astimezone(UTC)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` (``2026-01-05T08:30:00Z``), for Spark's or aware datetimes."""
    return as_utc(moment).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Warehouse:
    """The warehouse folder as a Hadoop path or URI (``/srv/dq``, ``hdfs://nn/dq``, ``s3a://b/dq``)."""

    root: str
    run: str = ""  # the writing query's id: keys the Delta tables' per-batch commits

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", str(self.root).rstrip("/"))

    def app(self, source: str) -> str:
        """The Delta ``txn`` app id of ``source``'s batches in this run."""
        return delta.app_id(source, self.run)

    def append_batch(self, spark: SparkSession, name: str, source: str, batch_id: int, rows: list[dict],
                     schema: pa.Schema) -> bool:  # fmt: skip
        """Append ``rows`` (``schema``'s columns) to Delta table ``name`` as batch
        ``batch_id`` of ``source`` (partitions ``source`` / ``batch_id``); nothing when
        there are no rows or the batch's commit is already there (a replay)."""
        if not rows:
            return False
        table = pa.Table.from_pylist(rows, schema=schema)
        table = table.append_column("source", pa.array([source] * table.num_rows, pa.string()))
        table = table.append_column("batch_id", pa.array([batch_id] * table.num_rows, pa.int64()))
        return delta.append(spark, self.table(name), table, partition_by=("source", "batch_id"),
                            app=self.app(source), version=batch_id)  # fmt: skip

    def table(self, name: str) -> str:
        return fs.join(self.root, name)

    def state(self, name: str) -> str:
        return fs.join(self.root, "_state", name)

    def batch_path(self, base: str, source: str, batch_id: int) -> str:
        return fs.join(base, f"source={source}", f"batch_id={batch_id}")


def overwrite(frame: DataFrame, path: str, *, files: int | None = None) -> None:
    """Replace whatever is at ``path`` with ``frame`` (one batch's own partition).

    ``files`` coalesces small outputs (partials, progress) so a batch writes a few
    files, not one per shuffle partition. A column named by one of the path's
    ``key=value`` folders (``source=payments``) is left out of the files: partition
    discovery restores it on read, and a copy in the files too makes every read warn
    ``COLUMN_ALREADY_EXISTS``.
    """
    folders = [part.split("=", 1)[0] for part in str(path).split("/") if "=" in part]
    frame = frame.drop(*[c for c in frame.columns if c in folders])
    (frame.coalesce(files) if files else frame).write.mode("overwrite").parquet(str(path))


def dead_letters_schema(dead: DataFrame) -> pa.Schema:
    """The Delta schema of the ``dead_letters`` table: the columns of the files Spark
    writes for a batch, then the partition columns ``source`` and ``batch_id``."""
    from pyspark.sql.pandas.types import to_arrow_schema

    files = to_arrow_schema(dead.drop("source", "batch_id").schema, timezone="UTC")
    return files.append(pa.field("source", pa.string())).append(pa.field("batch_id", pa.int64()))


def read_table(spark: SparkSession, base: str, source: str = "*") -> DataFrame | None:
    """Rows of ``source`` (every source's for ``"*"``) in the table at ``base`` (None if
    none); the partition columns (``source``, ``batch_id`` or ``window_key``) come from
    the folders. For the run summary and ``driftline sql``, read once, never per batch.

    A Delta table is read as its newest snapshot: the data files its log lists (delta-rs
    reads the log), handed to Spark's Parquet reader, so no Delta session extension is
    needed. The job's own progress rows (plain Parquet) are read as every complete
    batch folder."""
    location = delta.uri(spark, base)
    table = delta.open_table(location)
    if table is not None:
        files = table.file_uris(file_pruning_predicate=None if source == "*" else [("source", "=", source)])
        files = [f"file://{f}" if f.startswith("/") else f for f in files]  # delta-rs gives local files bare
        return spark.read.option("basePath", location).parquet(*files) if files else None
    # complete folders only: a batch's _SUCCESS is written last
    done = fs.glob(spark, fs.join(base, f"source={source}", "batch_id=*", "_SUCCESS"))
    if not done:
        return None
    return spark.read.option("basePath", base).parquet(*sorted(path.rsplit("/", 1)[0] for path in done))
