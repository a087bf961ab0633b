"""What only a real broker allows: records removed below the job's position, or a topic
deleted and recreated under the job, stop ``driftline run`` with a message and exit
code 7 (DATA_LOSS); with ``fail_on_data_loss = false`` the run goes on and counts what
it skipped.

The first run of each test and the runs that go on are in-process (the session's
SparkSession); the runs that must stop go through the CLI, where the user sees them.
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import TopicPartition

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.errors import DataLossError
from driftline.kafka.clients import make_admin
from driftline.spark.job import checkpoint_of, run
from driftline.testing.live import wait_until
from tests.conftest import NO_LINGER, pipeline_copy
from tests.spark.helpers import driftline_run, encode_mix, produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]


def _produce(bootstrap: str, topic: str, count: int, first: int) -> None:
    records = [r.value for r in SignalGenerator("payments", seed=first).records(count, first_index=first)]
    produce_frames(bootstrap, topic, encode_mix("payments", records, {}), [None] * count, partitions=1)


def _pipeline(tmp_path, kafka_bootstrap, topic_prefix, fail_on_data_loss: bool):
    replace = dict(NO_LINGER)  # a run whose query fails exits at once
    if not fail_on_data_loss:
        replace[f'topic_prefix = "{topic_prefix}"'] = (
            f'topic_prefix = "{topic_prefix}"\nfail_on_data_loss = false'
        )
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, replace=replace)
    config = load_pipeline(pipeline)
    assert (
        config.kafka.fail_on_data_loss is fail_on_data_loss and config.metrics.linger_on_failure.seconds == 0
    )
    return pipeline, config


def _payments(spark, config) -> dict:
    """The run summary of the payments source: totals over every batch of its checkpoint."""
    return run(spark, config, sources=["payments"]).as_dict()["sources"]["payments"]


def _first_run(spark, config, kafka_bootstrap) -> None:
    _produce(kafka_bootstrap, config.topic("payments"), 400, first=0)
    first = _payments(spark, config)
    assert (first["read"], first["lost"]) == (400, 0)


def _stopped_with_one_message(completed) -> str:
    assert completed.returncode == 7, completed.stderr[-3000:]
    assert "Traceback" not in completed.stderr
    assert "Using incubator modules" not in completed.stderr, "the JVM's banner is filtered out"
    message = [line for line in completed.stderr.splitlines() if line.startswith("driftline: error:")]
    assert len(message) == 1, completed.stderr[-3000:]
    return message[0]


def _delete_below(kafka_bootstrap: str, topic: str, offset: int) -> None:
    admin = make_admin(kafka_bootstrap)  # kept alive until its futures are done
    for future in admin.delete_records([TopicPartition(topic, 0, offset)]).values():
        future.result(30)


def _recreate(kafka_bootstrap: str, topic: str, records: int) -> None:
    admin = make_admin(kafka_bootstrap)
    for future in admin.delete_topics([topic]).values():
        future.result(30)
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, 60, f"{topic} to be deleted")
    _produce(kafka_bootstrap, topic, records, first=1000)


def test_records_deleted_before_they_were_read_stop_driftline_run(
    spark, kafka_bootstrap, topic_prefix, tmp_path
):
    pipeline, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, True)
    topic = config.topic("payments")
    _first_run(spark, config, kafka_bootstrap)
    _produce(kafka_bootstrap, topic, 600, first=400)  # unread: offsets 400-999
    _delete_below(kafka_bootstrap, topic, 550)  # 150 unread records are gone
    message = _stopped_with_one_message(driftline_run(pipeline, "--source", "payments"))
    assert "source 'payments': records the job had not read are gone from Kafka" in message
    assert f"{topic}-0" in message and str(checkpoint_of(config, "payments")) in message
    assert "fail_on_data_loss = false" in message


def test_records_deleted_with_fail_on_data_loss_false_are_counted(spark, kafka_bootstrap, topic_prefix, tmp_path,
                                                                 caplog):  # fmt: skip
    _, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, False)
    topic = config.topic("payments")
    _first_run(spark, config, kafka_bootstrap)
    _produce(kafka_bootstrap, topic, 600, first=400)
    _delete_below(kafka_bootstrap, topic, 550)
    with caplog.at_level(logging.WARNING, logger="driftline.spark.data_loss"):
        second = _payments(spark, config)
    assert second["read"] == 400 + 600 - 150, (
        "the records still in Kafka are read, once (totals of both runs)"
    )
    assert second["lost"] == 150, "the deleted offsets 400-549 are counted as lost"
    assert second["reconciles"] is True and second["offsets_reset"] == 0
    [warning] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("records_lost")]
    assert f"{topic}[0]@400 count=150" in warning


def test_a_topic_recreated_past_the_checkpoint_stops_driftline_run(
    spark, kafka_bootstrap, topic_prefix, tmp_path
):
    """The new topic has 500 records, past the checkpointed 400: Spark cannot tell, the
    topic id recorded with the checkpoint can."""
    pipeline, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, True)
    topic, checkpoint = config.topic("payments"), checkpoint_of(config, "payments")
    _first_run(spark, config, kafka_bootstrap)
    _recreate(kafka_bootstrap, topic, 500)
    message = _stopped_with_one_message(driftline_run(pipeline, "--source", "payments"))
    assert (
        f"source 'payments': topic '{topic}' is not the topic the checkpoint {checkpoint} was made for"
        in message
    )
    assert f"To start afresh remove {checkpoint}" in message


def test_a_topic_recreated_below_the_checkpoint_stops_the_job(spark, kafka_bootstrap, topic_prefix, tmp_path):
    _, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, True)
    _first_run(spark, config, kafka_bootstrap)
    _recreate(kafka_bootstrap, config.topic("payments"), 250)
    with pytest.raises(DataLossError, match="was deleted and recreated since"):
        run(spark, config, sources=["payments"])
    assert spark.streams.active == []


def test_a_topic_recreated_with_fail_on_data_loss_false_goes_on_and_counts(spark, kafka_bootstrap, topic_prefix,
                                                                          tmp_path, caplog):  # fmt: skip
    _, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, False)
    topic = config.topic("payments")
    _first_run(spark, config, kafka_bootstrap)
    _recreate(kafka_bootstrap, topic, 250)  # the new topic: offsets 0-249, below 400
    with caplog.at_level(logging.WARNING, logger="driftline.spark"):
        second = _payments(spark, config)
    logged = [r.getMessage() for r in caplog.records]
    assert any(m.startswith(f"topic_recreated source=payments topic={topic}") for m in logged), logged
    assert any(m.startswith("offsets_reset source=payments") and "from 400 to 250" in m for m in logged), (
        logged
    )
    assert second["reconciles"] is True
    assert second["offsets_reset"] == 1, "the one partition whose offsets went back is counted"
    assert second["read"] == 400, (
        "the second run read nothing: Spark skips the new log below the end it planned"
    )
    assert second["lost"] == 250, "and the 250 records it skipped are counted"


def test_a_source_of_a_shared_query_counts_only_its_own_topics_offsets(spark, tmp_path):
    """In a query several sources share, the offset log holds every topic's offsets; a
    source's loss counter reads only its own topic's, so another source's progress is
    never taken for this one's lost records."""
    from driftline.spark.data_loss import LossCounter

    checkpoint = tmp_path / "checkpoint"
    (checkpoint / "offsets").mkdir(parents=True)
    (checkpoint / "offsets" / "0").write_text(
        'v1\n{"batchWatermarkMs":0}\n{"a":{"0":10,"1":4},"b":{"0":99}}\n'
    )
    mine = LossCounter("a", str(checkpoint), probe=None, topics=["a"])
    every = LossCounter("a", str(checkpoint), probe=None)
    assert mine._batch_end(spark, 0) == {("a", 0): 10, ("a", 1): 4}
    assert every._batch_end(spark, 0) == {("a", 0): 10, ("a", 1): 4, ("b", 0): 99}
    assert mine._batch_end(spark, 1) is None  # no such batch yet
