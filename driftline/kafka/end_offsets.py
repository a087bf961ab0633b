"""Partition offsets from the broker's ``ListOffsets`` (earliest and latest), on the driver.

Used by the job's lag monitor (every ``[metrics] lag_interval``) and by the data-loss
accounting of a run with ``failOnDataLoss = false``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from driftline.errors import ConfigError

TopicPartitionKey = tuple[str, int]


class EndOffsetProbe:
    """A driver-side consumer (created lazily, never pickled) that asks for offsets."""

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
            self._consumer = self._make_consumer()
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

    def watermarks(self, partitions: list[TopicPartitionKey], *, timeout: float = 30.0
                   ) -> dict[TopicPartitionKey, tuple[int, int]]:  # fmt: skip
        """``(earliest, end)`` of every partition, asked of the partition leader."""
        from confluent_kafka import TopicPartition

        consumer = self._probe()
        return {tp: tuple(consumer.get_watermark_offsets(TopicPartition(*tp), timeout=timeout, cached=False))
                for tp in partitions}  # fmt: skip

    def ends(self, partitions: list[TopicPartitionKey], known: Mapping[TopicPartitionKey, int] | None = None,
             *, timeout: float = 30.0) -> dict[TopicPartitionKey, int]:  # fmt: skip
        """The end (next offset to be written) of every partition."""
        return {tp: end for tp, (_, end) in self.watermarks(partitions, timeout=timeout).items()}

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


__all__ = ["EndOffsetProbe"]
