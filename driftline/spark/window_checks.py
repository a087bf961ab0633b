"""Window expectations in the job: facts per closed window, verdicts, ``quality_results``.

A suite's window expectations (:mod:`driftline.quality.window_rules`) are judged once per
window, when the watermark closes it, on the window's valid rows:

- statistics of numeric features (mean, stddev, min, max, sum, non-null share) and the
  row count come from the window's ``feature_stats`` rows, which the batch finishes from
  its state anyway (no Spark work);
- uniqueness needs the values themselves. Each batch writes, for each uniqueness
  column, the 64-bit ``xxhash64`` of every non-null value of its valid rows with its
  window, in one folder per batch:
  ``<warehouse>/_state/unique/source=<s>/until=<E>/batch_id=<n>/`` where ``E`` is the
  newest end (epoch s) of the batch's windows (one plain Spark write, in the JVM; a
  replayed batch overwrites its own folder). When windows close, one Spark job reads
  the folders that can hold them (``E`` >= the earliest closing end) and counts per
  window and column its values, distinct hashes and the rows whose hash occurs more
  than once; the driver sees those three numbers. A folder is deleted once a batch
  starts after ``E`` closed: every window in it is then closed (a replay of the
  closing batch still finds them). A batch's files do not depend on how many windows
  it spans: a backlog batch over hundreds of windows writes a few files, not a
  partition folder per window. Two different values share a 64-bit hash with
  probability about ``m^2 / 2^65`` for ``m`` distinct values in a window: 1e-8 at
  600,000.

Results go to ``quality_results`` (``source=<s>/batch_id=<n>``, like ``drift_scores``):
window, expectation, type, column, success, observed value, element and unexpected
counts, bounds, and the offset ranges of the window's rows. Runs on the driver inside
``foreachBatch``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

import pyarrow as pa
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from driftline.quality.rules import Rule
from driftline.quality.window_rules import UNIQUENESS_TYPES, ColumnFacts, WindowFacts, WindowResult, evaluate
from driftline.spark import fs
from driftline.spark.feature_stats import RANGE
from driftline.spark.tables import Warehouse, as_utc

logger = logging.getLogger(__name__)

_TIME = pa.timestamp("us", tz="UTC")
HASHES = StructType([StructField("window", LongType()), StructField("column", StringType()),
                     StructField("h", LongType())])  # fmt: skip
RESULTS_SCHEMA = pa.schema([
    ("window_start", _TIME), ("window_end", _TIME), ("expectation", pa.string()),
    ("expectation_type", pa.string()), ("column", pa.string()), ("success", pa.bool_()),
    ("observed_value", pa.float64()), ("element_count", pa.int64()), ("unexpected_count", pa.int64()),
    ("min_value", pa.float64()), ("max_value", pa.float64()), ("mostly", pa.float64()),
    ("expects", pa.string()), ("offset_ranges", pa.list_(RANGE)), ("suite", pa.string()),
    ("pipeline", pa.string()),
])  # fmt: skip
# ``source`` and ``batch_id`` are the partition folders


def _epoch(moment: datetime) -> int:
    return int(as_utc(moment).timestamp())


@dataclass
class WindowChecks:
    """The window expectations of one source."""

    pipeline: str
    source: str
    suite: str | None
    rules: tuple[Rule, ...]
    warehouse: Warehouse
    window_seconds: int  # a window's end is its start plus this

    @property
    def unique_columns(self) -> list[str]:
        return sorted({r.column for r in self.rules if r.expectation_type in UNIQUENESS_TYPES and r.column})

    @property
    def _root(self) -> str:
        return fs.join(self.warehouse.state("unique"), f"source={self.source}")

    def add(self, windowed: DataFrame, batch_id: int, until: datetime | None) -> None:
        """Write this batch's value hashes (``windowed``: its valid rows with
        ``window_start``; ``until``: the newest end of its windows) for the uniqueness
        columns; nothing when there are none or the batch has no valid window."""
        columns = self.unique_columns
        if not columns or until is None:
            return
        parts = [
            windowed.where(F.col(c).isNotNull()).select(
                F.unix_seconds(F.col("window_start")).alias("window"),
                F.lit(c).alias("column"),
                F.xxhash64(F.col(c)).alias("h"),
            )
            for c in columns
        ]
        frame = parts[0]
        for part in parts[1:]:
            frame = frame.unionByName(part)
        mine = f"batch_id={batch_id}"
        for folder in self._folders(windowed.sparkSession):  # an earlier attempt's, whatever its E
            if folder.rsplit("/", 1)[-1] == mine:
                fs.delete(windowed.sparkSession, folder)
        frame.write.mode("overwrite").parquet(fs.join(self._root, f"until={_epoch(until)}", mine))

    def _untils(self, spark: SparkSession) -> list[tuple[int, str]]:
        """``(E, folder)`` of every ``until=E`` folder of value hashes."""
        names = fs.list_names(spark, self._root)
        return [(int(n[len("until=") :]), fs.join(self._root, n)) for n in names if n.startswith("until=")]

    def _folders(self, spark: SparkSession, ending_from: int | None = None) -> list[str]:
        """The batch folders of value hashes, of ``until`` >= ``ending_from`` if given."""
        out = []
        for until, folder in self._untils(spark):
            if ending_from is None or until >= ending_from:
                out += [fs.join(folder, b) for b in fs.list_names(spark, folder) if b.startswith("batch_id=")]
        return out

    def judge(
        self,
        spark: SparkSession,
        batch_id: int,
        closed: Sequence[tuple[datetime, datetime]],
        window_rows: Iterable[Mapping],
        *,
        closed_before: datetime | None,
    ) -> list[dict]:
        """Judge every window expectation on each window in ``closed`` and write them as
        this batch's ``quality_results``; ``window_rows`` are the batch's ``feature_stats``
        rows (those of the closed windows are used). Then drop the value hashes of
        windows that closed at or before ``closed_before`` (the watermark this batch
        started from). Returns the rows written."""
        rows: list[dict] = []
        if closed and self.rules:
            by_window: dict[datetime, list[Mapping]] = {}
            for row in window_rows:
                by_window.setdefault(as_utc(row["window_start"]), []).append(row)
            unique = self._unique_facts(spark, [start for start, _ in closed])
            for start, end in closed:
                stats = by_window.get(as_utc(start), [])
                facts = _facts(stats, unique.get(_epoch(start), {}))
                ranges = next((r["offset_ranges"] for r in stats if r.get("offset_ranges")), None)
                for rule in self.rules:
                    rows.append(self._row(evaluate(rule, facts), start, end, ranges))
            self.warehouse.append_batch(spark, "quality_results", self.source, batch_id, rows, RESULTS_SCHEMA)
            failed = [r["expectation"] for r in rows if not r["success"]]
            logger.info("window_expectations source=%s batch=%d windows=%d results=%d failed=%d",
                        self.source, batch_id, len(closed), len(rows), len(failed))  # fmt: skip
        if closed_before is not None and self.unique_columns:
            self._prune(spark, _epoch(closed_before))
        return rows

    def _row(self, result: WindowResult, start, end, ranges) -> dict:
        return {**result.as_row(), "window_start": as_utc(start), "window_end": as_utc(end),
                "offset_ranges": ranges, "suite": self.suite, "pipeline": self.pipeline}  # fmt: skip

    def _unique_facts(self, spark: SparkSession, starts: Sequence[datetime]) -> dict[int, dict[str, tuple]]:
        """Per closed window (epoch seconds) and column: (non-null rows, distinct, repeated)."""
        if not self.unique_columns:
            return {}
        folders = self._folders(spark, ending_from=min(_epoch(s) for s in starts) + self.window_seconds)
        if not folders:
            return {}
        hashes = spark.read.schema(HASHES).parquet(*folders)
        hashes = hashes.where(F.col("window").isin([_epoch(s) for s in starts]))
        per_value = hashes.groupBy("window", "column", "h").count()
        repeated = F.when(F.col("count") > 1, F.col("count")).otherwise(F.lit(0))
        summary = per_value.groupBy("window", "column").agg(
            F.sum("count").alias("non_null"),
            F.count(F.lit(1)).alias("distinct"),
            F.sum(repeated).alias("repeated"),
        )
        out: dict[int, dict[str, tuple]] = {}
        for r in summary.collect():
            out.setdefault(int(r["window"]), {})[r["column"]] = (int(r["non_null"]), int(r["distinct"]),
                                                                 int(r["repeated"]))  # fmt: skip
        return out

    def _prune(self, spark: SparkSession, closed_before: int) -> None:
        """Delete the value hashes of batches whose windows all closed at or before
        ``closed_before`` (epoch s): their ``until`` is at most it."""
        for until, folder in self._untils(spark):
            if until <= closed_before:
                fs.delete(spark, folder)


def _facts(stats: Sequence[Mapping], unique: Mapping[str, tuple]) -> WindowFacts:
    """The window's facts from its ``feature_stats`` rows and its uniqueness counts."""
    rows = max((int(r["rows"] or 0) for r in stats), default=0)
    columns: dict[str, ColumnFacts] = {}
    for r in stats:
        if r.get("kind") == "numeric":
            columns[r["feature"]] = ColumnFacts(
                non_null=int(r["n"] or 0), mean=r.get("mean"), stddev=r.get("stddev"), min=r.get("min"),
                max=r.get("max"),
            )  # fmt: skip
        else:  # a categorical feature: its non-null count only
            columns[r["feature"]] = ColumnFacts(non_null=int(r["rows"] or 0) - int(r["nulls"] or 0))
    for column, (non_null, distinct, repeated) in unique.items():
        known = columns.get(column, ColumnFacts())
        columns[column] = replace(known, non_null=non_null, distinct=distinct, repeated=repeated)
    return WindowFacts(rows=rows, columns=columns)


__all__ = ["RESULTS_SCHEMA", "WindowChecks"]
