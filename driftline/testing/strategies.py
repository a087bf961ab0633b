"""Hypothesis strategies for records of an Avro record schema (needs ``hypothesis``).

Covers the types driftline's demo schemas use: string, int, long, float, double,
boolean, ``timestamp-millis`` / ``timestamp-micros`` longs, and nullable unions of
them. Floats exclude NaN so that round trips can be compared with ``==``.

>>> from hypothesis import given
>>> schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": ["null", "int"]}]}
>>> @given(records_for(schema))
... def check(record):
...     assert record["n"] is None or -2**31 <= record["n"] < 2**31
>>> check()
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

_MIN_TIME = datetime(1971, 1, 1, tzinfo=UTC)
_MAX_TIME = datetime(2200, 1, 1, tzinfo=UTC)


def _timestamps(unit: str) -> st.SearchStrategy[datetime]:
    moments = st.datetimes(
        min_value=_MIN_TIME.replace(tzinfo=None),
        max_value=_MAX_TIME.replace(tzinfo=None),
        timezones=st.just(UTC),
    )
    if unit == "millis":
        return moments.map(lambda t: t.replace(microsecond=t.microsecond // 1000 * 1000))
    return moments


def value_strategy(avro_type: Any) -> st.SearchStrategy[Any]:
    if isinstance(avro_type, list):
        return st.one_of([value_strategy(branch) for branch in avro_type])
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "timestamp-millis":
            return _timestamps("millis")
        if logical == "timestamp-micros":
            return _timestamps("micros")
        return value_strategy(avro_type["type"])
    simple = {
        "null": st.none(),
        "string": st.text(max_size=40),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        # finite: ingest refuses NaN (where null is not allowed) and +-Infinity as OUT_OF_RANGE
        "float": st.floats(width=32, allow_nan=False, allow_infinity=False),
        "double": st.floats(allow_nan=False, allow_infinity=False),
        "boolean": st.booleans(),
    }
    if avro_type not in simple:
        raise ValueError(f"no strategy for Avro type {avro_type!r}; supported: {sorted(simple)}")
    return simple[avro_type]


def records_for(definition: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Records that ``definition`` (an Avro record schema as JSON) accepts."""
    return st.fixed_dictionaries({f["name"]: value_strategy(f["type"]) for f in definition["fields"]})
