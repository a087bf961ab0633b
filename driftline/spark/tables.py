"""Where the quality tables and the job's own state live, and how they are written.

Under the pipeline's warehouse directory:

``feature_stats/``     one row per (source, window, feature); partitioned by
                       ``source`` / ``window_key``, a window's partition is replaced
                       whenever a batch touches it (:mod:`driftline.spark.feature_stats`)
``dead_letters/``      one row per dead-lettered record; ``source`` / ``batch_id``
``drift_scores/``,     per closed window; ``source`` / ``batch_id``
``alerts/``
``_state/progress/``   one row of counts per batch; ``source`` / ``batch_id``
``_state/open/``       the open windows' partials, versioned per batch
                       (:mod:`driftline.spark.window_state`)

Every write replaces exactly the partition(s) its batch owns, so writing batch N again
gives the same files (exactly once across replays). Parquet throughout, timestamps as
UTC instants: DuckDB, pandas or Spark read any of them directly. Dead letters are
written by Spark (:func:`overwrite`); the small tables whose rows the driver builds by
pyarrow (:mod:`driftline.spark.arrow_files`). Folders are listed through Hadoop's
FileSystem (:mod:`driftline.spark.fs`), so the warehouse may be on shared storage.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pyspark.sql import DataFrame, SparkSession

from driftline.spark import fs


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

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", str(self.root).rstrip("/"))

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


def read_batches(spark: SparkSession, base: str, source: str = "*") -> DataFrame | None:
    """Rows of ``source`` (every source's for ``"*"``) written by every complete batch
    under ``base`` (None if none); ``source`` and ``batch_id`` come from the folders. For
    the run summary and ``driftline sql``, read once, never per batch."""
    # complete folders only: a batch's _SUCCESS is written last
    done = fs.glob(spark, fs.join(base, f"source={source}", "batch_id=*", "_SUCCESS"))
    if not done:
        return None
    return spark.read.option("basePath", base).parquet(*sorted(path.rsplit("/", 1)[0] for path in done))
