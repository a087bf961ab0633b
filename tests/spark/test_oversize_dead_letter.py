"""A bad record close to Kafka's 1 MB message limit is still dead-lettered.

Its dead letter (the original bytes plus a dozen headers) no longer fits one message:
before the cut, the batch failed on the producer's MSG_SIZE_TOO_LARGE, and so did every
replay of it. Now the topic gets the first bytes with the original's size and SHA-256,
and the ``dead_letters`` table keeps every byte.
"""

from __future__ import annotations

import hashlib

import pytest

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.kafka.dead_letter import DEFAULT_MAX_MESSAGE_BYTES, DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import ReasonCode
from driftline.spark.job import run
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]
BIG = 50  # offset of the oversize record
SIZE = 999_900  # fits the producer's 1,000,000-byte limit alone, not with a dead letter's headers


def test_a_dead_letter_near_the_message_limit_is_cut_and_the_table_keeps_it_whole(
    spark, kafka_bootstrap, topic_prefix, tmp_path
) -> None:
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    records = [r.value for r in SignalGenerator("payments", seed=5).records(100)]
    frames = encode_mix("payments", records, {})
    frames[BIG] = b"\x7b" + bytes(range(256)) * (SIZE // 256) + b"!" * (SIZE % 256 - 1)  # no magic byte
    assert len(frames[BIG]) == SIZE
    produce_frames(kafka_bootstrap, config.topic("payments"), frames, [b"k"] * 100, partitions=1)

    summary = run(spark, config, sources=["payments"], max_records_per_batch=100).as_dict()["sources"][
        "payments"
    ]
    assert summary["read"] == 100 and summary["reconciles"] is True
    assert summary["by_reason"].get("NOT_FRAMED") == 1

    [letter] = [
        letter
        for letter in (DeadLetter.from_message(m.value(), m.headers())
                       for m in read_topic(kafka_bootstrap, config.dead_letter_topic("payments")))
        if letter.reason is ReasonCode.NOT_FRAMED
    ]  # fmt: skip
    assert (letter.partition, letter.offset) == (0, BIG)
    assert letter.original_size == SIZE and letter.original_sha256 == hashlib.sha256(frames[BIG]).hexdigest()
    assert frames[BIG].startswith(letter.raw) and DEFAULT_MAX_MESSAGE_BYTES - 4_000 < len(letter.raw) < SIZE

    table = read_delta(
        config.path(config.warehouse_dir) / "dead_letters", columns=["reason", "_offset", "_raw"]
    )
    [raw] = table.loc[(table["reason"] == "NOT_FRAMED") & (table["_offset"] == BIG), "_raw"]
    assert bytes(raw) == frames[BIG]
