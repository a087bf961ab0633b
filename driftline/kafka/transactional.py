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

A broker that goes away mid-batch is ridden out for up to
:attr:`TransactionalBatchWriter.outage_seconds` (5 minutes): a commit that timed out
is a *retriable* error in librdkafka and is committed again; a transaction the broker
aborted (its messages timed out, or it outlived ``transaction.timeout.ms`` while the
broker was down) is aborted here too and the batch is written again from its last
committed marker, when the records can be read again (``write`` was given a callable
that returns them). Records lost in the outage can leave the producer's sequence
numbers with a gap the broker refuses ("skipped sequence numbers"): the abort (an
epoch bump) mends that, and when librdkafka made it fatal a new producer under the
same ``transactional.id`` does. Only being fenced (another process took over the
writer's ``transactional.id``), an error of the records or rights, or an outage longer
than that budget fails the batch.

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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from driftline import faults
from driftline.errors import DeliveryError, JobError
from driftline.kafka.clients import (
    COMPACTED,
    TopicSpec,
    consumer_side,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
    request_timeout,
)
from driftline.kafka.reading import offset_range, read_topic

logger = logging.getLogger(__name__)

# one marker per writer name matters, the newest: compaction keeps the markers topic at about
# one record per writer however long the job runs; a starting writer reads it backwards from
# the end until it meets its own (_last_marker), so its start does not read the whole history
# a transaction another writer left open holds the markers' readers until it is aborted,
# at most transaction.timeout.ms (librdkafka's default: 60 s) after it began
MARKERS_WAIT = 90.0
# errors of a broker that is away (or of the transaction it aborted meanwhile): the batch is
# written again once it is back. Others (a record too large, an authorization refused) are
# the same on every attempt and fail the batch at once
OUTAGE_ERRORS = frozenset({
    KafkaError._MSG_TIMED_OUT, KafkaError._TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN,
    KafkaError.REQUEST_TIMED_OUT, KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_ENOUGH_REPLICAS, KafkaError.CONCURRENT_TRANSACTIONS,
    KafkaError.INVALID_PRODUCER_EPOCH, KafkaError.INVALID_TXN_STATE,
})  # fmt: skip
# errors of the producer's sequence bookkeeping, broken by records the outage lost: records
# that timed out leave a gap the broker refuses ("skipped sequence numbers"), or the broker
# forgot the producer id. Aborting bumps the producer's epoch, and a new producer under the same
# transactional.id (when librdkafka made the error fatal) starts the sequences afresh: both
# mend it, so these are outage errors too. Being fenced by another writer is not among them
SEQUENCE_ERRORS = frozenset({
    KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, KafkaError.UNKNOWN_PRODUCER_ID, KafkaError._GAPLESS_GUARANTEE,
    KafkaError.INVALID_PRODUCER_ID_MAPPING,
})  # fmt: skip
# a batch's records, or a callable that returns them afresh (a rewrite after an aborted
# transaction needs them again)
Records = Iterable["OutgoingRecord"] | Callable[[], Iterable["OutgoingRecord"]]
MARKERS_CONFIG = COMPACTED


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
    outage_seconds: float = 300.0
    commit_timeout: float = 30.0
    markers_read: int = field(default=0, init=False)
    retries: int = field(default=0, init=False)  # commits and aborts tried again (the broker was away)
    rewrites: int = field(default=0, init=False)  # transactions the broker aborted, written again
    _written: int = field(default=0, init=False, repr=False)
    _failed: set = field(default_factory=set, init=False, repr=False)  # delivery errors seen
    _producer: Any = field(default=None, init=False, repr=False)
    _marker: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def _start(self) -> None:
        if self._producer is not None:
            return
        ensure_topics(
            make_admin(self.bootstrap, self.settings),
            [TopicSpec(self.topic, self.partitions), TopicSpec(self.markers_topic, 1, config=MARKERS_CONFIG)],
            timeout=request_timeout(self.settings),
        )
        self._open(self.clock() + 60)
        self._marker = self._last_marker()

    def _open(self, deadline: float) -> None:
        """A transactional producer for this writer: ``init_transactions`` fences an earlier
        one of the same name and aborts its open transaction (retried until ``deadline``
        while the broker is away)."""
        self._failed = set()
        self._producer = make_producer(self.bootstrap, self.settings, {
            "transactional.id": f"driftline.{self.name}", "linger.ms": 5, "on_delivery": self._delivered,
        })  # fmt: skip
        try:
            self._retrying(self._producer.init_transactions, deadline)
        except KafkaException as exc:
            raise DeliveryError(f"cannot start Kafka transactions for {self.name}: {exc}") from exc

    def _retrying(self, call: Callable[[float], Any], deadline: float) -> None:
        """``call(timeout)``, called again while it fails with a retriable error (the broker
        is away: a timeout) until ``deadline``; any other failure, or the last, is raised."""
        while True:
            try:
                call(self._wait(deadline))
                return
            except KafkaException as exc:
                if not exc.args[0].retriable() or self.clock() >= deadline:
                    raise
                self.retries += 1
                logger.warning("kafka_call_retried writer=%s call=%s error=%s", self.name,
                               getattr(call, "__name__", "call"), exc.args[0].str())  # fmt: skip

    def _delivered(self, error: KafkaError | None, _message) -> None:
        if error is not None:
            self._failed.add(error.code())

    def _outage(self, error: KafkaError) -> bool:
        """Whether ``error`` comes from a broker that is away (or from the records it lost
        meanwhile), not from the records themselves or the writer's rights.

        A fatal error is one only when it is a sequence error (:data:`SEQUENCE_ERRORS`):
        then :meth:`write` opens a new producer under the same ``transactional.id``.
        Being fenced by another writer of that id stays fatal."""
        code = error.code()
        if error.fatal():
            return code in SEQUENCE_ERRORS
        if error.retriable() or code in OUTAGE_ERRORS or code in SEQUENCE_ERRORS:
            return True
        if error.txn_requires_abort():  # e.g. "n message(s) failed delivery": why did they?
            self._producer.poll(0)  # serves the delivery reports into _failed
            return bool(self._failed) and self._failed <= OUTAGE_ERRORS | SEQUENCE_ERRORS
        return False

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

    def write(self, batch_id: int, records: Records) -> int:
        """Write ``records`` as batch ``batch_id``; return how many were written now.

        Returns 0 without writing when the batch's marker is already committed, and when
        ``records`` is empty: an empty batch needs no transaction and no marker (a replay
        of it writes nothing either), so the markers topic grows only with batches that
        wrote something. When a partial marker of this batch is committed, the records it
        covers are skipped and the rest written.

        ``records`` may be a callable returning them: then a transaction the broker
        aborted during an outage is written again (from the batch's last committed
        marker) instead of failing the batch.
        """
        again = records if callable(records) else None
        first_records: Iterable[OutgoingRecord] = records() if again is not None else records
        deadline = self.clock() + self.outage_seconds
        self._written = 0  # committed by this call, over all attempts
        while True:
            try:
                self._write_once(batch_id, iter(first_records))
                return self._written
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                outage = self._outage(error)
                if not self._abort(batch_id, deadline) and outage and again is not None:
                    self._open(deadline)  # a producer the abort left unusable: a new one, same id
                if not outage or again is None or self.clock() >= deadline:
                    raise DeliveryError(
                        f"{self.name}: batch {batch_id} was not committed to {self.topic}: {error.str()}"
                        + (
                            f" (the broker was unreachable for more than {self.outage_seconds:.0f} s)"
                            if outage and again is not None
                            else ""
                        )
                    ) from exc
                self.rewrites += 1
                logger.warning(
                    "transaction_rewritten writer=%s batch=%d error=%s", self.name, batch_id, error.str()
                )
                time.sleep(1.0)  # back off: the broker may still be coming back
                first_records = again()

    def _write_once(self, batch_id: int, records: Iterator[OutgoingRecord]) -> None:
        """One attempt of :meth:`write`: from the last committed marker to the batch's end
        (each commit adds its records to ``_written``)."""
        first = next(records, None)
        if first is None:
            return
        records = itertools.chain([first], records)
        self._start()
        self._check_replay(batch_id)
        done = self._committed_records(batch_id)
        if done is None:
            logger.info(
                "batch_skipped writer=%s batch=%d committed=%d", self.name, batch_id, self._marker["batch_id"]
            )
            return
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
        except KafkaException:
            raise  # write() aborts, and writes the batch again or fails it
        except BaseException:  # the records' source failed (e.g. a Spark job): leave nothing open
            self._abort(batch_id, self.clock() + self.commit_timeout)
            raise
        logger.info("batch_committed writer=%s batch=%d records=%d", self.name, batch_id, self._written)

    def _abort(self, batch_id: int, deadline: float) -> bool:
        """Abort the open transaction, retrying a timeout (the broker is away) until
        ``deadline``; whether the producer can go on."""
        if self._producer is None:
            return False
        try:
            self._retrying(self._producer.abort_transaction, deadline)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if error.code() != KafkaError._STATE:  # _STATE: no transaction was open
                logger.warning("abort_failed writer=%s batch=%d error=%s", self.name, batch_id, error.str())
                return False
        self._failed.clear()
        return True

    def _wait(self, deadline: float) -> float:
        """Seconds one blocking call may take: the commit timeout, or less near ``deadline``."""
        return max(1.0, min(self.commit_timeout, deadline - self.clock()))

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
        # a timed-out commit is committed again; abortable or fatal: write() decides
        self._retrying(self._producer.commit_transaction, self.clock() + self.outage_seconds)
        self._marker = marker
        self._written += records
        if partial is not None:
            logger.info("transaction_committed writer=%s batch=%d records=%d", self.name, batch_id, records)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.flush(30)
            self._producer = None
