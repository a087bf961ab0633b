"""Bulk decode: the values and reasons of the record-by-record reference, from one block."""

import io
import json
import logging
import math
import re
import struct
from datetime import UTC, date, datetime

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from driftline.errors import SchemaError
from driftline.kafka.bulk_decode import BulkDecoder, DecodedBatch, arrow_schema
from driftline.kafka.codec import AvroDecoder, AvroEncoder
from driftline.kafka.framing import frame
from driftline.kafka.registry import FileSchemaRegistry, RegisteredSchema, content_id, parse_schema
from driftline.testing import EXPECTED_REASON, FRAME_CORRUPTIONS, SignalGenerator, corrupt_frame
from driftline.testing.strategies import records_for
from tests.conftest import SCHEMAS

REGISTRY = FileSchemaRegistry(SCHEMAS)
SUBJECTS = [(s, v) for s in REGISTRY.subjects() for v in REGISTRY.versions(s)]
PAYMENTS_V1, PAYMENTS_V2 = REGISTRY.get("payments", 1), REGISTRY.get("payments", 2)
FALLBACK = "bulk_decode_fallback"
UTC_MICROS = pa.timestamp("us", tz="UTC")


def _generated(writer: RegisteredSchema, n: int, seed: int) -> list[dict]:
    """Seeded demo records holding exactly the writer's fields, floats already 32-bit.

    Avro ``float`` is 32 bits: clickstream's ``scroll_depth`` 0.728 reads back as
    0.7279999852180481, from fastavro and from the bulk path alike.
    """
    floats = {f["name"] for f in writer.definition["fields"] if "float" in json.dumps(f["type"])}

    def stored(name: str, value):
        return float(np.float32(value)) if name in floats and value is not None else value

    records = SignalGenerator(writer.subject, seed=seed).records(n)
    return [{k: stored(k, v) for k, v in r.value.items() if k in writer.field_names} for r in records]


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True  # garbage bodies can hold NaN doubles
    return a == b and type(a) is type(b)


def _without_addresses(detail: str | None) -> str | None:
    """fastavro's EOFError messages name a BytesIO object by its address."""
    return None if detail is None else re.sub(r" at 0x[0-9a-f]+", "", detail)


def _assert_like_reference(batch: DecodedBatch, values: list, registry, reader: RegisteredSchema) -> None:
    """Row by row: the same value, or the same reason and detail, as AvroDecoder."""
    reference = AvroDecoder(registry, reader)
    rows = batch.table.to_pylist()
    assert batch.table.schema == arrow_schema(reader)
    assert len(rows) == len(batch.ok) == len(batch.reasons) == len(batch.details) == len(values)
    for i, value in enumerate(values):
        expected = reference.decode(value)
        if expected.ok and _arrow_holds(expected.value, reader):
            assert batch.ok[i], (i, batch.reasons[i], batch.details[i])
            assert (batch.reasons[i], batch.details[i]) == (None, None)
            assert _same(rows[i], expected.value), (i, rows[i], expected.value)
            continue
        assert not batch.ok[i], (i, rows[i], expected)
        assert set(rows[i].values()) == {None}
        if expected.ok:  # fastavro read an int beyond 32 bits: no Arrow int32 holds it
            assert batch.reasons[i] == "DECODE_FAILED"
            assert "too large" in batch.details[i]
        else:
            assert batch.reasons[i] == expected.reason.value
            assert _without_addresses(batch.details[i]) == _without_addresses(expected.detail)


def _arrow_holds(record: dict, reader: RegisteredSchema) -> bool:
    try:
        pa.Table.from_pylist([record], schema=arrow_schema(reader))
    except pa.ArrowException:
        return False
    return True


def _fallbacks(caplog: pytest.LogCaptureFixture) -> int:
    return sum(r.getMessage().startswith(FALLBACK) for r in caplog.records)


@pytest.fixture(autouse=True)
def _log_fallbacks(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="driftline.kafka.bulk_decode")


# --- clean records: every demo subject and version, through the fast path --------------------------


