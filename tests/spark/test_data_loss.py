"""What only a real broker allows: records removed below the job's position stop ``driftline run`` with a message and exit code 7 (DATA_LOSS);
with ``fail_on_data_loss = false`` the run goes on."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from driftline.config import load_pipeline
from driftline.kafka.clients import make_admin
from driftline.testing import SignalGenerator
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


@pytest.mark.parametrize("fail_on_data_loss", [True, False])
def test_records_deleted_before_they_were_read(kafka_bootstrap, topic_prefix, tmp_path, fail_on_data_loss):
    replace = {} if fail_on_data_loss else {
        f'topic_prefix = "{topic_prefix}"': f'topic_prefix = "{topic_prefix}"\nfail_on_data_loss = false'
    }  # fmt: skip
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, replace=replace)
    config = load_pipeline(pipeline)
    assert config.kafka.fail_on_data_loss is fail_on_data_loss
    topic = config.topic("payments")
    _produce(kafka_bootstrap, topic, 400, first=0)
    first = driftline_run(pipeline, "--source", "payments")
    assert first.returncode == 0, first.stderr[-3000:]
    assert _summary(first)["read"] == 400

    _produce(kafka_bootstrap, topic, 600, first=400)  # unread: offsets 400-999
    _delete_below(make_admin(kafka_bootstrap), topic, 0, 550)  # 150 unread records are gone
    second = driftline_run(pipeline, "--source", "payments")
    checkpoint = config.path(config.state_dir) / "checkpoints" / "demo" / "payments"
    (tmp_path / "second.stderr").write_text(second.stderr)
    if fail_on_data_loss:
        assert second.returncode == 7, second.stderr[-3000:]
        assert "Traceback" not in second.stderr
        message = [line for line in second.stderr.splitlines() if line.startswith("driftline: error:")]
        assert len(message) == 1, second.stderr[-3000:]
        assert "source 'payments': records the job had not read are gone from Kafka" in message[0]
        assert f"{topic}-0" in message[0] and str(checkpoint) in message[0]
        assert "fail_on_data_loss = false" in message[0]
    else:
        assert second.returncode == 0, second.stderr[-3000:]
        assert _summary(second)["read"] == 1000 - 150, "the records still in Kafka are read, once"
