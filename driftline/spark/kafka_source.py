"""``driftline-kafka``: a Spark streaming source over Kafka that decodes Avro in the reader.

Spark's JVM Kafka connector is not available here (no Maven Central), so this is a
Python data source (pyspark 4.1 ``DataSourceStreamReader``) on confluent-kafka.
Each micro-batch reads an exact, replayable offset range with ``assign()`` (no
consumer groups), decodes the Confluent-framed Avro values into the pipeline's reader
schema and yields Arrow record batches; bad records come out as rows with ``_raw``,
``_reason`` and ``_detail`` set instead of failing the task. Everything after this is
Spark SQL in the JVM.

Options (Spark Kafka connector names where one exists):

=========================  ==================================================================
``kafka.bootstrap.servers``  required; any other ``kafka.<setting>`` goes to librdkafka as is
                             (SASL / SSL included), e.g. ``kafka.isolation.level``
``subscribe``                comma-separated topics
``startingOffsets``          ``earliest`` (default), ``latest``, or JSON ``{"topic": {"0": 42}}``
``maxOffsetsPerTrigger``     at most this many records per micro-batch (default: no limit)
``minPartitions``            split a batch into at least this many Spark tasks (default 2)
``checkpointLocation``       the query's checkpoint, read to cap the first batch after a restart
``schemasDir`` ``subject``   the reader schema: ``<schemasDir>/<subject>/v<schemaVersion>.avsc``
``schemaVersion``            (``latest`` by default)
``schemaRegistryUrl``        optional Confluent Schema Registry for writer schemas
=========================  ==================================================================

Lifecycle (who calls what, where):

* ``KafkaAvroDataSource`` is built on the driver from the options; ``schema()`` runs there.
* ``KafkaStreamReader`` lives on the driver (in Spark's Python source runner process) for
  the whole query: ``initialOffset``, ``latestOffset``, ``partitions`` and ``commit`` run
  there, in that order per trigger (``latestOffset`` may come before ``initialOffset``).
* The reader is pickled to every task and ``read(partition)`` runs on executors; Kafka
  clients are therefore created lazily inside each method and never pickled.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition

from driftline.errors import ConfigError
from driftline.kafka.end_offsets import EndOffsetProbe
from driftline.spark.offsets import (
    OffsetRange,
    Offsets,
    cap_offsets,
    from_offset,
    last_checkpointed_end,
    plan_ranges,
    to_offset,
)

logger = logging.getLogger(__name__)

FORMAT = "driftline-kafka"
ARROW_BATCH_ROWS = 50_000
READ_STALL_SECONDS = 60.0


@dataclass(frozen=True)
class SourceOptions:
    """The source's options, validated once on the driver."""

    bootstrap: str
    topics: tuple[str, ...]
    schemas_dir: str
    subject: str
    schema_version: int | str = "latest"
    starting: str = "earliest"
    max_per_trigger: int | None = None
    min_partitions: int = 2
    checkpoint: str | None = None
    registry_url: str | None = None
    librdkafka: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, options: Mapping[str, str]) -> SourceOptions:
        lowered = {k.lower(): v for k, v in options.items()}

        def required(key: str) -> str:
            if not lowered.get(key.lower()):
                raise ConfigError(f"{FORMAT} option {key!r} is required")
            return lowered[key.lower()]

        def positive(key: str, default: int | None) -> int | None:
            raw = lowered.get(key.lower())
            if raw is None:
                return default
            if not raw.isdigit() or int(raw) < 1:
                raise ConfigError(f"{FORMAT} option {key!r} must be a positive integer, got {raw!r}")
            return int(raw)

        starting = lowered.get("startingoffsets", "earliest")
        if starting not in ("earliest", "latest"):
            try:
                json.loads(starting)
            except json.JSONDecodeError:
                raise ConfigError(
                    f"{FORMAT} option 'startingOffsets' must be earliest, latest or JSON "
                    f'like {{"topic": {{"0": 42}}}}, got {starting!r}'
                ) from None
        version = lowered.get("schemaversion", "latest")
        return cls(
            bootstrap=required("kafka.bootstrap.servers"),
            topics=tuple(t.strip() for t in required("subscribe").split(",") if t.strip()),
            schemas_dir=required("schemasDir"),
            subject=required("subject"),
            schema_version=int(version) if version.isdigit() else version,
            starting=starting,
            max_per_trigger=positive("maxOffsetsPerTrigger", None),
            min_partitions=positive("minPartitions", 2) or 2,
            checkpoint=lowered.get("checkpointlocation"),
            registry_url=lowered.get("schemaregistryurl"),
            librdkafka={
                k[len("kafka.") :]: v
                for k, v in options.items()
                if k.lower().startswith("kafka.") and k.lower() != "kafka.bootstrap.servers"
            },
        )

    def reader_schema(self):
        from driftline.kafka.registry import FileSchemaRegistry

        return FileSchemaRegistry(self.schemas_dir).get(self.subject, self.schema_version)

    def registry(self):
        from driftline.kafka.registry import open_registry

        return open_registry(self.schemas_dir, self.registry_url)

    def consumer(self, **overrides: Any):
        from confluent_kafka import Consumer

        from driftline.kafka.clients import client_config

        return Consumer(
            client_config(
                self.bootstrap,
                {
                    "group.id": "driftline-source",
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                },
                self.librdkafka,
                overrides,
            )
        )