@pytest.mark.parametrize(("subject", "version"), SUBJECTS)
def test_generated_records_decode_to_the_reference_values_without_fallback(subject, version, caplog) -> None:
    writer = REGISTRY.get(subject, version)
    records = _generated(writer, 500, seed=version)
    values = [AvroEncoder(writer).encode(r) for r in records]
    batch = BulkDecoder(REGISTRY, writer).decode(values)
    assert batch.ok.all()
    assert batch.table.to_pylist() == records
    assert batch.schema_ids == [writer.schema_id] * len(values)
    _assert_like_reference(batch, values, REGISTRY, writer)
    assert _fallbacks(caplog) == 0


@pytest.mark.parametrize(("subject", "version"), SUBJECTS)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_records_the_schema_accepts_decode_to_the_reference_values(
    subject, version, caplog, data
) -> None:
    writer = REGISTRY.get(subject, version)
    records = data.draw(st.lists(records_for(writer.definition), min_size=1, max_size=30))
    values = [AvroEncoder(writer).encode(r) for r in records]
    caplog.clear()
    batch = BulkDecoder(REGISTRY, writer).decode(values)
    assert _fallbacks(caplog) == 0  # extreme longs, timestamps and unicode stay on the fast path
    assert batch.table.to_pylist() == records
    _assert_like_reference(batch, values, REGISTRY, writer)


def test_timestamps_are_utc_microseconds_equal_to_fastavro_datetimes() -> None:
    record = _generated(PAYMENTS_V2, 1, seed=0)[0]
    record["event_time"] = datetime(2026, 1, 5, 8, 0, 0, 123000, tzinfo=UTC)
    batch = BulkDecoder(REGISTRY, PAYMENTS_V2).decode([AvroEncoder(PAYMENTS_V2).encode(record)])
    column = batch.table.column("event_time")
    assert column.type == UTC_MICROS
    assert column.cast(pa.int64()).to_pylist() == [1_767_600_000_123_000]
    assert (
        column.to_pylist()[0]
        == AvroDecoder(REGISTRY, PAYMENTS_V2)
        .decode(AvroEncoder(PAYMENTS_V2).encode(record))
        .value["event_time"]
    )


def test_an_empty_batch_is_an_empty_table() -> None:
    batch = BulkDecoder(REGISTRY, PAYMENTS_V2).decode([])
    assert batch.table.num_rows == 0
    assert batch.table.schema == arrow_schema(PAYMENTS_V2)
    assert (len(batch.ok), batch.reasons, batch.details, batch.schema_ids) == (0, [], [], [])


# --- schema evolution -------------------------------------------------------------------------------


def _interleaved_payments(n: int) -> tuple[list[bytes], list[dict], list[int]]:
    v1_records, v2_records = _generated(PAYMENTS_V1, n, seed=11), _generated(PAYMENTS_V2, n, seed=12)
    records = [v1_records[i] if i % 3 else v2_records[i] for i in range(n)]
    versions = [1 if i % 3 else 2 for i in range(n)]
    values = [
        AvroEncoder(PAYMENTS_V1 if v == 1 else PAYMENTS_V2).encode(r)
        for r, v in zip(records, versions, strict=True)
    ]
    return values, records, versions


def test_mixed_writer_versions_resolve_to_reader_v2_in_input_order(caplog) -> None:
    values, records, versions = _interleaved_payments(300)
    batch = BulkDecoder(REGISTRY, PAYMENTS_V2).decode(values)
    rows = batch.table.to_pylist()
    assert batch.ok.all()
    assert rows == [{**r, "channel": r.get("channel")} for r in records]
    assert [row["channel"] is None for row in rows] == [v == 1 for v in versions]
    assert [row["transaction_id"] for row in rows] == [r["transaction_id"] for r in records]
    assert batch.schema_ids == [(PAYMENTS_V1 if v == 1 else PAYMENTS_V2).schema_id for v in versions]
    _assert_like_reference(batch, values, REGISTRY, PAYMENTS_V2)
    assert _fallbacks(caplog) == 0


