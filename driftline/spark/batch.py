"""One micro-batch of one source, from decoded rows to tables and dead letters.

``BatchProcessor`` is the ``foreachBatch`` function of a source's streaming query. It
runs on the driver once per micro-batch (Spark calls it again with the same batch id
and the same rows if the batch is replayed after a failure); all row work in it is
Spark SQL executed by the executors. Per batch:

0. decode Spark's Kafka rows (:class:`driftline.spark.decode.FrameDecoder`), cached once:
   the topic is read once per batch;
1. split the rows: decode failures (``_reason`` set by the decoder), rule failures
   (first failed expectation), late rows, valid rows;
2. late means the row's (last) window ended at or before the watermark, where the
   watermark for batch N is ``max(event time of valid rows in batches < N) - delay``
   (read from the progress table, so a replay sees the same watermark);
3. write this batch's mergeable partials, its dead letters (table and Kafka topic,
   the latter in one transaction with a commit marker) and its progress row;
4. re-merge every window the batch touched from all partials so far and overwrite
   those windows' partitions of ``feature_stats``;
5. score the windows that closed in this batch against the reference and advance the
   alert policy (:mod:`driftline.spark.drift`).

Every count reconciles per batch: ``read == valid + dead_lettered + late`` where
``dead_lettered`` counts decode and rule failures and ``late`` the LATE_DATA rows
(which also go to the dead-letter topic).
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter
from driftline.metrics import BatchCounts, PipelineMetrics
from driftline.quality.reasons import ReasonCode
from driftline.spark import fs
from driftline.spark import window_stats as ws
from driftline.spark.census import Census, take_census
from driftline.spark.data_loss import NO_LOSS, LossCounter
from driftline.spark.decode import FrameDecoder
from driftline.spark.drift import DriftScorer, bin_partials, combine_bins
from driftline.spark.event_time import with_event_time_check
from driftline.spark.offsets import OffsetLoss
from driftline.spark.retention import BatchPruner, RetentionSweeper
from driftline.spark.tables import Warehouse, as_utc, overwrite, overwrite_partitions
from driftline.spark.totals import add_totals, progress_totals
from driftline.spark.window_state import Commit, StateVersion, WindowState, open_windows

logger = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = ["reason", "stage", "message", "rule", "_topic", "_partition", "_offset",
                       "_schema_id", "_key", "event_time", "_raw"]  # fmt: skip


PROGRESS_SCHEMA = (
    "read BIGINT, valid BIGINT, dead_lettered BIGINT, late BIGINT, "
    "by_reason MAP<STRING, BIGINT>, max_event_time TIMESTAMP, watermark TIMESTAMP, "
    "lost BIGINT, offsets_reset INT"
)


PROGRESS_KEPT = 1000  # batches whose progress row stays (totals live in the state's commit record)


def _by_topic(items) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (topic, _partition), count in items:
        totals[topic] = totals.get(topic, 0) + count
    return totals


@contextmanager
def _timed(step: str, source: str, batch_id: int):
    started = time.monotonic()
    yield
    logger.info("batch_step source=%s batch=%d step=%s seconds=%.2f", source, batch_id, step,
                time.monotonic() - started)  # fmt: skip


@dataclass(frozen=True)
class SourcePlan:
    """Everything the per-batch work of one source needs, fixed when the query starts."""

    pipeline: str
    source: str
    event_time: str
    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    rules: tuple = ()
    window_seconds: int = 300
    slide_seconds: int | None = None
    watermark_seconds: int = 600
    max_future_seconds: int = 3600  # event time further ahead of the Kafka timestamp: a dead letter
    dead_letters_retention_seconds: int = 30 * 86400  # the dead_letters table's batches live this long
    warehouse: Warehouse | None = None
    drift: DriftScorer | None = None  # None: no reference profile, no drift scoring
    suite: str | None = None  # the expectation suite's name (metrics label)

    @property
    def window(self) -> str:
        return f"{self.window_seconds} seconds"

    @property
    def slide(self) -> str | None:
        return f"{self.slide_seconds} seconds" if self.slide_seconds else None


class BatchProcessor:
    """``foreachBatch`` function for one source (driver side; see the module docstring)."""

    def __init__(
        self,
        plan: SourcePlan,
        dead_letters: TransactionalBatchWriter | None,
        metrics: PipelineMetrics | None = None,
        decoder: FrameDecoder | None = None,
        loss: LossCounter | None = None,
    ) -> None:
        self.plan = plan
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.decoder = decoder  # None: the batch is already decoded rows (tests)
        self.loss = loss  # None: failOnDataLoss stops the query instead of skipping
        self.retention: RetentionSweeper | None = None
        self.progress_pruner: BatchPruner | None = None
        if plan.warehouse is not None:  # dead letters by age, progress rows: the newest PROGRESS_KEPT
            self.retention = RetentionSweeper(
                plan.warehouse.table("dead_letters"),
                plan.source,
                timedelta(seconds=plan.dead_letters_retention_seconds),
            )
            self.progress_pruner = BatchPruner(plan.warehouse.state("progress"), plan.source, PROGRESS_KEPT)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self._cached: list[DataFrame] = []
        started = time.monotonic()
        try:
            self._process(*self._decode(batch, batch_id), batch_id)
        finally:
            for frame in self._cached:  # only this batch's: other sources' queries share the session
                frame.unpersist()
        # wall time of the whole batch (its steps may overlap, so their sum can be more)
        logger.info("batch_seconds source=%s batch=%d seconds=%.2f", self.plan.source, batch_id,
                    time.monotonic() - started)  # fmt: skip

    def _decode(self, batch: DataFrame, batch_id: int) -> tuple[DataFrame, int]:
        """Decoded, cached rows and how many were read; a schema id met for the first time
        is looked up in the registry and, when found, the batch is decoded again with it."""
        if self.decoder is None:
            rows = self._cache(self._checked_event_time(batch))
            return rows, rows.count()
        with _timed("decode", self.plan.source, batch_id):
            rows = self._cache(self._checked_event_time(self.decoder.decode(batch)))
            read, unknown = self.decoder.survey(rows)  # materialises the cache: one read of the topic
            if unknown and self.decoder.learn(unknown):
                rows.unpersist()
                rows = self._cache(self._checked_event_time(self.decoder.decode(batch)))
        return rows, read

    def _checked_event_time(self, rows: DataFrame) -> DataFrame:
        return with_event_time_check(rows, self.plan.event_time, self.plan.max_future_seconds)

    def _cache(self, frame: DataFrame) -> DataFrame:
        self._cached.append(frame.persist())
        return frame

    # -- the steps ---------------------------------------------------------------------
    def _process(self, rows: DataFrame, read: int, batch_id: int) -> None:
        plan, warehouse = self.plan, self.plan.warehouse
        spark = rows.sparkSession
        state = WindowState(spark, warehouse.root, plan.source)
        timed = lambda step: _timed(step, plan.source, batch_id)  # noqa: E731
        with timed("read_and_watermark"):
            previous = state.previous(batch_id)
            before = previous.commit or Commit(batch_id - 1)
            watermark = before.watermark  # the running watermark, kept with the state
            loss = self.loss.measure(spark, rows, batch_id) if self.loss is not None else NO_LOSS
        decode_failed = rows.where(F.col("_reason").isNotNull())
        # rules and lateness are evaluated once: the checked rows feed partials, tables and counts
        checked = self._with_rules(rows.where(F.col("_reason").isNull()))
        checked = self._cache(checked.withColumn("_late", self._is_late(watermark)))
        rule_failed = checked.where(F.col("_rule").isNotNull())
        passing = checked.where(F.col("_rule").isNull()).withColumn("source", F.lit(plan.source))
        valid = passing.where(~F.col("_late"))
        late = passing.where(F.col("_late"))

        windowed = ws.with_window(valid, plan.event_time, plan.window, plan.slide)
        if watermark is not None:  # a sliding window's earlier windows may be final already: they stay so
            windowed = windowed.where(F.col("window_end") > F.lit(watermark))
        late_windowed = ws.with_window(late, plan.event_time, plan.window, plan.slide)
        with timed("census"):
            census = take_census(decode_failed, checked, plan.event_time, late_windowed, windowed)
            record = self._progress(read, census, batch_id, watermark, loss)
        with timed("partials"):
            self._write_state(state, previous, windowed, batch_id)
        if record["dead_lettered"] + record["late"]:  # a batch without any writes no dead-letter files
            with timed("dead_letters"):
                dead = self._dead_letters(decode_failed, rule_failed, late, watermark, batch_id)
                self._write_dead(spark, dead, batch_id)
        with timed("progress"):
            self._write_progress(spark, record, batch_id)
        in_batch = record["max_event_time"] and as_utc(record["max_event_time"])
        newest = max((t for t in (before.max_event_time, in_batch) if t is not None), default=None)
        candidates = [watermark, newest and newest - timedelta(seconds=plan.watermark_seconds)]
        watermark_after = max((w for w in candidates if w is not None), default=None)
        current = state.version(batch_id)
        added = {(as_utc(start), as_utc(end)) for start, end in census.valid_windows}
        windows = open_windows(previous, watermark) | added
        with timed("merge_windows"):
            closed = self._write_windows(spark, batch_id, current, census, added, windows, watermark_after)
        policy = before.policy
        if plan.drift is not None:
            with timed("drift"):
                policy = plan.drift.score_closed(spark, batch_id, closed, current, policy)
        totals = add_totals(self._totals_before(spark, previous, batch_id), record)
        state.commit(Commit(batch_id, watermark_after, newest, policy, tuple(sorted(windows)), totals))
        logger.info("state_read source=%s batch=%d files=%d", plan.source, batch_id, previous.files_read)
        if self.retention is not None:
            self.retention(spark)
            self.progress_pruner(spark, batch_id)
        if self.metrics is not None:
            counts = self._counts(record, watermark_after, loss)
            self.metrics.batch_committed(plan.source, counts, suite=plan.suite)

    def _totals_before(self, spark, previous: StateVersion, batch_id: int) -> dict | None:
        """The running totals before this batch: the previous commit's, or, for a commit
        written before totals were kept, the progress rows' sum (read once, then kept)."""
        commit = previous.commit
        if commit is None:
            return None
        if commit.totals is not None:
            return commit.totals
        return progress_totals(spark, self.plan.warehouse, self.plan.source, below=batch_id)

    def _write_progress(self, spark, record: dict, batch_id: int) -> None:
        warehouse = self.plan.warehouse
        path = warehouse.batch_path(warehouse.state("progress"), self.plan.source, batch_id)
        overwrite(spark.createDataFrame([record], PROGRESS_SCHEMA).coalesce(1), path)

    def _write_dead(self, spark, dead: DataFrame, batch_id: int) -> None:
        """The dead-letter table's batch, then the same rows (read back) to the topic."""
        warehouse = self.plan.warehouse
        path = warehouse.batch_path(warehouse.table("dead_letters"), self.plan.source, batch_id)
        overwrite(dead, path)
        if self.dead_letters is not None:
            self.dead_letters.write(batch_id, self._outgoing(spark.read.parquet(str(path)), batch_id))

    def _write_state(self, state: WindowState, previous, windowed: DataFrame, batch_id: int) -> None:
        """Version ``batch_id`` of the open windows' partials: the previous version's
        open windows and this batch's partials, combined per key."""
        plan = self.plan
        parts = {"windows": (ws.window_partials(windowed), ws.combine_window_partials)}
        if plan.numeric:
            parts["numeric"] = (ws.numeric_partials(windowed, plan.numeric), ws.combine_numeric)
        if plan.categorical:
            parts["categorical"] = (
                ws.categorical_partials(windowed, plan.categorical),
                ws.combine_categorical,
            )
        if plan.drift is not None and plan.drift.binnings:
            parts["bins"] = (bin_partials(windowed, plan.drift.binnings), combine_bins)
        state.advance(batch_id, previous, parts)

    def _with_rules(self, decoded: DataFrame) -> DataFrame:
        if not self.plan.rules:
            none = F.lit(None).cast("string")
            return decoded.withColumn("_rule", none).withColumn("_rule_detail", none)
        from driftline.spark.rules import failure_detail, first_failed_rule

        rules = list(self.plan.rules)
        return decoded.withColumn("_rule", first_failed_rule(rules)).withColumn(
            "_rule_detail", failure_detail(rules)
        )

    def _last_window_end(self) -> Column:
        """End of the latest window containing the event time (tumbling or sliding)."""
        slide = self.plan.slide_seconds or self.plan.window_seconds
        seconds = F.unix_micros(F.col(self.plan.event_time)) / 1_000_000
        return F.timestamp_seconds(F.floor(seconds / slide) * slide + self.plan.window_seconds)

    def _is_late(self, watermark: datetime | None) -> Column:
        if watermark is None:
            return F.lit(False)
        return self._last_window_end() <= F.lit(watermark)

    def _dead_letters(self, decode_failed, rule_failed, late, watermark, batch_id) -> DataFrame:
        plan = self.plan
        none_string, event_time = F.lit(None).cast("string"), F.col(plan.event_time)
        decode = decode_failed.select(
            F.col("_reason").alias("reason"), F.lit("decode").alias("stage"),
            F.col("_detail").alias("message"), none_string.alias("rule"),
            "_topic", "_partition", "_offset", "_schema_id", "_key",
            F.lit(None).cast("timestamp").alias("event_time"), "_raw",
        )  # fmt: skip
        rule = rule_failed.select(
            F.lit(ReasonCode.RULE_FAILED.value).alias("reason"), F.lit("rule").alias("stage"),
            F.col("_rule_detail").alias("message"), F.col("_rule").alias("rule"),
            "_topic", "_partition", "_offset", "_schema_id", "_key", event_time.alias("event_time"), "_raw",
        )  # fmt: skip
        late_message = F.concat(
            F.lit("event time "), F.date_format(event_time, "yyyy-MM-dd'T'HH:mm:ss.SSSX"),
            F.lit(" is behind the watermark "), F.lit(watermark.isoformat() if watermark else ""),
            F.lit("; its window ended "), F.date_format(self._last_window_end(), "yyyy-MM-dd'T'HH:mm:ssX"),
        )  # fmt: skip
        lateness = late.select(
            F.lit(ReasonCode.LATE_DATA.value).alias("reason"), F.lit("late").alias("stage"),
            late_message.alias("message"), none_string.alias("rule"),
            "_topic", "_partition", "_offset", "_schema_id", "_key", event_time.alias("event_time"), "_raw",
        )  # fmt: skip
        # batch_id is the table's partition folder (batch_id=N), not a column of the rows
        return decode.unionByName(rule).unionByName(lateness).withColumn("pipeline", F.lit(plan.pipeline))

    def _outgoing(self, dead: DataFrame, batch_id: int):
        plan = self.plan
        for row in dead.orderBy("_topic", "_partition", "_offset").toLocalIterator():
            letter = DeadLetter(
                raw=bytes(row["_raw"] or b""),
                reason=ReasonCode(row["reason"]),
                message=row["message"] or "",
                pipeline=plan.pipeline,
                source=plan.source,
                topic=row["_topic"],
                partition=row["_partition"],
                offset=row["_offset"],
                schema_id=row["_schema_id"],
                batch_id=batch_id,
            )
            yield OutgoingRecord(
                value=letter.raw,
                key=None if row["_key"] is None else bytes(row["_key"]),
                headers=letter.headers(),
            )

    def _counts(self, record: dict, watermark: datetime | None, loss: OffsetLoss = NO_LOSS) -> BatchCounts:
        """The committed batch's counts for the metrics (decode failures are never rule-checked)."""
        rule_failed = record["by_reason"].get(ReasonCode.RULE_FAILED.value, 0)
        decode_failed = record["dead_lettered"] - rule_failed
        return BatchCounts(
            read=record["read"], valid=record["valid"], dead_lettered=record["dead_lettered"],
            late=record["late"], by_reason=record["by_reason"], rule_failures=self._rule_failures,
            rows_checked=record["read"] - decode_failed if self.plan.rules else 0,
            max_event_time=record["max_event_time"] and as_utc(record["max_event_time"]),
            watermark=watermark, lost=_by_topic(loss.lost.items()),
            offsets_reset=_by_topic((tp, 1) for tp in loss.reset),
        )  # fmt: skip

    def _progress(self, read: int, census: Census, batch_id, watermark, loss: OffsetLoss = NO_LOSS) -> dict:
        """This batch's counts (checked to reconcile) and newest valid event time."""
        by_reason = census.dead_by_reason
        self._rule_failures = dict(census.rule_failures)
        record = {
            "read": read,
            "valid": census.valid,
            "dead_lettered": sum(by_reason.values()),
            "late": census.late,
            "by_reason": by_reason,
            "max_event_time": census.max_event_time,
            "watermark": watermark,
            "lost": loss.total_lost,
            "offsets_reset": len(loss.reset),
        }
        accounted = record["valid"] + record["dead_lettered"] + record["late"]
        if record["read"] != accounted:  # a programming error, never bad data
            if self.metrics is not None:  # the gap shows as driftline_records_unreconciled before it fails
                self.metrics.batch_unreconciled(self.plan.source, self._counts(record, watermark))
            raise AssertionError(f"batch {batch_id} does not reconcile: {record}")
        logger.info(
            "batch_done source=%s batch=%d read=%d valid=%d dead_lettered=%d late=%d",
            self.plan.source, batch_id, read, record["valid"], record["dead_lettered"],
            record["late"],
        )  # fmt: skip
        return record

    def _write_windows(
        self, spark, batch_id: int, current: StateVersion, census: Census, added, windows, watermark_after
    ) -> list[tuple[datetime, datetime]]:
        """Rewrite the ``feature_stats`` rows this batch changed: windows it added rows to
        (``added``), windows of the state version (``windows``) the watermark passed during
        it (final now, even if no row of theirs came), and the long-closed windows its late
        rows belong to (their ``late_rows``).

        Returns the windows that closed in this batch, ``(start, end)`` in order."""
        warehouse = self.plan.warehouse
        closed = sorted(w for w in windows if watermark_after is not None and w[1] <= watermark_after)
        touched = sorted({start for start, _ in added} | {start for start, _ in closed})
        tables = [self._window_rows(spark, batch_id, current, touched, watermark_after)] if touched else []
        late_rows = self._late_rows(spark, batch_id, census.late_windows)
        if late_rows is not None:
            tables.append(late_rows)
        if tables:
            table = tables[0]
            for more in tables[1:]:
                table = table.unionByName(more, allowMissingColumns=True)
            overwrite_partitions(table, warehouse.table("feature_stats"), ["source", "window_key"])
        return closed

    def _window_rows(
        self, spark, batch_id: int, current: StateVersion, touched, watermark_after
    ) -> DataFrame:
        """``feature_stats`` rows of the ``touched`` windows, finished from the state."""
        plan = self.plan
        in_touched = F.col("window_start").isin(touched)
        stats = []
        if plan.numeric and (numeric := current.frame("numeric")) is not None:
            stats.append(ws.finish_numeric(numeric.where(in_touched)).withColumn("kind", F.lit("numeric")))
        if plan.categorical and (categorical := current.frame("categorical")) is not None:
            stats.append(
                ws.merge_categorical(categorical.where(in_touched)).withColumn("kind", F.lit("categorical"))
            )
        features = stats[0]
        for more in stats[1:]:
            features = features.unionByName(more, allowMissingColumns=True)
        ranges = ws.offset_ranges(current.frame("windows").where(in_touched))
        is_final = (F.col("window_end") <= F.lit(watermark_after)) if watermark_after else F.lit(False)
        return (
            self._table_columns(features.join(ranges, ws.WINDOW_KEY, "left"), batch_id)
            .withColumn("late_rows", F.lit(0).cast("bigint"))
            .withColumn("is_final", is_final)
        )

    def _table_columns(self, frame: DataFrame, batch_id: int) -> DataFrame:
        return (
            frame.withColumn("pipeline", F.lit(self.plan.pipeline))
            .withColumn("batch_id", F.lit(batch_id).cast("bigint"))
            .withColumn("window_key", F.date_format("window_start", WINDOW_KEY_SQL))
        )

    def _late_rows(self, spark, batch_id: int, counts: list[tuple]) -> DataFrame | None:
        """The closed windows this batch's late rows belong to, their ``late_rows`` raised.

        Only those windows' partitions of ``feature_stats`` are read. A row already written
        by this batch (``batch_id``) is a replay's and keeps its count; a window no valid
        row ever reached gets zero-count rows, so its lateness shows. Materialised
        (``localCheckpoint``) before the table is overwritten with it."""
        plan, warehouse = self.plan, self.plan.warehouse
        if not counts:
            return None
        root = warehouse.table("feature_stats")
        late_rows = [(plan.source, start, end, n, window_key(start)) for start, end, n in counts]
        partition = lambda key: fs.join(root, f"source={plan.source}", f"window_key={key}")  # noqa: E731
        written = {key for *_, key in late_rows if fs.exists(spark, partition(key))}
        late = spark.createDataFrame(
            late_rows,
            "source STRING, window_start TIMESTAMP, window_end TIMESTAMP, _late BIGINT, window_key STRING",
        )
        tables = []
        if written:
            existing = spark.read.option("basePath", root).parquet(
                *[partition(key) for key in sorted(written)]
            )
            mine = F.col("batch_id") == batch_id
            tables.append(
                existing.join(late.select("window_key", "_late"), "window_key")
                .withColumn(
                    "late_rows",
                    F.when(mine, F.col("late_rows")).otherwise(F.col("late_rows") + F.col("_late")),
                )
                .withColumn("batch_id", F.lit(batch_id).cast("bigint"))
                .drop("_late")
            )
        unseen = late.where(~F.col("window_key").isin(sorted(written)))
        kinds = [(f, "numeric") for f in plan.numeric] + [(f, "categorical") for f in plan.categorical]
        names = spark.createDataFrame(kinds, "feature STRING, kind STRING")
        zero = F.lit(0).cast("bigint")
        tables.append(self._table_columns(unseen.drop("window_key").crossJoin(names), batch_id).select(
            *ws.WINDOW_KEY, "feature", "kind", zero.alias("rows"), zero.alias("nulls"), zero.alias("n"),
            F.when(F.col("kind") == "categorical", zero).alias("distinct_count"),
            F.col("_late").alias("late_rows"), F.lit(True).alias("is_final"),
            "pipeline", "batch_id", "window_key",
        ))  # fmt: skip
        out = tables[0] if len(tables) == 1 else tables[0].unionByName(tables[1], allowMissingColumns=True)
        return out.localCheckpoint(eager=True)


def window_key(start: datetime) -> str:
    """The ``feature_stats`` partition of the window starting at ``start`` (a Spark
    timestamp, naive local or aware): its UTC start as ``yyyyMMdd'T'HHmmss``, the same
    text as :data:`WINDOW_KEY_SQL` gives in the UTC session."""
    return as_utc(start).strftime("%Y%m%dT%H%M%S")


WINDOW_KEY_SQL = "yyyyMMdd'T'HHmmss"  # Spark's date_format pattern for window_key
