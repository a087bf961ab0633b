"""``encoded_length`` against fastavro, an independent Avro writer: for any record of a
schema holding every type the module sizes, the expression Spark evaluates on the
decoded struct equals the length of the bytes fastavro wrote."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql.avro.functions import from_avro

from driftline.spark.avro_length import encoded_length, varint_length

pytestmark = pytest.mark.spark

SYMBOLS = [f"s{i}" for i in range(70)]  # indexes 64..69 take two bytes
SCHEMA = {
    "type": "record",
    "name": "Everything",
    "namespace": "t.x",
    "fields": [
        {"name": "i", "type": "int"},
        {"name": "l", "type": "long"},
        {"name": "f", "type": "float"},
        {"name": "d", "type": "double"},
        {"name": "b", "type": "boolean"},
        {"name": "s", "type": "string"},
        {"name": "by", "type": "bytes"},
        {"name": "ts", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "tsu", "type": {"type": "long", "logicalType": "timestamp-micros"}},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
        {"name": "u", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "e", "type": {"type": "enum", "name": "Many", "symbols": SYMBOLS}},
        {"name": "fx", "type": {"type": "fixed", "name": "Four", "size": 4}},
        {"name": "opt", "type": ["null", "long"]},
        {"name": "opt2", "type": ["string", "null"]},
        {
            "name": "inner",
            "type": {
                "type": "record",
                "name": "Inner",
                "fields": [{"name": "x", "type": "long"}, {"name": "e2", "type": "Many"}],
            },
        },
        {"name": "maybe_inner", "type": ["null", "Inner"]},
        {"name": "fx2", "type": "t.x.Four"},
    ],
}
PARSED = fastavro.parse_schema(SCHEMA)
LONG = st.integers(-(2**63), 2**63 - 1)
MILLIS = st.integers(-((2**63) // 1000), (2**63 - 1) // 1000)  # what Spark's microseconds hold
EDGES = [0, 63, 64, -64, -65, 8191, 8192, -8192, -8193, 2**62 - 1, 2**62, -(2**62), -(2**62) - 1]
INNER = st.fixed_dictionaries({"x": LONG, "e2": st.sampled_from(SYMBOLS)})
RECORDS = st.fixed_dictionaries(
    {
        "i": st.integers(-(2**31), 2**31 - 1),
        "l": st.one_of(LONG, st.sampled_from(EDGES + [2**63 - 1, -(2**63)])),
        "f": st.floats(width=32, allow_nan=False),
        "d": st.floats(allow_nan=False),
        "b": st.booleans(),
        "s": st.text(max_size=200),
        "by": st.binary(max_size=300),
        "ts": MILLIS,
        "tsu": LONG,
        "day": st.integers(-(2**31), 2**31 - 1),
        "u": st.uuids().map(str),
        "e": st.sampled_from(SYMBOLS),
        "fx": st.binary(min_size=4, max_size=4),
        "opt": st.one_of(st.none(), LONG),
        "opt2": st.one_of(st.none(), st.text(max_size=70)),
        "inner": INNER,
        "maybe_inner": st.one_of(st.none(), INNER),
        "fx2": st.binary(min_size=4, max_size=4),
    }
)


def _encode(record: dict) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, PARSED, record)
    return out.getvalue()


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(RECORDS, min_size=1, max_size=150))
def test_the_computed_length_is_the_length_fastavro_wrote(spark, records) -> None:
    bodies = [_encode(r) for r in records]
    rows = spark.createDataFrame([(i, b) for i, b in enumerate(bodies)], "n int, body binary")
    decoded = from_avro(F.col("body"), json.dumps(SCHEMA), {"mode": "FAILFAST"})
    length = encoded_length(SCHEMA, decoded)
    assert length is not None
    got = {r["n"]: r["size"] for r in rows.select("n", length.alias("size")).collect()}
    assert got == {i: len(b) for i, b in enumerate(bodies)}


def test_varint_length_at_every_boundary(spark) -> None:
    values = sorted(
        {v + d for k in range(1, 10) for v in (1 << (7 * k - 1), -(1 << (7 * k - 1))) for d in (-1, 0)}
    )
    values += [2**63 - 1, -(2**63)]
    rows = spark.createDataFrame([(v,) for v in values], "v long")
    got = [r["n"] for r in rows.select(varint_length(F.col("v")).alias("n")).collect()]
    expected = [len(_zigzag_varint(v)) for v in values]
    assert got == expected
    assert set(expected) == set(range(1, 11))


def _zigzag_varint(value: int) -> bytes:
    """Avro's long encoding written out by hand (the specification's algorithm)."""
    z = ((value << 1) ^ (value >> 63)) & (2**64 - 1)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


@pytest.mark.parametrize(
    "schema",
    [
        {
            "type": "record",
            "name": "A",
            "fields": [{"name": "xs", "type": {"type": "array", "items": "long"}}],
        },
        {"type": "record", "name": "M", "fields": [{"name": "m", "type": {"type": "map", "values": "long"}}]},
        {"type": "record", "name": "U", "fields": [{"name": "u", "type": ["null", "long", "string"]}]},
        {
            "type": "record",
            "name": "D",
            "fields": [
                {"name": "d", "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}}
            ],
        },
    ],
    ids=["array", "map", "two-branch union", "decimal"],
)
def test_parts_without_a_canonical_or_computed_length_give_none(spark, schema) -> None:
    assert encoded_length(schema, F.col("x")) is None
