"""Exactly-once batches of records to Kafka: one transaction per batch, with a marker.

Each batch is written in one Kafka transaction together with a *commit marker*
(``{"batch_id": N}``, keyed by the writer's name) on a compacted markers topic. A
batch whose marker is already committed is skipped, so a replayed Spark micro-batch
never writes twice; a batch interrupted mid-way is aborted (the next
``init_transactions`` with the same ``transactional.id`` fences and aborts it) and
written again.

Records of an aborted attempt stay in the log but are invisible to ``read_committed``
readers, so every record of a batch is visible exactly once.
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException

from driftline.errors import DeliveryError
from driftline.kafka.clients import (
    TopicSpec,
    consumer_side,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
)
from driftline.kafka.reading import read_topic

logger = logging.getLogger(__name__)

# one marker per writer name matters, the newest: compaction keeps the markers topic (read in
# full when a writer starts) at about one record per writer however long the job runs
MARKERS_CONFIG = {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True)
class OutgoingRecord:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass
class TransactionalBatchWriter:
    """Writes batches of records to ``topic`` exactly once per batch id.

    Parameters
    ----------
    name:
        Stable writer name, e.g. ``"demo/payments/dlq"``: the marker key and the
        ``transactional.id`` (so a restarted writer fences its predecessor).
    """

    bootstrap: str
    topic: str
    markers_topic: str
    name: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    partitions: int = 1
    _producer: Any = field(default=None, init=False, repr=False)
    _marker: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def _start(self) -> None:
        if self._producer is not None:
            return
        ensure_topics(
            make_admin(self.bootstrap, self.settings),
            [TopicSpec(self.topic, self.partitions), TopicSpec(self.markers_topic, 1, config=MARKERS_CONFIG)],
        )
        self._producer = make_producer(
            self.bootstrap, self.settings, {"transactional.id": f"driftline.{self.name}", "linger.ms": 5}
        )
        try:
            self._producer.init_transactions(60)
        except KafkaException as exc:
            raise DeliveryError(f"cannot start Kafka transactions for {self.name}: {exc}") from exc
        self._marker = self._last_marker()

    def _last_marker(self) -> dict[str, Any] | None:
        marker = None
        for message in read_topic(self.bootstrap, self.markers_topic, settings=consumer_side(self.settings)):
            if message.key() == self.name.encode():
                marker = json.loads(message.value())
        return marker

    @property
    def committed_batch(self) -> int | None:
        self._start()
        return None if self._marker is None else self._marker["batch_id"]

    def write(self, batch_id: int, records: Iterable[OutgoingRecord]) -> int:
        """Write ``records`` as batch ``batch_id``; return how many were written now.

        Returns 0 without writing when the batch's marker is already committed, and when
        ``records`` is empty: an empty batch needs no transaction and no marker (a replay
        of it writes nothing either), so the markers topic grows only with batches that
        wrote something.
        """
        records = iter(records)
        first = next(records, None)
        if first is None:
            return 0
        records = itertools.chain([first], records)
        self._start()
        if self._marker is not None and self._marker["batch_id"] >= batch_id:
            logger.info(
                "batch_skipped writer=%s batch=%d committed=%d", self.name, batch_id, self._marker["batch_id"]
            )
            return 0
        producer, written = self._producer, 0
        try:
            producer.begin_transaction()
            for record in records:
                produce(producer, self.topic, value=record.value, key=record.key, headers=record.headers)
                written += 1
            marker = {"batch_id": batch_id}
            produce(producer, self.markers_topic, key=self.name.encode(), value=json.dumps(marker).encode())
            producer.commit_transaction(60)
        except KafkaException as exc:
            try:
                producer.abort_transaction(30)
            except KafkaException:
                logger.exception("abort_failed writer=%s batch=%d", self.name, batch_id)
            raise DeliveryError(
                f"{self.name}: batch {batch_id} was not committed to {self.topic}: {exc}"
            ) from exc
        self._marker = marker
        logger.info("batch_committed writer=%s batch=%d records=%d", self.name, batch_id, written)
        return written

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None
