"""Counting what Spark's Kafka source skipped in a run with ``failOnDataLoss = false``.

With ``[kafka] fail_on_data_loss = false`` Spark reads past records that Kafka removed
before the job read them (retention, ``delete_records``) and past a partition whose
offsets went backwards (topic deleted and recreated), with only a log warning. The
:class:`LossCounter` turns that into numbers: once per micro-batch, on the driver
inside ``foreachBatch``, it takes the batch's offset range from the checkpoint's
offset log (read through the Hadoop FileSystem of the checkpoint's path), the first
offset read per partition (one small aggregate over the cached batch) and the log
start offsets from ``ListOffsets``, and applies
:func:`driftline.spark.offsets.offset_loss`. The counts go to the progress table
(``lost``, ``offsets_reset``), the run summary and the metrics.
"""

from __future__ import annotations

import logging
from collections.abc import Collection

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from driftline.kafka.end_offsets import EndOffsetProbe
from driftline.spark.fs import read_text
from driftline.spark.offsets import OffsetLoss, from_offset, offset_loss, parse_offset_log_entry

logger = logging.getLogger(__name__)
NO_LOSS = OffsetLoss({}, ())


class LossCounter:
    """Per-batch lost offsets of one source's query (driver side, see the module docstring)."""

    def __init__(self, source: str, checkpoint: str, probe: EndOffsetProbe,
                 topics: Collection[str] | None = None) -> None:  # fmt: skip
        """``topics``: the source's topics, when its query reads others' too (their
        offsets in the shared checkpoint are left out); None: every topic of the query."""
        self.source = source
        self.checkpoint = checkpoint.rstrip("/")
        self.probe = probe
        self.topics = frozenset(topics) if topics is not None else None

    def _batch_end(self, spark: SparkSession, batch_id: int):
        if batch_id < 0:
            return None
        text = read_text(spark, f"{self.checkpoint}/offsets/{batch_id}")
        offsets = parse_offset_log_entry(text) if text is not None else None
        if offsets is None:
            return None
        ends = from_offset(offsets)
        return ends if self.topics is None else {tp: o for tp, o in ends.items() if tp[0] in self.topics}

    def measure(self, spark: SparkSession, rows: DataFrame, batch_id: int) -> OffsetLoss:
        """What batch ``batch_id`` (whose rows are ``rows``) skipped; logged when not nothing."""
        start, end = self._batch_end(spark, batch_id - 1), self._batch_end(spark, batch_id)
        if start is None or end is None:
            return NO_LOSS  # the query's first batch starts where startingOffsets put it
        first_read = {
            (r["_topic"], r["_partition"]): r["first"]
            for r in rows.groupBy("_topic", "_partition").agg(F.min("_offset").alias("first")).collect()
        }
        try:
            earliest = {tp: low for tp, (low, _) in self.probe.watermarks(sorted(end)).items()}
        except Exception as error:  # noqa: BLE001 - a failed probe must not fail the batch
            logger.warning("offset_loss_unknown source=%s batch=%d error=%s", self.source, batch_id, error)
            return NO_LOSS
        loss = offset_loss(start, end, first_read, earliest)
        for (topic, partition), count in loss.lost.items():
            logger.warning(
                "records_lost source=%s batch=%d %s[%d]@%d count=%d: removed from Kafka before the job read "
                "them (fail_on_data_loss = false)", self.source, batch_id, topic, partition,
                start[(topic, partition)], count,
            )  # fmt: skip
        for topic, partition in loss.reset:
            logger.warning(
                "offsets_reset source=%s batch=%d %s[%d]: offsets went back from %d to %d (topic deleted and "
                "recreated?); what the old log held after %d was never read", self.source, batch_id, topic,
                partition, start[(topic, partition)], end[(topic, partition)], start[(topic, partition)],
            )  # fmt: skip
        return loss

    def close(self) -> None:
        self.probe.close()


__all__ = ["LossCounter"]
