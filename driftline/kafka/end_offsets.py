"""Each partition's end offset, measured so it is right on Kafka and on tansu.

Used by the streaming source (``latestOffset``, every trigger) and by the job's lag
monitor (every ``[metrics] lag_interval``), both on the driver.

tansu's ListOffsets can report the last batch's base offset + 1 instead of the end,
so the end comes from a fetch at the last known position: a ``PARTITION_EOF`` event
carries the end offset; a fetched record means there is more, and the high watermark
of that fetch response is the end.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from driftline.errors import ConfigError

TopicPartitionKey = tuple[str, int]


class EndOffsetProbe:
    """A driver-side consumer (created lazily, never pickled) that measures end offsets."""

    def __init__(self, make_consumer: Callable[..., Any], *, bootstrap: str) -> None:
        self._make_consumer = make_consumer
        self._bootstrap = bootstrap
        self._consumer = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_consumer"] = None  # Kafka clients are never pickled
        return state

    def _probe(self):
        if self._consumer is None:
            self._consumer = self._make_consumer(
                **{"enable.partition.eof": True, "fetch.wait.max.ms": 20, "max.partition.fetch.bytes": 65536}
            )
        return self._consumer

    def partitions(self, topics: Iterable[str]) -> list[TopicPartitionKey]:
        """Every (topic, partition) of ``topics``; a missing topic is a :class:`ConfigError`."""
        metadata = self._probe().list_topics(timeout=30)
        found = []
        for topic in topics:
            info = metadata.topics.get(topic)
            if info is None or info.error is not None:
                raise ConfigError(f"topic {topic!r} does not exist on {self._bootstrap}")
            found.extend((topic, p) for p in sorted(info.partitions))
        return found

    def ends(
        self, partitions: list[TopicPartitionKey], known: Mapping[TopicPartitionKey, int], *, timeout=30.0
    ) -> dict[TopicPartitionKey, int]:
        """The end of every partition, never below ``known`` (a position already reached)."""
        from confluent_kafka import KafkaError, TopicPartition

        consumer = self._probe()
        consumer.assign([TopicPartition(t, p, known.get((t, p), 0)) for t, p in partitions])
        pending, ends = set(partitions), {}
        deadline = time.monotonic() + timeout
        try:
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no fetch response for {sorted(pending)} within {timeout:.0f}s")
                for message in consumer.consume(1000, 0.2):
                    tp = (message.topic(), message.partition())
                    if tp not in pending:
                        continue
                    error = message.error()
                    if error is not None and error.code() == KafkaError._PARTITION_EOF:
                        ends[tp] = message.offset()
                    elif error is None:
                        high = consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)[1]
                        ends[tp] = max(high, message.offset() + 1)
                    else:
                        continue
                    pending.discard(tp)
        finally:
            consumer.unassign()
        return {tp: max(ends[tp], known.get(tp, 0)) for tp in partitions}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


__all__ = ["EndOffsetProbe"]
