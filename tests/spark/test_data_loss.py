"""What only a real broker allows: records removed below the job's position, or a topic
deleted and recreated under the job, stop ``driftline run`` with a message and exit
code 7 (DATA_LOSS); with ``fail_on_data_loss = false`` the run goes on and counts what
it skipped."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.kafka.clients import make_admin
from driftline.testing.live import wait_until
from tests.conftest import pipeline_copy
from tests.spark.helpers import driftline_run, encode_mix, produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]


def _produce(bootstrap: str, topic: str, count: int, first: int) -> None:
    records = [r.value for r in SignalGenerator("payments", seed=first).records(count, first_index=first)]
    produce_frames(bootstrap, topic, encode_mix("payments", records, {}), [None] * count, partitions=1)


def _summary(run) -> dict:
    [line] = [text for text in run.stdout.splitlines() if text.startswith('{"pipeline"')]
    return json.loads(line)["sources"]["payments"]


def _delete_below(admin: AdminClient, topic: str, partition: int, offset: int) -> None:
    for future in admin.delete_records([TopicPartition(topic, partition, offset)]).values():
        future.result(30)


def _pipeline(tmp_path, kafka_bootstrap, topic_prefix, fail_on_data_loss: bool):
    replace = {} if fail_on_data_loss else {
        f'topic_prefix = "{topic_prefix}"': f'topic_prefix = "{topic_prefix}"\nfail_on_data_loss = false'
    }  # fmt: skip
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, replace=replace)
    config = load_pipeline(pipeline)
    assert config.kafka.fail_on_data_loss is fail_on_data_loss
    return pipeline, config


def _first_run(pipeline, kafka_bootstrap, topic: str) -> None:
    _produce(kafka_bootstrap, topic, 400, first=0)
    first = driftline_run(pipeline, "--source", "payments")
    assert first.returncode == 0, first.stderr[-3000:]
    assert _summary(first)["read"] == 400
    assert _summary(first)["lost"] == 0


def _data_loss_message(run, topic: str, checkpoint) -> str:
    assert run.returncode == 7, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    message = [line for line in run.stderr.splitlines() if line.startswith("driftline: error:")]
    assert len(message) == 1, run.stderr[-3000:]
    assert "source 'payments': records the job had not read are gone from Kafka" in message[0]
    assert f"{topic}-0" in message[0] and str(checkpoint) in message[0]
    assert "fail_on_data_loss = false" in message[0]
    return message[0]


@pytest.mark.parametrize("fail_on_data_loss", [True, False])
def test_records_deleted_before_they_were_read(kafka_bootstrap, topic_prefix, tmp_path, fail_on_data_loss):
    pipeline, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, fail_on_data_loss)
    topic = config.topic("payments")
    _first_run(pipeline, kafka_bootstrap, topic)

    _produce(kafka_bootstrap, topic, 600, first=400)  # unread: offsets 400-999
    _delete_below(make_admin(kafka_bootstrap), topic, 0, 550)  # 150 unread records are gone
    second = driftline_run(pipeline, "--source", "payments")
    checkpoint = config.path(config.state_dir) / "checkpoints" / "demo" / "payments"
    (tmp_path / "second.stderr").write_text(second.stderr)
    if fail_on_data_loss:
        _data_loss_message(second, topic, checkpoint)
    else:
        assert second.returncode == 0, second.stderr[-3000:]
        assert _summary(second)["read"] == 1000 - 150, "the records still in Kafka are read, once"
        assert _summary(second)["lost"] == 150, "the deleted offsets 400-549 are counted as lost"
        assert "records_lost source=payments" in second.stderr and "count=150" in second.stderr


@pytest.mark.parametrize("fail_on_data_loss", [True, False])
def test_topic_deleted_and_recreated_under_the_job(
    kafka_bootstrap, topic_prefix, tmp_path, fail_on_data_loss
):
    pipeline, config = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, fail_on_data_loss)
    topic = config.topic("payments")
    _first_run(pipeline, kafka_bootstrap, topic)  # the checkpoint stands at offset 400

    admin = make_admin(kafka_bootstrap)
    for future in admin.delete_topics([topic]).values():
        future.result(30)
    wait_until(lambda: topic not in admin.list_topics(timeout=10).topics, 60, f"{topic} to be deleted")
    _produce(kafka_bootstrap, topic, 250, first=1000)  # the new topic: offsets 0-249, below 400
    second = driftline_run(pipeline, "--source", "payments")
    (tmp_path / "second.stderr").write_text(second.stderr)
    checkpoint = config.path(config.state_dir) / "checkpoints" / "demo" / "payments"
    if fail_on_data_loss:
        message = _data_loss_message(second, topic, checkpoint)
        assert "PARTITION_OFFSET_CHANGED" in message and "400 -> 250" in message, message
        assert f"remove {checkpoint}" in message
    else:
        assert second.returncode == 0, second.stderr[-3000:]
        summary = _summary(second)
        assert summary["reconciles"] is True
        assert summary["offsets_reset"] == 1, "the one partition whose offsets went back is counted"
        assert summary["read"] == 400, "Spark's source skips the new log below the end it planned (250)"
        assert summary["lost"] == 250, "and the 250 records it skipped are counted"
        assert "offsets_reset source=payments" in second.stderr and "from 400 to 250" in second.stderr
