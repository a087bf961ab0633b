"""Exactly-once batches to Kafka: replays are skipped, interrupted batches are not doubled."""

from collections import Counter

import pytest

from driftline.kafka.reading import read_topic
from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter

pytestmark = pytest.mark.kafka


def _writer(bootstrap: str, prefix: str) -> TransactionalBatchWriter:
    return TransactionalBatchWriter(
        bootstrap=bootstrap,
        topic=prefix + "out",
        markers_topic=prefix + "markers",
        name=prefix + "writer",
        partitions=3,
    )


def _records(batch: int, n: int) -> list[OutgoingRecord]:
    keys = [f"b{batch}-r{i}".encode() for i in range(n)]
    return [OutgoingRecord(value=b"v" + k, key=k) for k in keys]


def _visible(bootstrap: str, topic: str) -> Counter:
    return Counter(m.key() for m in read_topic(bootstrap, topic, isolation="read_committed"))


def test_a_committed_batch_is_skipped_on_replay(kafka_bootstrap, topic_prefix) -> None:
    writer = _writer(kafka_bootstrap, topic_prefix)
    assert writer.write(0, _records(0, 200)) == 200
    assert writer.write(1, _records(1, 50)) == 50
    assert writer.write(1, _records(1, 50)) == 0  # same process, replayed batch
    restarted = _writer(kafka_bootstrap, topic_prefix)
    assert restarted.committed_batch == 1
    assert restarted.write(1, _records(1, 50)) == 0
    assert restarted.write(2, _records(2, 10)) == 10
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert sum(seen.values()) == 260 and set(seen.values()) == {1}


def test_an_interrupted_batch_is_written_again_without_doubles(kafka_bootstrap, topic_prefix) -> None:
    first = _writer(kafka_bootstrap, topic_prefix)
    assert first.write(0, _records(0, 100)) == 100
    # a crash mid-batch: records of batch 1 sent in an open transaction, never committed
    producer = first._producer
    producer.begin_transaction()
    for record in _records(1, 120)[:70]:
        producer.produce(first.topic, value=record.value, key=record.key)
    producer.flush(30)
    del producer

    restarted = _writer(kafka_bootstrap, topic_prefix)  # fences and aborts the open transaction
    assert restarted.committed_batch == 0
    written = restarted.write(1, _records(1, 120))
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert set(seen.values()) == {1}, "a record is visible twice"
    assert sum(seen.values()) == 220
    assert written == 120  # the aborted 70 are invisible, so all 120 are written again
    everything = Counter(m.key() for m in read_topic(kafka_bootstrap, topic_prefix + "out",
                                                       isolation="read_uncommitted"))  # fmt: skip
    assert sum(everything.values()) == 290, "the aborted records are still in the log, only hidden"


def test_an_empty_batch_writes_no_marker_and_markers_are_compacted(kafka_bootstrap, topic_prefix) -> None:
    from confluent_kafka.admin import ConfigResource

    from driftline.kafka.clients import make_admin

    writer = _writer(kafka_bootstrap, topic_prefix)
    assert writer.write(0, _records(0, 5)) == 5
    assert writer.write(1, iter([])) == 0  # nothing to write: no transaction, no marker
    assert writer.write(2, _records(2, 3)) == 3
    markers = [
        m.value() for m in read_topic(kafka_bootstrap, topic_prefix + "markers", isolation="read_committed")
    ]
    assert markers == [b'{"batch_id": 0}', b'{"batch_id": 2}']
    assert _writer(kafka_bootstrap, topic_prefix).committed_batch == 2
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_prefix + "markers")
    admin = make_admin(kafka_bootstrap)  # kept alive until the future resolves
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"
