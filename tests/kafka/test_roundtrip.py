"""Produce framed records to the real broker and read them back unchanged."""

import pytest

from driftline.avro.codec import AvroDecoder, AvroEncoder
from driftline.avro.registry import FileSchemaRegistry
from driftline.demo import SignalGenerator
from driftline.kafka.clients import (
    DeliveryReport,
    TopicSpec,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
)
from driftline.kafka.reading import read_topic
from tests.conftest import SCHEMAS

pytestmark = pytest.mark.kafka
REGISTRY = FileSchemaRegistry(SCHEMAS)


def test_framed_round_trip_through_the_broker_with_evolution(kafka_bootstrap, topic_prefix) -> None:
    topic = topic_prefix + "payments"
    assert ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 3)]) == [topic]
    assert ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 3)]) == []  # idempotent
    v1, v2 = REGISTRY.get("payments", 1), REGISTRY.get("payments", 2)
    old = SignalGenerator("payments", seed=1, exclude_fields=("channel",)).records(400)
    new = SignalGenerator("payments", seed=2).records(400, first_index=400)
    producer, report = make_producer(kafka_bootstrap), DeliveryReport()
    for record in old:
        produce(producer, topic, value=AvroEncoder(v1).encode(record.value), on_delivery=report)
    for record in new:
        produce(producer, topic, value=AvroEncoder(v2).encode(record.value), on_delivery=report)
    assert producer.flush(30) == 0
    assert (report.delivered[topic], sum(report.failed.values())) == (800, 0)

    messages = read_topic(kafka_bootstrap, topic)
    assert len(messages) == 800
    decoder = AvroDecoder(REGISTRY, reader=v2)
    by_id = {d.value["transaction_id"]: d.value for d in map(decoder.decode, (m.value() for m in messages))}
    assert len(by_id) == 800
    for record in old:
        assert by_id[record.value["transaction_id"]] == {**record.value, "channel": None}
    for record in new:
        assert by_id[record.value["transaction_id"]] == record.value
    ids = {m.value()[1:5] for m in messages}
    assert ids == {v1.schema_id.to_bytes(4, "big"), v2.schema_id.to_bytes(4, "big")}
