"""Event times the job cannot window are dead letters (EVENT_TIME_OUT_OF_RANGE), never watermarks.

A 9999-12-31 sentinel, .NET's year-1 default, a time far beyond what Spark holds (which
does not even decode: DECODE_FAILED) and a clock two hours ahead of the record's Kafka timestamp arrive in the middle batch of
three; the last batch's ordinary records must not be late, and nothing may crash, in a
UTC driver and in one at UTC+9 (where 9999-12-31 is already year 10000).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import ReasonCode
from driftline.spark.job import run
from tests.conftest import REPO, pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

BAD = {
    110: 253_402_214_400_000,  # 9999-12-31T00:00:00Z
    130: -62_135_596_800_000,  # 0001-01-01T00:00:00Z
}
BEYOND_SPARK = (
    150  # 2**62 ms: from_avro cannot turn it into a timestamp at all, so the record does not decode
)
AHEAD = 170  # two hours ahead of the wall clock, hence of its Kafka timestamp


def _produce(bootstrap: str, topic: str) -> None:
    records = [r.value for r in SignalGenerator("payments", seed=5).records(300)]
    for index, millis in BAD.items():
        records[index] = {**records[index], "event_time": millis}
    records[BEYOND_SPARK] = {**records[BEYOND_SPARK], "event_time": 2**62}
    records[AHEAD] = {**records[AHEAD], "event_time": int((time.time() + 7200) * 1000)}
    produce_frames(bootstrap, topic, encode_mix("payments", records, {}), [None] * 300, partitions=1)


def _check(summary: dict, config) -> None:
    assert summary["read"] == 300 and summary["reconciles"] is True
    assert summary["by_reason"] == {"EVENT_TIME_OUT_OF_RANGE": 3, "DECODE_FAILED": 1}
    assert summary["late"] == 0, "the sentinel did not move the watermark past the last batch's records"
    assert summary["batches"] == 3
    letters = [DeadLetter.from_message(m.value(), m.headers())
               for m in read_topic(config.kafka.bootstrap_servers, config.dead_letter_topic("payments"))]  # fmt: skip
    by_offset = {letter.offset: letter for letter in letters}
    assert sorted(by_offset) == sorted([*BAD, AHEAD, BEYOND_SPARK])
    assert by_offset.pop(BEYOND_SPARK).reason is ReasonCode.DECODE_FAILED
    assert {letter.reason for letter in by_offset.values()} == {ReasonCode.EVENT_TIME_OUT_OF_RANGE}
    assert all(letter.reason.stage == "decode" for letter in letters)
    assert "outside 0001-01-02..9999-12-30 UTC" in by_offset[110].message
    assert "outside 0001-01-02..9999-12-30 UTC" in by_offset[130].message
    assert "more than 3600 s ahead of the record's Kafka timestamp" in by_offset[AHEAD].message


def test_out_of_range_event_times_are_dead_letters_in_a_utc_driver(
    spark, kafka_bootstrap, topic_prefix, tmp_path
):
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    _produce(kafka_bootstrap, config.topic("payments"))
    summary = run(spark, config, sources=["payments"], max_records_per_batch=100).as_dict()["sources"]
    _check(summary["payments"], config)


def test_and_in_a_driver_at_utc_plus_9(kafka_bootstrap, topic_prefix, tmp_path):
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix)
    config = load_pipeline(pipeline)
    _produce(kafka_bootstrap, config.topic("payments"))
    completed = subprocess.run(
        [sys.executable, "-m", "driftline.cli", "run", "-p", str(pipeline), "--until-idle", "--source", "payments",
         "--max-records-per-batch", "100"],
        capture_output=True, text=True, timeout=900, cwd=REPO, env={**os.environ, "TZ": "Asia/Tokyo"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    [line] = [text for text in completed.stdout.splitlines() if text.startswith('{"pipeline"')]
    _check(json.loads(line)["sources"]["payments"], config)
