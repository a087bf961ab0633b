"""One micro-batch of one source, from decoded rows to tables and dead letters.

``BatchProcessor`` is the ``foreachBatch`` function of a source's streaming query. It
runs on the driver once per micro-batch (Spark calls it again with the same batch id
and the same rows if the batch is replayed after a failure); all row work in it is
Spark SQL executed by the executors. Per batch:

0. decode Spark's Kafka rows (:class:`driftline.spark.decode.FrameDecoder`), cached once:
   the topic is read once per batch;
1. split the rows: decode failures (``_reason`` set by the decoder), rule failures
   (first failed expectation), late rows, valid rows;
2. late means the row's (last) window ended at or before the watermark, a running
   value kept in the window state's commit record
   (``max(watermark before, newest valid event time - delay)``), so a replay sees the
   same watermark;
3. one Spark action collects the batch's census (counts per class, rule and window)
   and its mergeable partials (:func:`driftline.spark.window_state.collect`);
4. the driver combines the partials with the previous state version and writes the
   next one, then the dead letters (table and Kafka topic, the latter in one
   transaction with a commit marker) and the progress row;
5. the windows the batch touched or closed are finished from the new version into
   their ``feature_stats`` partitions, and the closed ones are scored against the
   reference and advance the alert policy (:mod:`driftline.spark.drift`).

The steps are methods a shared query can call one at a time
(:mod:`driftline.spark.shared_query`): :meth:`BatchProcessor.begin` (the previous
state version and the watermark), :meth:`~BatchProcessor.split` and
:meth:`~BatchProcessor.frames` (the Spark frames of step 1 to 3, no action), and
:meth:`~BatchProcessor.finish` (steps 4 and 5 from what was collected); a shared query
builds the frames of all its sources at once (:mod:`driftline.spark.fused`) and hands
each source its share of the one collect.

Every count reconciles per batch: ``read == valid + dead_lettered + late`` where
``dead_lettered`` counts decode and rule failures and ``late`` the LATE_DATA rows
(which also go to the dead-letter topic).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
import pyarrow as pa
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from driftline import faults
from driftline.kafka.dead_letter import DeadLetter, fit_key, max_message_bytes
from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter
from driftline.metrics import BatchCounts, PipelineMetrics
from driftline.quality.reasons import ReasonCode
from driftline.spark import arrow_files, delta, feature_stats
from driftline.spark import retention as table_retention
from driftline.spark import window_stats as ws
from driftline.spark.census import Census, census_frame, read_census
from driftline.spark.data_loss import NO_LOSS, LossCounter
from driftline.spark.decode import FrameDecoder, Survey
from driftline.spark.drift import DriftScorer, bin_partials
from driftline.spark.event_time import with_event_time_check
from driftline.spark.finite import with_finite_check
from driftline.spark.offsets import OffsetLoss
from driftline.spark.retention import BatchPruner, TableRetention
from driftline.spark.schema_events import SchemaWatch
from driftline.spark.split import Split, dead_partials, last_window_end, split_rows
from driftline.spark.tables import Warehouse, as_utc, dead_letters_schema, overwrite
from driftline.spark.totals import add_totals, progress_totals
from driftline.spark.window_checks import WindowChecks
from driftline.spark.window_state import Commit, StateVersion, WindowState, collect, open_windows, to_pandas
from driftline.stats import partials as pt

logger = logging.getLogger(__name__)

DEAD_LETTER_COLUMNS = ["reason", "stage", "message", "rule", "_topic", "_partition", "_offset",
                       "_schema_id", "_key", "event_time", "_raw"]  # fmt: skip


PROGRESS_SCHEMA = pa.schema([
    ("read", pa.int64()), ("valid", pa.int64()), ("dead_lettered", pa.int64()), ("late", pa.int64()),
    ("by_reason", pa.map_(pa.string(), pa.int64())), ("max_event_time", pa.timestamp("us", tz="UTC")),
    ("watermark", pa.timestamp("us", tz="UTC")), ("lost", pa.int64()), ("offsets_reset", pa.int32()),
])  # fmt: skip


# A batch of at most this many rows is aggregated in one task per aggregation: the cached
# rows are read as one partition, which Spark's planner takes as already clustered for every
# grouping, so no aggregation shuffles (a shuffle's tasks cost more than such a batch's rows).
SINGLE_TASK_ROWS = 50_000

PROGRESS_KEPT = 1000  # batches whose progress row stays (totals live in the state's commit record)

# Batch bodies of the driver's queries (one query per source) that run at once. Each one
# in flight holds its cached rows and its plans (analysed, optimised, physical) on the
# driver's heap, and the driver's Python runs one at a time anyway: unbounded, 50
# sources x 20 features outgrew a 2 GB driver heap (measured, docs/scaling.md). Two keep
# one batch's Spark jobs running while another's driver-side merge runs. The others wait
# at the gate, inside their query's trigger, and are logged as the ``wait`` step.
CONCURRENT_BATCHES = 2
_GATE = threading.BoundedSemaphore(CONCURRENT_BATCHES)


def _in_windows(dead: pd.DataFrame, *windows: pd.DataFrame | None) -> pd.DataFrame:
    """The dead-letter partials of windows that have valid rows (in the previous state or
    this batch). A decode failure's window comes from its Kafka timestamp, which can be
    far from any event time (a backfill produced today): such windows would never close,
    and their counts would pile up in the state for as long as the job runs."""
    known = [w[["window_start", "window_end"]] for w in windows if w is not None and not w.empty]
    if dead.empty or not known:
        return dead.iloc[0:0]
    keys = pd.concat(known).drop_duplicates()
    return dead.merge(keys, on=["window_start", "window_end"], how="inner")


def _by_topic(items) -> dict[str, int]:
    totals: dict[str, int] = {}
    for (topic, _partition), count in items:
        totals[topic] = totals.get(topic, 0) + count
    return totals


@contextmanager
def timed_step(step: str, source: str, batch_id: int):
    """Log ``batch_step source=<source or query> batch=<id> step=<step> seconds=<s>`` after the block."""
    started = time.monotonic()
    yield
    logger.info("batch_step source=%s batch=%d step=%s seconds=%.2f", source, batch_id, step,
                time.monotonic() - started)  # fmt: skip


@contextmanager
def gated(name: str, batch_id: int):
    """Run the block as one of the :data:`CONCURRENT_BATCHES` batch bodies; the time spent
    waiting for a place is logged as the ``wait`` step of ``name`` (a source or a query)."""
    with timed_step("wait", name, batch_id):
        _GATE.acquire()
    try:
        yield
    finally:
        _GATE.release()


@dataclass(frozen=True)
class Start:
    """What a batch's first step read on the driver (:meth:`BatchProcessor.begin`)."""

    state: WindowState
    previous: StateVersion
    before: Commit  # the previous version's commit record (an empty one for the first batch)
    loss: OffsetLoss

    @property
    def watermark(self) -> datetime | None:
        """The running watermark before the batch, kept with the state."""
        return self.before.watermark


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
    retention_seconds: int = 90 * 86400  # the other quality tables' batches and windows live this long
    warehouse: Warehouse | None = None
    drift: DriftScorer | None = None  # None: no reference profile, no drift scoring
    suite: str | None = None  # the expectation suite's name (metrics label)
    checks: WindowChecks | None = None  # the suite's window expectations, if it has any
    schema_watch: SchemaWatch | None = None  # schema drift: None checks none

    def retention_of(self, table: str) -> int:
        """Seconds ``table`` keeps this source's partitions (``[tables]`` settings)."""
        return self.dead_letters_retention_seconds if table == "dead_letters" else self.retention_seconds

    @property
    def partial_kinds(self) -> frozenset[str]:
        """The kinds of partial this source's batches collect besides ``windows``:
        ``numeric``, ``categorical``, ``bins`` (a reference grid) and ``nulls`` (schema
        drift), each only when the source has something of it."""
        has = {
            "numeric": bool(self.numeric),
            "categorical": bool(self.categorical),
            "bins": self.drift is not None and bool(self.drift.binnings),
            "nulls": self.schema_watch is not None and bool(self.schema_watch.nullable_fields),
        }
        return frozenset(kind for kind, present in has.items() if present)

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
        self.retention: tuple[TableRetention, ...] = ()
        self.progress_pruner: BatchPruner | None = None
        if plan.warehouse is not None:  # the tables by age, progress rows: the newest PROGRESS_KEPT
            self.retention = tuple(
                table_retention.for_table(plan.warehouse.table(name), column).keep(
                    plan.source, timedelta(seconds=plan.retention_of(name))
                )
                for name, column in table_retention.PARTITIONED_BY.items()
            )
            self.progress_pruner = BatchPruner(plan.warehouse.state("progress"), plan.source, PROGRESS_KEPT)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        with gated(self.plan.source, batch_id):
            self._run(batch, batch_id)

    def _run(self, batch: DataFrame, batch_id: int) -> None:
        self._timed_body(batch_id, lambda: self._process(*self._decode(batch, batch_id), batch_id))

    def process_decoded(self, rows: DataFrame, read: int, survey: Survey | None, batch_id: int) -> None:
        """This source's part of a batch of a query it shares with other sources
        (:class:`driftline.spark.shared_query.SharedQueryProcessor`): ``rows`` are the
        batch's rows of this source's topic, decoded (and cached) once for the whole
        query, ``read`` how many and ``survey`` the decoder's survey of them. Runs on the
        driver, in the query's ``foreachBatch``, after the shared decode."""
        self._timed_body(batch_id, lambda: self._process(self._checked(rows), read, survey, batch_id))

    def finish_timed(self, start: Start, split: Split, collected: dict[str, pa.Table], read: int,
                     survey: Survey | None, batch_id: int) -> None:  # fmt: skip
        """:meth:`finish` as this source's timed body in a shared query's batch whose census
        was fused (:mod:`driftline.spark.fused`); runs on the driver."""
        self._timed_body(batch_id, lambda: self.finish(start, split, collected, read, survey, batch_id))

    def _timed_body(self, batch_id: int, body) -> None:
        self._cached: list[DataFrame] = []
        started = time.monotonic()
        try:
            body()
        finally:
            for frame in self._cached:  # only this batch's: other sources' queries share the session
                frame.unpersist()
        # wall time of the whole batch (its steps may overlap, so their sum can be more)
        logger.info("batch_seconds source=%s batch=%d seconds=%.2f", self.plan.source, batch_id,
                    time.monotonic() - started)  # fmt: skip

    def _decode(self, batch: DataFrame, batch_id: int) -> tuple[DataFrame, int, Survey | None]:
        """Decoded, cached rows, how many were read and the decoder's survey of them
        (None for rows that came decoded); a schema id met for the first time is looked
        up in the registry and, when found, the batch is decoded again with it."""
        if self.decoder is None:
            rows = self._cache(self._checked(batch))
            return rows, rows.count(), None
        with timed_step("decode", self.plan.source, batch_id):
            rows, survey = self.decoder.decode_cached(batch, lambda frame: self._cache(self._checked(frame)))
        return rows, survey.read, survey

    def _checked(self, rows: DataFrame) -> DataFrame:
        """The decode stage's value checks: event time in range, numeric features finite."""
        rows = with_event_time_check(rows, self.plan.event_time, self.plan.max_future_seconds)
        return with_finite_check(rows, self.plan.numeric)

    def _cache(self, frame: DataFrame) -> DataFrame:
        self._cached.append(frame.persist())
        return frame

    # -- the steps ---------------------------------------------------------------------
    def _process(self, rows: DataFrame, read: int, survey: Survey | None, batch_id: int) -> None:
        spark = rows.sparkSession
        if read <= SINGLE_TASK_ROWS:  # one partition: every aggregation below runs without a shuffle
            rows = rows.coalesce(1)
        start = self.begin(spark, rows, batch_id)
        split = self.split(rows, start.watermark)
        with timed_step("census", self.plan.source, batch_id):  # one Spark action: counts and partials
            collected = collect(self.frames(split))
        self.finish(start, split, collected, read, survey, batch_id)

    def begin(self, spark, rows: DataFrame, batch_id: int) -> Start:
        """The batch's first step on the driver: the previous state version, the running
        watermark before the batch, and (when counted) the offsets the batch skipped."""
        state = WindowState(spark, self.plan.warehouse.root, self.plan.source)
        with timed_step("read_and_watermark", self.plan.source, batch_id):
            previous = state.previous(batch_id)
            before = previous.commit or Commit(batch_id - 1)
            loss = self.loss.measure(spark, rows, batch_id) if self.loss is not None else NO_LOSS
        return Start(state, previous, before, loss)

    def split(self, rows: DataFrame, watermark: datetime | None) -> Split:
        """This source's rows split into decode failures, rule-checked rows (cached), rule
        failures, late rows and the valid rows' windows (see :class:`Split`)."""
        plan = self.plan
        rows = rows.withColumn("source", F.lit(plan.source))
        cut = None if watermark is None else F.lit(watermark)
        return split_rows(rows, self._with_rules, cut, plan.event_time, plan.window_seconds,
                          plan.slide_seconds, self._cache)  # fmt: skip

    def frames(self, split: Split) -> dict[str, DataFrame]:
        """The frames of this source's census and partials, collected in one Spark action."""
        plan = self.plan
        frames = self._partials(split.windowed)
        frames["dead"] = dead_partials(split, plan.event_time, plan.window_seconds, plan.slide_seconds)
        frames["census"] = census_frame(split.decode_failed, split.checked, plan.event_time,
                                        split.late_windowed, split.windowed)  # fmt: skip
        return frames

    def finish(self, start: Start, split: Split, collected: dict[str, pa.Table], read: int,
               survey: Survey | None, batch_id: int) -> None:  # fmt: skip
        """The rest of the batch, on the driver, from its census and partials (``collected``,
        this source's rows only): reconcile the counts, write the next state version, the
        dead letters, the progress row and the touched windows' ``feature_stats`` rows,
        judge the window expectations, score the closed windows, commit."""
        plan = self.plan
        spark = split.checked.sparkSession
        state, previous, before, loss = start.state, start.previous, start.before, start.loss
        watermark = start.watermark
        decode_failed, rule_failed, late, windowed = (split.decode_failed, split.rule_failed, split.late,
                                                      split.windowed)  # fmt: skip
        timed = lambda step: timed_step(step, plan.source, batch_id)  # noqa: E731
        collected = dict(collected)
        census = read_census(collected.pop("census").to_pylist())
        record = self._progress(read, census, batch_id, watermark, loss)
        with timed("partials"):
            parts = {kind: to_pandas(table, kind) for kind, table in collected.items()}
            parts["dead"] = _in_windows(parts["dead"], previous.frame("windows"), parts.get("windows"))
            current = state.advance(batch_id, previous, parts)
        added = {(as_utc(start), as_utc(end)) for start, end in census.valid_windows}
        if plan.checks is not None and added:
            with timed("value_hashes"):  # uniqueness expectations: the window's values, hashed
                plan.checks.add(windowed, batch_id, max(end for _, end in added))
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
        windows = open_windows(previous, watermark) | added
        with timed("merge_windows"):
            closed, window_rows = self._write_windows(
                spark, batch_id, current, census, added, windows, watermark_after
            )
        schema = (before.schema_ids, before.fields_with_values)
        if plan.schema_watch is not None:
            with timed("schema_events"):
                schema = self._schema_events(spark, batch_id, before, survey, closed, current)
        if plan.checks is not None:
            with timed("window_expectations"):
                judged = plan.checks.judge(spark, batch_id, closed, window_rows, closed_before=watermark)
            if self.metrics is not None and judged:
                self.metrics.window_expectations(plan.source, judged)
        policy = before.policy
        if plan.drift is not None:
            with timed("drift"):
                still_open = sorted(windows - set(closed))
                policy = plan.drift.score_closed(spark, batch_id, closed, current, policy, still_open, newest)
        totals = add_totals(self._totals_before(spark, previous, batch_id), record)
        faults.point("before_commit", batch_id)
        windows = tuple(sorted(windows))
        state.commit(Commit(batch_id, watermark_after, newest, policy, windows, totals, *schema))
        logger.info("state_read source=%s batch=%d files=%d", plan.source, batch_id, previous.files_read)
        for table in self.retention:
            table(spark)
        if self.progress_pruner is not None:
            self.progress_pruner(spark, batch_id)
        if self.metrics is not None:
            counts = self._counts(record, watermark_after, loss)
            self.metrics.batch_committed(plan.source, counts, suite=plan.suite)

    def _schema_events(self, spark, batch_id: int, before: Commit, survey, closed, current) -> tuple:
        """Write this batch's schema events (new writer schema ids, and the all-null fields
        and unseen categories of the windows it closed); return what the commit record
        keeps for the next batch: the schema ids met and the fields seen with values."""
        watch = self.plan.schema_watch
        ranges = survey.ranges if survey is not None else ()
        registered = self.decoder.known_ids if self.decoder is not None else ()
        events, ids = watch.batch_events(before.schema_ids, ranges, registered)
        in_windows, fields = watch.window_events(closed, current, before.fields_with_values or ())
        rows = watch.write(spark, batch_id, events + in_windows)
        if self.metrics is not None and rows:
            self.metrics.schema_events(self.plan.source, rows)
        return ids, fields

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
        row = {**record, "by_reason": list(record["by_reason"].items())}
        arrow_files.replace_folder(spark, path, pa.Table.from_pylist([row], schema=PROGRESS_SCHEMA))

    def _write_dead(self, spark, dead: DataFrame, batch_id: int) -> None:
        """The dead-letter table's batch, then the same rows (read back) to the topic.

        Spark writes the batch's partition folder (no Python per record); the files are
        then committed to the Delta table with the batch's ``txn``. A replay whose
        commit is already there writes nothing; one that is not overwrites the folder,
        so a crashed attempt's files never reach the log."""
        warehouse = self.plan.warehouse
        table = warehouse.table("dead_letters")
        path = warehouse.batch_path(table, self.plan.source, batch_id)

        def write() -> None:
            overwrite(dead, path)
            faults.point("dead_letter_files", batch_id)

        partition = {"source": self.plan.source, "batch_id": str(batch_id)}
        delta.add_files(spark, table, path, dead_letters_schema(dead), partition,
                        app=warehouse.app(self.plan.source), version=batch_id, write=write)  # fmt: skip
        faults.point("table_written", batch_id)
        if self.dead_letters is not None:
            # a callable: a transaction the broker aborted in an outage is read and written again
            self.dead_letters.write(batch_id, lambda: self._outgoing(spark.read.parquet(str(path)), batch_id))

    def _partials(self, windowed: DataFrame) -> dict[str, DataFrame]:
        """This batch's partials of every kind (:mod:`driftline.stats.partials`) as Spark
        frames (collected with the census in one action)."""
        plan, kinds = self.plan, self.plan.partial_kinds
        frames = {"windows": ws.window_partials(windowed)}
        if "numeric" in kinds:
            frames["numeric"] = ws.numeric_partials(windowed, plan.numeric)
        if "categorical" in kinds:
            frames["categorical"] = ws.categorical_partials(windowed, plan.categorical)
        if "bins" in kinds:
            frames["bins"] = bin_partials(windowed, plan.drift.grid(windowed.sparkSession))
        if "nulls" in kinds:
            frames["nulls"] = ws.null_partials(windowed, plan.schema_watch.nullable_fields)
        return frames

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
        return last_window_end(self.plan.event_time, self.plan.window_seconds, self.plan.slide_seconds)

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
        """The batch's dead letters as Kafka records, in (topic, partition, offset) order
        (a replay resumes after the records a partial marker covers), each cut to fit one
        message (the table keeps the whole original)."""
        plan = self.plan
        limit = max_message_bytes(self.dead_letters.settings)
        for row in dead.orderBy("_topic", "_partition", "_offset").toLocalIterator():
            key = fit_key(None if row["_key"] is None else bytes(row["_key"]), limit)
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
            ).fitted(limit, key)
            yield OutgoingRecord(value=letter.raw, key=key, headers=letter.headers(),
                                 position=(row["_topic"], row["_partition"], row["_offset"]))  # fmt: skip

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
    ) -> tuple[list[tuple[datetime, datetime]], list[dict]]:
        """Rewrite the ``feature_stats`` rows this batch changed: windows it added rows to
        (``added``), windows of the state version (``windows``) the watermark passed during
        it (final now, even if no row of theirs came), and the long-closed windows its late
        rows belong to (their ``late_rows``).

        Returns the windows that closed in this batch, ``(start, end)`` in order, and the
        rows written."""
        closed = sorted(w for w in windows if watermark_after is not None and w[1] <= watermark_after)
        touched = sorted({start for start, _ in added} | {start for start, _ in closed})
        rows = self._window_rows(batch_id, current, touched, watermark_after) if touched else []
        rows += self._late_rows(spark, batch_id, census.late_windows)
        feature_stats.merge_windows(spark, self.plan.warehouse, self.plan.source, batch_id, rows)
        return closed, rows

    def _window_rows(self, batch_id: int, current: StateVersion, touched, watermark_after) -> list[dict]:
        """``feature_stats`` rows of the ``touched`` windows, finished from the state."""
        plan = self.plan
        starts = [pd.Timestamp(start) for start in touched]
        rows: list[dict] = []
        if plan.numeric and (numeric := current.frame("numeric")) is not None:
            rows += pt.finish_numeric(numeric[numeric["window_start"].isin(starts)])
        if plan.categorical and (categorical := current.frame("categorical")) is not None:
            rows += pt.finish_categorical(categorical[categorical["window_start"].isin(starts)])
        known = current.frame("windows")
        ranges = pt.offset_ranges(known[known["window_start"].isin(starts)]) if known is not None else {}
        for row in rows:
            row["offset_ranges"] = ranges.get((row["source"], row["window_start"], row["window_end"]))
            row["late_rows"] = 0
            row["is_final"] = watermark_after is not None and row["window_end"] <= watermark_after
            row["pipeline"], row["batch_id"] = plan.pipeline, batch_id
        return rows

    def _late_rows(self, spark, batch_id: int, counts: list[tuple]) -> list[dict]:
        """The rows of the closed windows this batch's late rows belong to, their
        ``late_rows`` raised.

        Only those windows' partitions of ``feature_stats`` are read. A row already written
        by this batch (``batch_id``) is a replay's and keeps its count; a window no valid
        row ever reached gets zero-count rows, so its lateness shows."""
        plan = self.plan
        kinds = [(f, "numeric") for f in plan.numeric] + [(f, "categorical") for f in plan.categorical]
        out: list[dict] = []
        for start, end, late in counts:
            existing = feature_stats.read_window(spark, plan.warehouse, plan.source, start)
            if existing:
                for row in existing:
                    if row["batch_id"] != batch_id:
                        row["late_rows"] = (row["late_rows"] or 0) + late
                    row["batch_id"] = batch_id
                out += existing
                continue
            for feature, kind in kinds:
                out.append({
                    "window_start": as_utc(start), "window_end": as_utc(end), "feature": feature,
                    "kind": kind, "rows": 0, "nulls": 0, "n": 0,
                    "distinct_count": 0 if kind == "categorical" else None,
                    "late_rows": late, "is_final": True, "pipeline": plan.pipeline, "batch_id": batch_id,
                })  # fmt: skip
        return out
