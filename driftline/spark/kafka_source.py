"""The job's input: Spark's own Kafka connector (``spark-sql-kafka-0-10``), configured once.

Offsets live in the query's checkpoint; each micro-batch reads an exact, replayable
range. Settings (Spark's option names):

==========================  ===============================================================
``subscribe``               the source's topic
``startingOffsets``         ``[kafka] starting_offsets`` (a restarted query resumes instead)
``maxOffsetsPerTrigger``    ``[kafka] max_offsets_per_trigger`` (or ``--max-records-per-batch``),
                            so a backlog never becomes one giant batch
``failOnDataLoss``          ``[kafka] fail_on_data_loss``: records gone before they were read
                            (retention, ``delete_records``, a recreated topic) stop the query
``kafka.isolation.level``   always ``read_committed``: aborted transactions are never read
``fetchOffset.*``           60 retries, 1 s apart: a broker restart delays batches, not fails them
``kafka.<setting>``         ``[kafka.client]`` / ``[kafka.consumer]`` mapped to the Java
                            client's names (:mod:`driftline.kafka.java_client`)
==========================  ===============================================================

``kafka.default.api.timeout.ms`` and ``kafkaConsumer.pollTimeoutMs`` are 300 s: a batch
that reads while the broker is away waits for it, up to 5 minutes (the transactional
writers' budget too), instead of failing its task after 60 s.

Where it runs: :func:`kafka_stream` runs on the driver when a query is defined; Spark
plans offsets on the driver and reads on executors, all in the JVM.
"""

from __future__ import annotations

import logging

from pyspark.sql import DataFrame, SparkSession

from driftline.config import PipelineConfig

logger = logging.getLogger(__name__)


def source_options(config: PipelineConfig, topics: list[str], *, max_offsets_per_trigger: int | None = None
                   ) -> dict[str, str]:  # fmt: skip
    """The connector's options for ``topics`` (secrets included: never log the values)."""
    kafka = config.kafka
    options = {
        "kafka.bootstrap.servers": kafka.bootstrap_servers,
        "subscribe": ",".join(topics),
        "startingOffsets": kafka.starting_offsets,
        "maxOffsetsPerTrigger": str(max_offsets_per_trigger or kafka.max_offsets_per_trigger),
        "failOnDataLoss": str(kafka.fail_on_data_loss).lower(),
        "kafka.isolation.level": "read_committed",
        # ride out a broker restart (about 5-30 s) instead of failing the query after 3 s
        "fetchOffset.numRetries": "60",
        "fetchOffset.retryIntervalMs": "1000",
        # and an outage of up to 5 minutes while a batch reads (the writers' budget too): the
        # Java consumer's blocking calls (position, metadata) give up after 60 s by default,
        # and Spark's executor poll after spark.network.timeout (120 s); either fails the task,
        # and a local run does not retry tasks
        "kafka.default.api.timeout.ms": "300000",
        "kafkaConsumer.pollTimeoutMs": "300000",
    }
    for key, value in kafka.java_consumer().items():
        options[f"kafka.{key}"] = value
    return options


def kafka_stream(
    spark: SparkSession,
    config: PipelineConfig,
    topics: list[str],
    *,
    max_offsets_per_trigger: int | None = None,
) -> DataFrame:
    """A streaming DataFrame of Spark's Kafka rows (key, value, topic, partition, offset,
    timestamp, timestampType) for ``topics``."""
    options = source_options(config, topics, max_offsets_per_trigger=max_offsets_per_trigger)
    logger.info("kafka_source topics=%s options=%s", ",".join(topics), ",".join(sorted(options)))
    return spark.readStream.format("kafka").options(**options).load()