def test_mixed_writer_versions_resolve_to_reader_v1_dropping_the_new_field(caplog) -> None:
    values, records, _ = _interleaved_payments(300)
    batch = BulkDecoder(REGISTRY, PAYMENTS_V1).decode(values)
    assert batch.table.column_names == PAYMENTS_V1.field_names
    assert batch.table.to_pylist() == [{k: v for k, v in r.items() if k != "channel"} for r in records]
    _assert_like_reference(batch, values, REGISTRY, PAYMENTS_V1)
    assert _fallbacks(caplog) == 0


class _ProbeRegistry:
    """A registry over in-test schemas; ``by_id`` is all decoding asks of a registry."""

    def __init__(self, *definitions: dict) -> None:
        self.schemas = [
            RegisteredSchema("probe", v, content_id(d), d, parse_schema(d, origin=f"probe v{v}"))
            for v, d in enumerate(definitions, start=1)
        ]

    def by_id(self, schema_id: int) -> RegisteredSchema | None:
        return next((s for s in self.schemas if s.schema_id == schema_id), None)


def _probe_schema(*fields: dict) -> dict:
    return {"type": "record", "name": "Probe", "namespace": "test", "fields": list(fields)}


def test_added_fields_take_their_avro_defaults_and_promotions_apply() -> None:
    writer = _probe_schema({"name": "n", "type": "int"}, {"name": "x", "type": "float"})
    reader = _probe_schema(
        {"name": "n", "type": "long"},
        {"name": "x", "type": ["null", "double"], "default": None},
        {"name": "region", "type": "string", "default": "eu"},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}, "default": 1500},
        {"name": "tag", "type": "bytes", "default": "\u00ffA"},
    )
    registry = _ProbeRegistry(writer, reader)
    old, new = registry.schemas
    batch = BulkDecoder(registry, new).decode([AvroEncoder(old).encode({"n": 7, "x": 0.25})])
    assert batch.table.schema == pa.schema(
        [
            ("n", pa.int64()),
            ("x", pa.float64()),
            ("region", pa.string()),
            ("seen", UTC_MICROS),
            ("tag", pa.binary()),
        ]
    )
    # the Avro spec reads a timestamp-millis default as epoch millis and bytes as code points;
    # fastavro hands back the raw JSON values (1500, "\u00ffA") instead
    assert batch.table.to_pylist() == [
        {
            "n": 7,
            "x": 0.25,
            "region": "eu",
            "seen": datetime(1970, 1, 1, 0, 0, 1, 500000, tzinfo=UTC),
            "tag": b"\xffA",
        }
    ]


def test_a_reader_field_without_default_fails_the_whole_group_naming_the_field() -> None:
    writer = _probe_schema({"name": "n", "type": "int"})
    reader = _probe_schema({"name": "n", "type": "int"}, {"name": "required", "type": "string"})
    registry = _ProbeRegistry(writer, reader)
    old, new = registry.schemas
    values = [AvroEncoder(old).encode({"n": i}) for i in range(3)] + [
        AvroEncoder(new).encode({"n": 3, "required": "r"})
    ]
    batch = BulkDecoder(registry, new).decode(values)
    assert batch.ok.tolist() == [False, False, False, True]
    assert batch.reasons[:3] == ["DECODE_FAILED"] * 3
    assert batch.details[0] == (
        f"schema id {old.schema_id}: reader field 'required' is not in the writer schema and has no default"
    )
    assert batch.table.to_pylist()[3] == {"n": 3, "required": "r"}
    assert AvroDecoder(registry, new).decode(values[0]).reason.value == "DECODE_FAILED"


def test_a_writer_with_types_the_fast_path_cannot_read_still_decodes_by_reference(caplog) -> None:
    writer = _probe_schema(
        {"name": "n", "type": "int"}, {"name": "attrs", "type": {"type": "map", "values": "string"}}
    )
    reader = _probe_schema({"name": "n", "type": "int"})
    registry = _ProbeRegistry(writer, reader)
    old, new = registry.schemas
    values = [AvroEncoder(old).encode({"n": i, "attrs": {"k": str(i)}}) for i in range(4)]
    batch = BulkDecoder(registry, new).decode(values)
    assert batch.table.to_pylist() == [{"n": i} for i in range(4)]
    _assert_like_reference(batch, values, registry, new)


