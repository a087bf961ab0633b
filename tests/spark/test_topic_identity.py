"""A checkpoint remembers the Kafka topic ids it was made for (a record read and written through
Hadoop's FileSystem, hence the session)."""

import json
import logging

import pytest

from driftline.errors import DataLossError
from driftline.spark.topic_identity import RECORD, check_topic_identity

pytestmark = pytest.mark.spark


def test_first_use_records_the_ids_and_the_same_topic_passes(spark, tmp_path):
    checkpoint = tmp_path / "cp"
    check_topic_identity(spark, "s", checkpoint, {"signals.s": "A"}, fail_on_data_loss=True)
    assert json.loads((checkpoint / RECORD).read_text()) == {"signals.s": "A"}
    check_topic_identity(spark, "s", checkpoint, {"signals.s": "A"}, fail_on_data_loss=True)


def test_a_recreated_topic_stops_the_job_naming_topic_checkpoint_and_the_way_out(spark, tmp_path):
    checkpoint = tmp_path / "cp"
    check_topic_identity(spark, "s", checkpoint, {"signals.s": "A"}, fail_on_data_loss=True)
    with pytest.raises(DataLossError) as stopped:
        check_topic_identity(spark, "s", checkpoint, {"signals.s": "B"}, fail_on_data_loss=True)
    message = str(stopped.value)
    assert "topic 'signals.s' is not the topic the checkpoint" in message
    assert "topic id A then, B now" in message and f"remove {checkpoint}" in message
    assert json.loads((checkpoint / RECORD).read_text()) == {"signals.s": "A"}, "a refusal changes nothing"


def test_with_fail_on_data_loss_false_it_warns_and_adopts_the_new_topic(spark, tmp_path, caplog):
    checkpoint = tmp_path / "cp"
    check_topic_identity(spark, "s", checkpoint, {"signals.s": "A"}, fail_on_data_loss=False)
    with caplog.at_level(logging.WARNING, logger="driftline.spark.topic_identity"):
        check_topic_identity(spark, "s", checkpoint, {"signals.s": "B"}, fail_on_data_loss=False)
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        f"topic_recreated source=s topic=signals.s id_then=A id_now=B checkpoint={checkpoint}"
    ]
    assert json.loads((checkpoint / RECORD).read_text()) == {"signals.s": "B"}
