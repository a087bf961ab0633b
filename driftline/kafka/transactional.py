"""Exactly-once batches of records to Kafka: one transaction per batch, with a marker.

Each batch is written in one Kafka transaction together with a *commit marker*
(``{"batch_id": N}``, keyed by the writer's name) on a compacted markers topic. A
batch whose marker is already committed is skipped, so a replayed Spark micro-batch
never writes twice; a batch interrupted mid-way is aborted (the next
``init_transactions`` with the same ``transactional.id`` fences and aborts it) and
written again.

Records of an aborted attempt stay in the log but are invisible to ``read_committed``
readers, so every record of a batch is visible exactly once.

A large batch is written as several transactions, so that no transaction stays open
near ``transaction.timeout.ms`` (librdkafka's default: 60 s; the broker aborts a
transaction older than that and the replay would be the same too-long batch). A new
transaction starts after :attr:`TransactionalBatchWriter.transaction_records` records
or :attr:`TransactionalBatchWriter.transaction_seconds` seconds, whichever comes
first; each but the last commits with a *partial* marker, ``{"batch_id": N,
"partial": k, "after": position}``: batch N's records up to the one at ``position``
(k of them) are committed. Records carry their position (the job: the original
record's topic, partition and offset, and sends them in that order), so a replay
after a crash between two transactions skips those up to ``position`` and writes the
rest, even when the replay's records differ from the first attempt's. Records
without a position are skipped by count, k. The last transaction's marker is
``{"batch_id": N}``: batch N is complete.

A writer may carry a ``fingerprint`` of what decides a batch's records (the job's
reader schema, rule suite, reference, windows). Markers carry it, and a replay of a
batch whose marker holds another fingerprint stops with :class:`ReplayMismatch`
instead of skipping: the topic holds the first attempt's records, and the tables of a
replay under another configuration would disagree with them.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaException

from driftline import faults
from driftline.errors import DeliveryError, JobError
from driftline.kafka.clients import (
    TopicSpec,
    consumer_side,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
)
from driftline.kafka.reading import offset_range, read_topic

logger = logging.getLogger(__name__)

# one marker per writer name matters, the newest: compaction keeps the markers topic at about
# one record per writer however long the job runs; a starting writer reads it backwards from
# the end until it meets its own (_last_marker), so its start does not read the whole history
# a transaction another writer left open holds the markers' readers until it is aborted,
# at most transaction.timeout.ms (librdkafka's default: 60 s) after it began
MARKERS_WAIT = 90.0
MARKERS_CONFIG = {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}


class ReplayMismatch(JobError):
    """A batch is replayed under another configuration than the one its records were committed with."""


@dataclass(frozen=True)
class OutgoingRecord:
    value: bytes | None
    key: bytes | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    position: tuple | None = None  # where it comes from, increasing within a batch (partial markers)


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
    transaction_records: int = 50_000
    transaction_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    fingerprint: str | None = None
    markers_read: int = field(default=0, init=False)
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
        """This writer's newest committed marker, read backwards from the end of the markers
        topic in growing spans (1,000 records, then 4x each time) until one span holds it:
        the cost follows how many markers other writers committed since this one's last,
        not the topic's history (:attr:`markers_read` counts the records read)."""
        settings = consumer_side(self.settings)
        low, end = offset_range(self.bootstrap, self.markers_topic, settings=settings)
        span, key = 1_000, self.name.encode()
        while end > low:
            begin = max(low, end - span)
            found = None
            span_records = read_topic(self.bootstrap, self.markers_topic, settings=settings,
                                      timeout=MARKERS_WAIT, start={0: begin}, stop={0: end})  # fmt: skip
            for message in span_records:
                self.markers_read += 1
                if message.key() == key:
                    found = message
            if found is not None:
                return json.loads(found.value())
            end, span = begin, span * 4
        return None

    @property
    def committed_batch(self) -> int | None:
        self._start()
        return None if self._marker is None else self._marker["batch_id"]

    def write(self, batch_id: int, records: Iterable[OutgoingRecord]) -> int:
        """Write ``records`` as batch ``batch_id``; return how many were written now.

        Returns 0 without writing when the batch's marker is already committed, and when
        ``records`` is empty: an empty batch needs no transaction and no marker (a replay
        of it writes nothing either), so the markers topic grows only with batches that
        wrote something. When a partial marker of this batch is committed, the records it
        covers are skipped and the rest written.
        """
        records = iter(records)
        first = next(records, None)
        if first is None:
            return 0
        records = itertools.chain([first], records)
        self._start()
        self._check_replay(batch_id)
        done = self._committed_records(batch_id)
        if done is None:
            logger.info(
                "batch_skipped writer=%s batch=%d committed=%d", self.name, batch_id, self._marker["batch_id"]
            )
            return 0
        after = self._marker.get("after") if done else None
        if after is not None:  # the records up to the last one committed, by position
            logger.info("batch_resumed writer=%s batch=%d after=%s", self.name, batch_id, after)
            records = itertools.dropwhile(
                lambda r: r.position is not None and list(r.position) <= after, records
            )
        elif done:
            logger.info("batch_resumed writer=%s batch=%d committed_records=%d", self.name, batch_id, done)
            records = itertools.islice(records, done, None)
        producer, written, in_transaction, opened = self._producer, 0, 0, self.clock()
        last: tuple | None = None
        try:
            producer.begin_transaction()
            for record in records:
                if in_transaction and (
                    in_transaction >= self.transaction_records
                    or self.clock() - opened >= self.transaction_seconds
                ):
                    self._commit(batch_id, done + written, in_transaction, last)
                    producer.begin_transaction()
                    in_transaction, opened = 0, self.clock()
                produce(producer, self.topic, value=record.value, key=record.key, headers=record.headers)
                written += 1
                in_transaction += 1
                last = record.position
                if written == 1 and faults.armed():
                    producer.flush(30)  # on the broker, in the open transaction
                    faults.point("kafka_transaction", batch_id)
            self._commit(batch_id, None, in_transaction)
        except KafkaException as exc:
            self._abort(batch_id)
            raise DeliveryError(
                f"{self.name}: batch {batch_id} was not committed to {self.topic}: {exc}"
            ) from exc
        except BaseException:  # the records' source failed (e.g. a Spark job): leave nothing open
            self._abort(batch_id)
            raise
        logger.info("batch_committed writer=%s batch=%d records=%d", self.name, batch_id, written)
        return written

    def _abort(self, batch_id: int) -> None:
        try:
            self._producer.abort_transaction(30)
        except KafkaException:
            logger.exception("abort_failed writer=%s batch=%d", self.name, batch_id)

    def _check_replay(self, batch_id: int) -> None:
        marker = self._marker
        if marker is not None and marker["batch_id"] > batch_id:
            # a query writes its batches in order and replays only the one after its last
            # commit: a marker ahead of the batch at hand was not written by this query
            raise ReplayMismatch(
                f"{self.name}: the markers topic {self.markers_topic} says batch {marker['batch_id']} is "
                f"committed, but this query is writing batch {batch_id}: that marker was not written by "
                "this query (forged, or copied from another run's markers). Refusing to skip the batch; "
                f"remove the marker (key {self.name!r}) and restrict the topic with ACLs (docs/runbook.md)"
            )
        if marker is None or marker["batch_id"] != batch_id or self.fingerprint is None:
            return
        first = marker.get("fingerprint")
        if first is not None and first != self.fingerprint:
            raise ReplayMismatch(
                f"{self.name}: batch {batch_id} is replayed with another configuration than its first run "
                f"(fingerprint {first[:12]}, now {self.fingerprint[:12]}): that run committed its records to "
                f"{self.topic}, and this one would write tables that disagree with them. Restore the "
                "configuration of that run (schema version, expectation suite, reference profile, windows) "
                f"until batch {batch_id} has committed, then change it"
            )

    def _committed_records(self, batch_id: int) -> int | None:
        """How many of batch ``batch_id``'s records are committed already: ``None`` for all."""
        marker = self._marker
        if marker is None or marker["batch_id"] < batch_id:
            return 0
        if marker["batch_id"] == batch_id and "partial" in marker:
            return int(marker["partial"])
        return None

    def _commit(self, batch_id: int, partial: int | None, records: int, last: tuple | None = None) -> None:
        """Commit the open transaction with its marker; ``partial`` counts the batch's
        records committed so far when more of the batch follows, and ``last`` is the
        position of the last of them (a replay resumes after it: exact even if the
        replay's records differ from the first attempt's)."""
        marker: dict[str, Any] = {"batch_id": batch_id}
        if self.fingerprint is not None:
            marker["fingerprint"] = self.fingerprint
        if partial is not None:
            marker["partial"] = partial
            if last is not None:
                marker["after"] = list(last)
        produce(self._producer, self.markers_topic, key=self.name.encode(), value=json.dumps(marker).encode())
        self._producer.commit_transaction(60)
        self._marker = marker
        if partial is not None:
            logger.info("transaction_committed writer=%s batch=%d records=%d", self.name, batch_id, records)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None