# --- damaged values ---------------------------------------------------------------------------------


FRAMING_DAMAGE = ("wrong_schema_id", "not_framed", "none")
BODY_DAMAGE = ("truncated", "garbage_body")


@pytest.mark.parametrize(
    "kinds", [FRAMING_DAMAGE, FRAMING_DAMAGE + BODY_DAMAGE], ids=["framing", "framing+body"]
)
@pytest.mark.parametrize("subject", REGISTRY.subjects())
def test_corrupt_values_get_the_reference_reason_and_their_neighbours_stay_intact(
    subject, kinds, caplog
) -> None:
    writer = REGISTRY.get(subject)
    records = _generated(writer, 400, seed=5)
    good = [AvroEncoder(writer).encode(r) for r in records]
    rng = np.random.default_rng(7)
    values, truth = list(good), {}
    for i in range(3, len(values) - 1, 9):  # a bad value every 9, with good ones on both sides
        kind = kinds[(i // 9) % len(kinds)]
        truth[i] = kind
        if kind in FRAME_CORRUPTIONS:
            values[i] = corrupt_frame(kind, good[i], rng)
        elif kind == "garbage_body":
            values[i] = frame(writer.schema_id, rng.bytes(int(rng.integers(1, 60))))
        else:
            values[i] = None
    batch = BulkDecoder(REGISTRY, writer).decode(values)
    _assert_like_reference(batch, values, REGISTRY, writer)
    rows = batch.table.to_pylist()
    for i, kind in truth.items():
        expected = EXPECTED_REASON.get(kind, "NOT_FRAMED" if kind == "none" else "DECODE_FAILED")
        assert (batch.ok[i], batch.reasons[i]) == (False, expected), (i, kind, batch.details[i])
    for i in set(range(len(values))) - set(truth):
        assert batch.ok[i] and rows[i] == records[i], i
    framed_ids = {"wrong_schema_id": 0x7FFFFFFF, "not_framed": None, "none": None}
    assert batch.schema_ids == [framed_ids.get(truth.get(i), writer.schema_id) for i in range(len(values))]
    # bad framing never reaches the block; damaged bodies send the block to the reference
    assert _fallbacks(caplog) == (0 if kinds == FRAMING_DAMAGE else 1)


def _container(definition: dict, bodies: list[bytes]) -> bytes:
    """A minimal Avro Object Container File: header, one block of ``bodies``, no codec."""

    def varint(n: int) -> bytes:
        n, out = n << 1, bytearray()
        while n > 0x7F:
            out.append(n & 0x7F | 0x80)
            n >>= 7
        return bytes([*out, n])

    def avro_bytes(b: bytes) -> bytes:
        return varint(len(b)) + b

    sync = bytes(range(16))
    meta = avro_bytes(b"avro.schema") + avro_bytes(json.dumps(definition).encode())
    block = b"".join(bodies)
    return (
        b"Obj\x01"
        + varint(1)
        + meta
        + varint(0)
        + sync
        + varint(len(bodies))
        + varint(len(block))
        + block
        + sync
    )


def test_polars_alone_misreads_a_block_holding_a_damaged_body_silently() -> None:
    """Why the guard exists: a body with a record's worth of trailing bytes shifts the rest."""
    bodies = [AvroEncoder(PAYMENTS_V2).encode_body(r) for r in _generated(PAYMENTS_V2, 4, seed=3)]
    damaged = [bodies[0], bodies[1] + bodies[2], bodies[2], bodies[3]]
    ids = pl.read_avro(io.BytesIO(_container(PAYMENTS_V2.definition, damaged)))["transaction_id"]
    ids_written = [r["transaction_id"] for r in _generated(PAYMENTS_V2, 4, seed=3)]
    assert ids.to_list() == [ids_written[0], ids_written[1], ids_written[2], ids_written[2]]  # no error

    values = [frame(PAYMENTS_V2.schema_id, body) for body in damaged]
    batch = BulkDecoder(REGISTRY, PAYMENTS_V2).decode(values)
    assert batch.ok.tolist() == [True, False, True, True]
    assert "trailing bytes" in batch.details[1]
    assert batch.table.column("transaction_id").to_pylist() == [
        ids_written[0],
        None,
        ids_written[2],
        ids_written[3],
    ]


PROBE = _probe_schema(
    {"name": "flag", "type": "boolean"},
    {"name": "score", "type": ["null", "double"], "default": None},
    {"name": "count", "type": "int"},
    {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
    {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    {"name": "label", "type": "string"},
)


def _zigzag(n: int) -> bytes:
    """Avro's varint of ``n`` with no range check, so that it can encode out-of-range ints."""
    n, out = (n << 1) ^ (n >> 70), bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    return bytes([*out, n])


def _probe_body(**parts: bytes) -> bytes:
    default = {
        "flag": b"\x01",
        "score": b"\x02" + struct.pack("<d", 0.5),
        "count": _zigzag(7),
        "at": _zigzag(1_767_600_000_123),
        "day": _zigzag(20_000),
        "label": _zigzag(5) + b"probe",
    }
    return b"".join({**default, **parts}.values())


GOOD_PROBE = _probe_body()
DAMAGE = {
    "boolean byte 2 (polars: False, fastavro: True)": _probe_body(flag=b"\x02"),
    "union branch 2 (polars: value, fastavro: error)": _probe_body(score=b"\x04" + struct.pack("<d", 1.5)),
    "union branch -1": _probe_body(score=b"\x01" + struct.pack("<d", 1.5)),
    "null branch": _probe_body(score=b"\x00"),
    "int of 2**31, same varint size as the wrapped value": _probe_body(count=_zigzag(2**31)),
    "int of 2**33": _probe_body(count=_zigzag(2**33)),
    "int as a non-canonical varint": _probe_body(count=b"\x8e\x80\x00"),
    "timestamp after year 9999": _probe_body(at=_zigzag(253_402_300_800_000)),
    "timestamp before year 1": _probe_body(at=_zigzag(-62_135_596_800_001)),
    "date after year 9999": _probe_body(day=_zigzag(2_932_897)),
    "invalid utf-8": _probe_body(label=_zigzag(2) + b"\xff\xfe"),
    "trailing byte": GOOD_PROBE + b"\x00",
    "a whole record appended": GOOD_PROBE + GOOD_PROBE,
    "truncated by one byte": GOOD_PROBE[:-1],
    "empty body": b"",
}


@pytest.mark.parametrize("where", [0, 3, 6])
@pytest.mark.parametrize("damage", DAMAGE)
def test_bytes_polars_and_fastavro_read_differently_decode_as_the_reference(damage, where) -> None:
    registry = _ProbeRegistry(PROBE)
    (probe,) = registry.schemas
    values = [frame(probe.schema_id, GOOD_PROBE)] * 7
    values[where] = frame(probe.schema_id, DAMAGE[damage])
    batch = BulkDecoder(registry, probe).decode(values)
    _assert_like_reference(batch, values, registry, probe)
    expected = AvroDecoder(registry, probe).decode(frame(probe.schema_id, GOOD_PROBE)).value
    assert [row for i, row in enumerate(batch.table.to_pylist()) if i != where] == [expected] * 6


def test_the_probe_record_decodes_as_written() -> None:
    registry = _ProbeRegistry(PROBE)
    (probe,) = registry.schemas
    batch = BulkDecoder(registry, probe).decode([frame(probe.schema_id, GOOD_PROBE)])
    assert batch.table.to_pylist() == [
        {
            "flag": True,
            "score": 0.5,
            "count": 7,
            "at": datetime(2026, 1, 5, 8, 0, 0, 123000, tzinfo=UTC),
            "day": date(2024, 10, 4),
            "label": "probe",
        }
    ]


def _values(writer: RegisteredSchema) -> st.SearchStrategy:
    valid = records_for(writer.definition).map(AvroEncoder(writer).encode)
    return st.one_of(
        st.none(),
        st.binary(max_size=60),
        st.binary(max_size=60).map(lambda body: frame(writer.schema_id, body)),
        valid,
        st.tuples(valid, st.binary(max_size=3)).map(lambda pair: pair[0] + pair[1]),
        st.tuples(valid, st.integers(0, 40)).map(lambda pair: pair[0][: len(pair[0]) - pair[1]]),
    )


@pytest.mark.parametrize("subject", REGISTRY.subjects())
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_list_of_bytes_decodes_like_the_reference_without_raising(subject, data) -> None:
    writer = REGISTRY.get(subject)
    values = data.draw(st.lists(_values(writer), max_size=25))
    batch = BulkDecoder(REGISTRY, writer).decode(values)
    _assert_like_reference(batch, values, REGISTRY, writer)


# --- arrow_schema -----------------------------------------------------------------------------------


def test_arrow_schema_of_the_demo_schemas() -> None:
    strings = pa.string()
    assert arrow_schema(PAYMENTS_V2) == pa.schema(
        [
            ("transaction_id", strings), ("card_id", strings), ("event_time", UTC_MICROS),
            ("amount", pa.float64()), ("currency", strings), ("merchant_category", strings),
            ("country", strings), ("is_online", pa.bool_()), ("installments", pa.int32()),
            ("risk_score", pa.float64()), ("channel", strings),
        ]
    )  # fmt: skip
    assert arrow_schema(PAYMENTS_V1) == pa.schema(list(arrow_schema(PAYMENTS_V2))[:-1])
    assert arrow_schema(REGISTRY.get("sensors")) == pa.schema(
        [
            ("sensor_id", strings), ("site", strings), ("event_time", UTC_MICROS),
            ("temperature_c", pa.float64()), ("vibration_mm_s", pa.float64()),
            ("pressure_kpa", pa.float64()), ("rpm", pa.int32()), ("status", strings),
        ]
    )  # fmt: skip
    assert arrow_schema(REGISTRY.get("clickstream")) == pa.schema(
        [
            ("session_id", strings), ("user_id", strings), ("event_time", UTC_MICROS), ("page", strings),
            ("device", strings), ("referrer", strings), ("dwell_ms", pa.int64()),
            ("scroll_depth", pa.float32()), ("clicks", pa.int32()), ("is_bounce", pa.bool_()),
        ]
    )  # fmt: skip
    for subject, version in SUBJECTS:
        assert all(field.nullable for field in arrow_schema(REGISTRY.get(subject, version)))


@pytest.mark.parametrize(
    ("avro_type", "arrow_type"),
    [
        ("bytes", pa.binary()),
        ({"type": "long", "logicalType": "timestamp-micros"}, UTC_MICROS),
        ({"type": "int", "logicalType": "date"}, pa.date32()),
        (["null", "float"], pa.float32()),
        (["long", "null"], pa.int64()),
        ({"type": "string"}, pa.string()),
    ],
)
def test_arrow_schema_maps_each_supported_type(avro_type, arrow_type) -> None:
    (schema,) = _ProbeRegistry(_probe_schema({"name": "f", "type": avro_type})).schemas
    assert arrow_schema(schema) == pa.schema([pa.field("f", arrow_type, nullable=True)])


@pytest.mark.parametrize(
    "avro_type",
    [
        {"type": "map", "values": "string"},
        {"type": "array", "items": "int"},
        {"type": "enum", "name": "E", "symbols": ["A"]},
        {"type": "fixed", "name": "F", "size": 2},
        ["null", "string", "int"],
        {"type": "string", "logicalType": "uuid"},
        {"type": "long", "logicalType": "local-timestamp-millis"},
    ],
)
def test_arrow_schema_rejects_unsupported_types_naming_field_and_type(avro_type) -> None:
    (schema,) = _ProbeRegistry(
        _probe_schema({"name": "n", "type": "int"}, {"name": "odd", "type": avro_type})
    ).schemas
    with pytest.raises(SchemaError, match=r"field 'odd' has Avro type .*no Arrow mapping") as raised:
        arrow_schema(schema)
    assert json.dumps(avro_type) in str(raised.value)
    with pytest.raises(SchemaError):
        BulkDecoder(_ProbeRegistry(), schema)
