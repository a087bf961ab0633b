"""Consumer lag measured against the real broker: end offsets minus the query's position."""

from __future__ import annotations

import json

import pytest

from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer
from driftline.metrics import PipelineMetrics
from driftline.spark.monitoring import LaggingSource, LagMonitor, MetricsListener

pytestmark = [pytest.mark.kafka, pytest.mark.spark]  # the checkpoint is read through Hadoop FS


def _consumer(bootstrap):
    from confluent_kafka import Consumer

    return lambda **overrides: Consumer({"bootstrap.servers": bootstrap, "group.id": "lag-test", **overrides})


def test_lag_is_end_minus_processed_per_topic(spark, kafka_bootstrap, topic_prefix, tmp_path):
    topic = topic_prefix + "signals.s"
    ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 2)])
    producer = make_producer(kafka_bootstrap)
    for i in range(150):
        producer.produce(topic, value=b"x", partition=i % 2)  # 75 per partition
    assert producer.flush(30) == 0

    metrics = PipelineMetrics("p")
    listener = MetricsListener(metrics, {"p.s": "s"})
    checkpoint = tmp_path / "checkpoint"
    monitor = LagMonitor(spark, metrics, listener, [LaggingSource("s", (topic,), str(checkpoint))],
                         _consumer(kafka_bootstrap), bootstrap=kafka_bootstrap, interval=60)  # fmt: skip
    lag = lambda: metrics.registry.get_sample_value(  # noqa: E731
        "driftline_consumer_lag_records", {"pipeline": "p", "source": "s", "topic": topic}
    )
    try:
        # nothing processed and no checkpoint: everything is lag
        assert monitor.measure() == {("s", topic): 150} and lag() == 150
        # a restarted query: the checkpoint's offset log says where the next batch starts
        (checkpoint / "offsets").mkdir(parents=True)
        offsets = json.dumps({topic: {"0": 70, "1": 10}})
        (checkpoint / "offsets" / "3").write_text(f'v1\n{{"batchWatermarkMs":0}}\n{offsets}\n')
        assert monitor.measure() == {("s", topic): 5 + 65}
        # after a batch, the listener's last progress wins
        listener.processed["s"] = {(topic, 0): 75, (topic, 1): 74}
        assert monitor.measure() == {("s", topic): 1} and lag() == 1
    finally:
        monitor.stop()
