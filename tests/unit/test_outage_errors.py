"""Which Kafka errors the transactional writer rides out (an outage: abort, and write the
batch again) and which fail the batch at once. The errors are librdkafka's own
``KafkaError`` values with the flags librdkafka sets on them; the producer is a real one
that never reaches a broker (only its delivery reports are served)."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError

from driftline.kafka.transactional import TransactionalBatchWriter


@pytest.fixture
def writer():
    from confluent_kafka import Producer

    w = TransactionalBatchWriter(bootstrap="127.0.0.1:1", topic="t", markers_topic="m", name="unit")
    w._producer = Producer({"bootstrap.servers": "127.0.0.1:1"})
    yield w
    w._producer = None


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        # the broker is away
        (KafkaError(KafkaError._MSG_TIMED_OUT, "timed out", txn_requires_abort=True), True),
        (KafkaError(KafkaError._TIMED_OUT, "flush timed out", retriable=True), True),
        # records lost in the outage broke the sequence (the clean-clone failure of 728a1a1 and 08bd214)
        (
            KafkaError(
                KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "skipped sequence numbers", txn_requires_abort=True
            ),
            True,
        ),
        (KafkaError(KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER, "skipped sequence numbers", fatal=True), True),
        (KafkaError(KafkaError.UNKNOWN_PRODUCER_ID, "unknown producer id", fatal=True), True),
        (KafkaError(KafkaError._GAPLESS_GUARANTEE, "gap-less", txn_requires_abort=True), True),
        # another writer took over the transactional.id: never written again
        (KafkaError(KafkaError.PRODUCER_FENCED, "fenced", fatal=True), False),
        (KafkaError(KafkaError._FENCED, "fenced", fatal=True), False),
        (KafkaError(KafkaError.INVALID_PRODUCER_EPOCH, "epoch", fatal=True), False),
        # the records or the rights: the same on every attempt
        (KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large"), False),
        (KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED, "denied", txn_requires_abort=True), False),
        (KafkaError(KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED, "denied", fatal=True), False),
    ],
    ids=lambda v: v.name() if isinstance(v, KafkaError) else str(v),
)
def test_an_error_is_an_outage_only_when_writing_again_can_mend_it(writer, error, outage) -> None:
    assert writer._outage(error) is outage


@pytest.mark.parametrize(
    ("delivery_errors", "outage"),
    [
        ({KafkaError._MSG_TIMED_OUT}, True),
        ({KafkaError._MSG_TIMED_OUT, KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER}, True),
        ({KafkaError._MSG_TIMED_OUT, KafkaError.MSG_SIZE_TOO_LARGE}, False),  # one record can never go
        (set(), False),  # no report says why: not assumed to be an outage
    ],
)
def test_failed_deliveries_count_as_an_outage_only_when_every_one_was(
    writer, delivery_errors, outage
) -> None:
    writer._failed = set(delivery_errors)
    error = KafkaError(KafkaError._INCONSISTENT, "3 message(s) failed delivery", txn_requires_abort=True)
    assert writer._outage(error) is outage


def test_admin_requests_wait_as_long_as_the_pipelines_socket_timeout():
    """``[kafka.client] "socket.timeout.ms"`` bounds how long ingest waits for an
    unreachable broker (tests/e2e/test_cli.py sets 2 s); a later layer wins."""
    from driftline.kafka.clients import DEFAULT_REQUEST_TIMEOUT, request_timeout

    assert request_timeout({"socket.timeout.ms": 2000}) == 2.0
    assert request_timeout({"socket.timeout.ms": 2000}, {"socket.timeout.ms": 45000}) == 45.0
    assert request_timeout({"acks": "all"}, None) == DEFAULT_REQUEST_TIMEOUT == 30.0