class KafkaAvroDataSource(DataSource):
    """Registered as ``driftline-kafka``; see the module docstring for options."""

    @classmethod
    def name(cls) -> str:
        return FORMAT

    def schema(self) -> str:
        """Runs on the driver when the query is defined: the reader schema + metadata."""
        from driftline.spark.schema import source_ddl

        return source_ddl(SourceOptions.parse(self.options).reader_schema())

    def streamReader(self, schema) -> KafkaStreamReader:  # noqa: N802 - Spark's name
        return KafkaStreamReader(SourceOptions.parse(self.options))


class RangePartition(InputPartition):
    """One offset range; pickled from the driver to the executor that reads it."""

    def __init__(self, offset_range: OffsetRange) -> None:
        super().__init__(offset_range)
        self.range = offset_range


class KafkaStreamReader(DataSourceStreamReader):
    """Plans offset ranges on the driver and reads + decodes them on executors."""

    def __init__(self, options: SourceOptions) -> None:
        self.options = options
        self._last_end: Offsets | None = None
        self._probe = EndOffsetProbe(options.consumer, bootstrap=options.bootstrap)  # driver side

    # -- driver side -----------------------------------------------------------------
    def initialOffset(self) -> Offsets:  # noqa: N802
        """Driver, once for a new query (a restarted one resumes from its checkpoint)."""
        starting = self.options.starting
        if starting == "latest":
            return self._end_offsets(self._partitions(), {})
        if starting == "earliest":
            return to_offset(dict.fromkeys(self._partitions(), 0))
        return to_offset(from_offset(json.loads(starting)))

    def latestOffset(self) -> Offsets:  # noqa: N802
        """Driver, every trigger: the true end of every partition, capped per trigger.

        The returned offset never goes below the previous one: Spark does not check.
        """
        start = self._batch_start()
        ends = self._end_offsets(self._partitions(), from_offset(start))
        capped = from_offset(cap_offsets(start, ends, self.options.max_per_trigger))
        previous = from_offset(start)
        merged = {tp: max(capped.get(tp, 0), previous.get(tp, 0)) for tp in {*capped, *previous}}
        self._last_end = to_offset(merged)
        return self._last_end

    def partitions(self, start: Offsets, end: Offsets) -> list[RangePartition]:
        """Driver, once per micro-batch: one task per offset range, split for parallelism."""
        ranges = plan_ranges(start, end, min_splits=self.options.min_partitions)
        logger.info("batch_plan ranges=%d records=%d", len(ranges), sum(r.size for r in ranges))
        return [RangePartition(r) for r in ranges]

    def commit(self, end: Offsets) -> None:
        """Driver, after a batch is done (late, and not after the last availableNow batch)."""
        logger.debug("source_commit end=%s", json.dumps(end, sort_keys=True))

    def stop(self) -> None:
        self._probe.close()

    def _batch_start(self) -> Offsets:
        """Where the next batch starts: our last answer, else the checkpoint's, else the initial offset."""
        if self._last_end is None:
            self._last_end = last_checkpointed_end(self.options.checkpoint) or self.initialOffset()
        return self._last_end

    def _partitions(self) -> list[tuple[str, int]]:
        try:
            return self._probe.partitions(self.options.topics)
        except ConfigError as error:
            raise ConfigError(f"{FORMAT}: {error}") from None

    def _end_offsets(self, partitions: list[tuple[str, int]], known: dict[tuple[str, int], int]) -> Offsets:
        """Each partition's end (:class:`~driftline.kafka.end_offsets.EndOffsetProbe`)."""
        return to_offset(self._probe.ends(partitions, known))

    # -- executor side ---------------------------------------------------------------
    def read(self, partition: RangePartition) -> Iterator[Any]:
        """Executor, once per task: read exactly ``partition.range`` and yield Arrow batches."""
        from driftline.spark.decode import RangeDecoder

        offset_range = partition.range
        decoder = RangeDecoder(self.options.registry(), self.options.reader_schema())
        consumer = self.options.consumer(**{"enable.partition.eof": False})
        try:
            yield from decoder.batches(_consume_range(consumer, offset_range), ARROW_BATCH_ROWS)
        finally:
            consumer.close()


def _consume_range(consumer, offset_range: OffsetRange) -> Iterator[Any]:
    """Messages of ``offset_range`` in order; raises if the range cannot be read whole.

    With ``read_committed``, aborted records and transaction markers occupy offsets
    but are never returned, so completion is judged by the consumer's position.
    """
    from confluent_kafka import TopicPartition

    tp = TopicPartition(offset_range.topic, offset_range.partition, offset_range.start)
    consumer.assign([tp])
    position, last_progress = offset_range.start, time.monotonic()
    while position < offset_range.end:
        messages = consumer.consume(10_000, 0.5)
        for message in messages:
            if message.error() is not None:
                continue
            if message.offset() >= offset_range.end:
                position = offset_range.end
                break
            position = message.offset() + 1
            yield message
        if position < offset_range.end:
            [current] = consumer.position([TopicPartition(offset_range.topic, offset_range.partition)])
            if current.offset >= offset_range.end:
                position = offset_range.end
        if messages:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > READ_STALL_SECONDS:
            raise TimeoutError(
                f"{offset_range.topic}[{offset_range.partition}] stuck at {position}, "
                f"expected records up to {offset_range.end}; failing the task so Spark retries it"
            )
