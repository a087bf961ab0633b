"""Encode / decode with framing: round trips, evolution, and bytes that must not crash."""

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.avro.codec import AvroDecoder, AvroEncoder
from driftline.avro.framing import frame
from driftline.avro.registry import FileSchemaRegistry
from driftline.avro.validation import RecordValidator
from driftline.quality.reasons import ReasonCode
from driftline.testing.strategies import records_for
from tests.conftest import SCHEMAS

REGISTRY = FileSchemaRegistry(SCHEMAS)
SUBJECTS = [(s, v) for s in REGISTRY.subjects() for v in REGISTRY.versions(s)]
DECODE_REASONS = {ReasonCode.NOT_FRAMED, ReasonCode.UNKNOWN_SCHEMA, ReasonCode.DECODE_FAILED}


@pytest.mark.parametrize(("subject", "version"), SUBJECTS)
@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_record_the_schema_accepts_round_trips_unchanged(subject, version, data) -> None:
    writer = REGISTRY.get(subject, version)
    record = data.draw(records_for(writer.definition))
    checked = RecordValidator(writer).validate(record, raw=b"")
    assert checked.ok, checked
    framed = AvroEncoder(writer).encode(checked.value)
    assert framed[:5] == struct.pack(">bI", 0, writer.schema_id)
    decoded = AvroDecoder(REGISTRY, reader=writer).decode(framed)
    assert decoded.ok, decoded
    assert decoded.value == record


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_the_decoder(data: bytes) -> None:
    outcome = AvroDecoder(REGISTRY, reader=REGISTRY.get("payments")).decode(data)
    assert not outcome.ok  # 300 random bytes are not a framed record with a known id
    assert outcome.reason in DECODE_REASONS
    assert outcome.raw == data


@pytest.mark.parametrize("subject", REGISTRY.subjects())
@settings(max_examples=300)
@given(body=st.binary(max_size=200))
def test_random_body_under_a_known_id_is_data_not_an_exception(subject, body: bytes) -> None:
    writer = REGISTRY.get(subject)
    framed = frame(writer.schema_id, body)
    outcome = AvroDecoder(REGISTRY, reader=writer).decode(framed)
    if outcome.ok:  # the bytes happened to be a valid encoding: it must re-encode to them
        assert AvroEncoder(writer).encode(outcome.value) == framed
    else:
        assert outcome.reason is ReasonCode.DECODE_FAILED
        assert outcome.raw == framed
        assert f"schema id {writer.schema_id}" in outcome.detail


def _payment(**extra):
    from datetime import UTC, datetime

    return {
        "transaction_id": "tx-1", "card_id": "card-1",
        "event_time": datetime(2026, 1, 5, 8, 0, 0, 123000, tzinfo=UTC),
        "amount": 12.5, "currency": "EUR", "merchant_category": "grocery", "country": "DE",
        "is_online": False, "installments": 1, "risk_score": None, **extra,
    }  # fmt: skip


def test_old_writer_new_reader_fills_the_added_field_with_its_default() -> None:
    v1, v2 = REGISTRY.get("payments", 1), REGISTRY.get("payments", 2)
    framed = AvroEncoder(v1).encode(_payment())
    assert framed[1:5] == v1.schema_id.to_bytes(4, "big")
    decoded = AvroDecoder(REGISTRY, reader=v2).decode(framed)
    assert decoded.ok
    assert decoded.value == _payment(channel=None)


def test_new_writer_old_reader_drops_the_added_field() -> None:
    v1, v2 = REGISTRY.get("payments", 1), REGISTRY.get("payments", 2)
    decoded = AvroDecoder(REGISTRY, reader=v1).decode(AvroEncoder(v2).encode(_payment(channel="wallet")))
    assert decoded.ok
    assert decoded.value == _payment()


def test_unknown_schema_id_and_trailing_bytes_are_reported() -> None:
    writer = REGISTRY.get("sensors")
    good = AvroEncoder(writer).encode(
        {"sensor_id": "s", "site": "a", "event_time": 0, "temperature_c": 1.0, "vibration_mm_s": 2.0,
         "pressure_kpa": None, "rpm": 3, "status": "OK"}
    )  # fmt: skip
    decoder = AvroDecoder(REGISTRY, reader=writer)
    unknown = decoder.decode(b"\x00\x7f\xff\xff\xff" + good[5:])
    assert (unknown.reason, unknown.detail) == (
        ReasonCode.UNKNOWN_SCHEMA,
        "schema id 2147483647 is not registered",
    )
    trailing = decoder.decode(good + b"\x02")
    assert trailing.reason is ReasonCode.DECODE_FAILED
    assert "1 trailing bytes" in trailing.detail
    truncated = decoder.decode(good[:-3])
    assert truncated.reason is ReasonCode.DECODE_FAILED


def test_shipped_schema_ids_are_distinct_and_not_the_corrupt_frame_id() -> None:
    ids = [REGISTRY.get(s, v).schema_id for s, v in SUBJECTS]
    assert len(set(ids)) == len(ids)
    assert 0x7FFFFFFF not in ids
    assert REGISTRY.by_id(0x7FFFFFFF) is None
