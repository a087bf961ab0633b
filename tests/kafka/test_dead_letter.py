"""Dead letters always fit one Kafka message: the cut is visible and the original findable."""

import hashlib

import pytest
from confluent_kafka import KafkaException

from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer
from driftline.kafka.dead_letter import DEFAULT_MAX_MESSAGE_BYTES, MESSAGE_LIMIT, DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import ReasonCode

pytestmark = pytest.mark.kafka


def _letter(raw: bytes, message: str = "bad frame") -> DeadLetter:
    return DeadLetter(
        raw=raw, reason=ReasonCode.NOT_FRAMED, message=message, pipeline="p", source="s",
        topic="t", partition=3, offset=1234567, schema_id=None, batch_id=42,
    )  # fmt: skip


def test_a_small_dead_letter_is_left_whole() -> None:
    letter = _letter(b"x" * 1000)
    assert letter.fitted(DEFAULT_MAX_MESSAGE_BYTES, b"key") is letter
    names = {name for name, _ in letter.headers()}
    assert not names & {"driftline.error.original.size", "driftline.error.original.sha256"}


@pytest.mark.parametrize("size", [999_000, 3_000_000])
def test_an_oversize_dead_letter_is_cut_and_still_produced(kafka_bootstrap, topic_prefix, size) -> None:
    raw = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    key = b"entity-17"
    letter = _letter(raw, message="m" * 50_000)
    producer = make_producer(kafka_bootstrap)
    with pytest.raises(KafkaException, match="MSG_SIZE_TOO_LARGE"):  # what the job hit before the cut
        producer.produce("any", value=letter.raw, key=key, headers=letter.headers())

    topic = topic_prefix + "dlq"
    ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 1)])
    fitted = letter.fitted(DEFAULT_MAX_MESSAGE_BYTES, key)
    producer.produce(topic, value=fitted.raw, key=key, headers=fitted.headers())
    assert producer.flush(30) == 0

    [message] = read_topic(kafka_bootstrap, topic)
    back = DeadLetter.from_message(message.value(), message.headers())
    assert back.original_size == size and back.original_sha256 == hashlib.sha256(raw).hexdigest()
    assert raw.startswith(back.raw) and DEFAULT_MAX_MESSAGE_BYTES - 4_000 < len(back.raw) < size
    assert len(back.message) == MESSAGE_LIMIT and back.message.endswith("\u2026")
    assert (back.topic, back.partition, back.offset, back.batch_id) == ("t", 3, 1234567, 42)


def test_a_huge_key_is_hashed_so_the_dead_letter_still_fits(kafka_bootstrap, topic_prefix) -> None:
    from driftline.kafka.dead_letter import fit_key

    key = b"k" * 999_950
    assert fit_key(b"card-1", DEFAULT_MAX_MESSAGE_BYTES) == b"card-1"
    small = fit_key(key, DEFAULT_MAX_MESSAGE_BYTES)
    assert small == hashlib.sha256(key).hexdigest().encode()
    letter = _letter(b"x" * 10_000).fitted(DEFAULT_MAX_MESSAGE_BYTES, small)
    topic = topic_prefix + "dlq"
    ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 1)])
    producer = make_producer(kafka_bootstrap)
    producer.produce(topic, value=letter.raw, key=small, headers=letter.headers())
    assert producer.flush(30) == 0
    [message] = read_topic(kafka_bootstrap, topic)
    assert message.key() == small and message.value() == b"x" * 10_000
