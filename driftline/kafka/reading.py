"""Read a topic from the beginning to its current end, without consumer groups.

The end of each partition comes from ``ListOffsets`` (asked once, before reading);
with ``read_committed`` the reader is done when its position, which moves past
aborted records and transaction markers too, reaches that end. Partitions are
``assign()``-ed, so no consumer group (and no rebalance) is involved.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from driftline.errors import BrokerError
from driftline.kafka.clients import client_config

_ELECTING = (KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE)


def read_topic(
    bootstrap: str,
    topic: str,
    *,
    isolation: Literal["read_committed", "read_uncommitted"] = "read_committed",
    timeout: float = 30.0,
    settings: Mapping[str, Any] | None = None,
    start: Mapping[int, int] | None = None,
    stop: Mapping[int, int] | None = None,
) -> list[Message]:
    """Every record now in ``topic`` (from ``start[partition]``, default 0, up to
    ``stop[partition]``, default the end), by (partition, offset)."""
    consumer = Consumer(
        client_config(
            bootstrap,
            {
                "group.id": "driftline-reader",  # required by librdkafka; never joined
                "enable.auto.commit": False,
                "isolation.level": isolation,
            },
            settings,
        )
    )
    try:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise BrokerError(f"topic {topic!r} does not exist on {bootstrap}")
        partitions = sorted(metadata.partitions)
        first = {p: (start or {}).get(p, 0) for p in partitions}
        consumer.assign([TopicPartition(topic, p, first[p]) for p in partitions])
        records: list[Message] = []
        next_offset = dict(first)
        deadline = time.monotonic() + timeout
        # the true end (high watermark), asked read_uncommitted: a read_committed consumer is
        # told the last stable offset, which stops before a transaction still open, so the
        # records committed after that transaction began would be missed; reading to the
        # true end waits for the open one to commit or abort (transaction.timeout.ms)
        probe = Consumer(client_config(bootstrap, {"group.id": "driftline-reader"}, settings,
                                       {"isolation.level": "read_uncommitted"}))  # fmt: skip
        try:
            ends = {p: _watermarks(probe, topic, p, deadline)[1] for p in partitions}
        finally:
            probe.close()
        ends = {p: min(end, (stop or {}).get(p, end)) for p, end in ends.items()}
        while True:
            for message in consumer.consume(10_000, 0.2):
                if message.error() is not None or message.offset() >= ends[message.partition()]:
                    continue
                records.append(message)
                next_offset[message.partition()] = message.offset() + 1
            if all(
                end >= 0 and _position(consumer, topic, p, next_offset[p]) >= end for p, end in ends.items()
            ):
                break
            if time.monotonic() > deadline:
                raise BrokerError(
                    f"reading {topic!r} did not reach its end within {timeout}s "
                    f"(at {next_offset}, ends {ends}; a transaction still open holds read_committed "
                    "readers until it commits or is aborted)"
                )
    finally:
        consumer.close()
    records.sort(key=lambda m: (m.partition(), m.offset()))
    return records


def _watermarks(consumer: Consumer, topic: str, partition: int, deadline: float) -> tuple[int, int]:
    """The partition's (low, high) watermarks, asked again while its leader is still being
    elected (a topic created a moment ago answers ``NOT_LEADER_FOR_PARTITION`` for a while)."""
    while True:
        try:
            return consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=max(deadline - time.monotonic(), 0.1)
            )
        except KafkaException as exc:
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            transient = error is not None and (error.retriable() or error.code() in _ELECTING)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _position(consumer: Consumer, topic: str, partition: int, seen: int) -> int:
    """Where the consumer stands: past aborted / control records too, not just data."""
    [position] = consumer.position([TopicPartition(topic, partition)])
    return max(seen, position.offset)


def offset_range(bootstrap: str, topic: str, partition: int = 0, *, settings: Mapping[str, Any] | None = None,
                 timeout: float = 30.0) -> tuple[int, int]:  # fmt: skip
    """(low, high) watermark of one partition: its first offset and the next one to be written."""
    consumer = Consumer(client_config(bootstrap, {"group.id": "driftline-reader"}, settings,
                                      {"isolation.level": "read_uncommitted"}))  # fmt: skip
    try:
        return _watermarks(consumer, topic, partition, time.monotonic() + timeout)
    finally:
        consumer.close()
