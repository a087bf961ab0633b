"""One streaming query for several sources that share a reader schema.

``[sources.<name>] query = "<query>"`` puts sources into one streaming query: one
Kafka source over all their topics, one checkpoint, one batch-id sequence, one
micro-batch loop in the driver. :class:`SharedQueryProcessor` is that query's
``foreachBatch`` function. It runs on the driver once per micro-batch (again, with the
same batch id and rows, when Spark replays the batch after a failure):

1. it decodes the batch's Kafka rows once, with the one
   :class:`~driftline.spark.decode.FrameDecoder` of the shared reader schema, caches
   them and surveys them (one Spark action: rows per topic, writer schema ids, unknown
   ids); an unknown id the registry then knows is learnt and the batch decoded again;
2. with a :class:`~driftline.spark.fused.FusedCensus` (the sources share the
   event-time field, as they do unless configured otherwise): each source's first
   step (:meth:`~driftline.spark.batch.BatchProcessor.begin`: its previous state
   version and watermark), then one plan splitting and aggregating every source's
   rows, keyed by source, collected in one Spark action, then each source's
   remaining steps from its share (:meth:`~driftline.spark.batch.BatchProcessor.finish`),
   one after another; the whole batch holds one place at the driver-wide gate
   (:data:`~driftline.spark.batch.CONCURRENT_BATCHES`);
3. without one, each source's :class:`~driftline.spark.batch.BatchProcessor` runs
   over the cached rows of the source's topic (``_topic`` equal to it, a filter over
   the cache: the topic is not read again) with their count and survey, its own census
   action included, each taking a place at the gate as its own query's batch would.

Either way each source keeps its own window state, tables, dead-letter topic, commit
markers and alert policy, keyed by the shared query's batch ids. The rows the sources
append or MERGE into a quality table are committed once for the whole batch, after the
last source's steps (:func:`driftline.spark.delta.one_commit_per_table`): one commit per
table with one ``txn`` per source, not one per source (dead letters, written by Spark,
keep their own commit per source). A source's state version is therefore written
before its table rows are committed; a crash in between replays the batch from the
previous version, which writes the same rows again, and a source whose ``txn`` is
already in a table is skipped there; a source none of
whose records are in the batch is skipped, as its own query would not have run a
batch (unless lost records are counted, ``[kafka] fail_on_data_loss = false``:
offsets may have moved with no record left). The batch ends, and Spark commits it,
when all of them have finished. A failure fails the batch and Spark replays all of
it: every source's outputs are idempotent per batch id.

Why: Spark's decode of a wide schema is one large generated plan, built per query and
per batch, and each Spark action has a fixed cost; sources sharing a query pay for
both once per batch, not once per source. ``docs/scaling.md`` has the figures.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from driftline.spark import delta
from driftline.spark.batch import SINGLE_TASK_ROWS, BatchProcessor, gated, timed_step
from driftline.spark.decode import FrameDecoder, Survey
from driftline.spark.fused import FusedCensus
from driftline.spark.window_state import collect

logger = logging.getLogger(__name__)


class SharedQueryProcessor:
    """``foreachBatch`` function of a query of several sources (see the module docstring)."""

    def __init__(
        self,
        name: str,
        decoder: FrameDecoder,
        members: Sequence[tuple[str, BatchProcessor]],
        fused: FusedCensus | None = None,
    ) -> None:
        """``members``: (topic, processor) per source, in the order they run each batch;
        ``fused``: their census as one aggregation (None: one census per source)."""
        self.name = name
        self.decoder = decoder
        self.members = list(members)
        self.fused = fused

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        cached: list[DataFrame] = []  # the decode's caches (two if a new schema id was learnt)

        def cache(frame: DataFrame) -> DataFrame:
            cached.append(frame.persist())
            return frame

        try:
            with delta.one_commit_per_table() as commit:  # every source's rows of a table at once
                if self.fused is not None:
                    with gated(self.name, batch_id):  # one place at the gate for the whole batch
                        with timed_step("decode", self.name, batch_id):
                            rows, survey = self.decoder.decode_cached(batch, cache)
                        self._fused(self.fused, rows, survey, batch_id, cache)
                else:
                    with gated(self.name, batch_id), timed_step("decode", self.name, batch_id):
                        rows, survey = self.decoder.decode_cached(batch, cache)
                    self._members(rows, survey, batch_id)
                with timed_step("table_commits", self.name, batch_id):
                    commit()
        finally:
            for frame in cached:
                frame.unpersist()
        logger.info("query_batch_seconds query=%s batch=%d seconds=%.2f", self.name, batch_id,
                    time.monotonic() - started)  # fmt: skip

    def _members(self, rows: DataFrame, survey: Survey, batch_id: int) -> None:
        """Each source's part of the batch, one after another, each taking a place at the
        driver-wide gate as its own query's batch would.

        Not on threads: the sources' plans share the decode's ``from_avro`` expressions, and
        Spark 4.2 analysing one such expression from two threads at once corrupts its
        options map (``DUPLICATED_MAP_KEY`` or a NullPointerException in ``FromAvro``;
        reproduced with two threads filtering one cached decode)."""
        for topic, processor in self.members:
            part = survey.of_topic(topic)
            if part.read == 0 and processor.loss is None:
                continue
            with gated(processor.plan.source, batch_id):
                processor.process_decoded(rows.where(F.col("_topic") == topic), part.read, part, batch_id)

    def _fused(self, fused: FusedCensus, rows: DataFrame, survey: Survey, batch_id: int, cache) -> None:
        """The batch with one census for all its sources (:mod:`driftline.spark.fused`):
        each source's first step (its state version and watermark), one split and one
        Spark action for every source's counts and partials, then each source's remaining
        steps from its share, one after another."""
        due = [
            (processor, part)
            for topic, processor in self.members
            if (part := survey.of_topic(topic)).read > 0 or processor.loss is not None
        ]
        if not due:
            return
        if sum(part.read for _, part in due) <= SINGLE_TASK_ROWS:
            rows = rows.coalesce(1)  # one partition: the aggregations run without a shuffle
        checked = fused.checked(rows)
        spark = rows.sparkSession
        starts = {}
        for processor, _ in due:
            source = processor.plan.source
            starts[source] = processor.begin(spark, checked.where(F.col("source") == source), batch_id)
        split = fused.split(checked, {s: start.watermark for s, start in starts.items()}, cache)
        sources = [processor.plan.source for processor, _ in due]
        with timed_step("census", self.name, batch_id):  # one Spark action for every source
            collected = collect(fused.frames(split, sources))
        for processor, part in due:
            source = processor.plan.source
            share = fused.share(collected, source)
            processor.finish_timed(starts[source], split.of(source), share, part.read, part, batch_id)


__all__ = ["SharedQueryProcessor"]
