"""Input validation: one stable reason per kind of bad record, conversions that are lossless."""

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings

from driftline.avro.registry import FileSchemaRegistry
from driftline.avro.validation import RecordValidator
from driftline.quality.reasons import ReasonCode, Stage
from driftline.testing.strategies import records_for
from tests.conftest import SCHEMAS

REGISTRY = FileSchemaRegistry(SCHEMAS)
SENSORS = REGISTRY.get("sensors")
GOOD = {
    "sensor_id": "sensor-001", "site": "plant-a", "event_time": "2026-01-05T08:00:00.250Z",
    "temperature_c": 64.5, "vibration_mm_s": 2.25, "pressure_kpa": None, "rpm": 1480, "status": "OK",
}  # fmt: skip


def with_(**changes):
    record = {**GOOD, **changes}
    return {k: v for k, v in record.items() if v is not ...}


@pytest.mark.parametrize(
    ("record", "reason", "field", "detail"),
    [
        (
            with_(temperature_c=...),
            ReasonCode.MISSING_FIELD,
            "temperature_c",
            "required field 'temperature_c' is absent",
        ),
        (with_(rpm=None), ReasonCode.MISSING_FIELD, "rpm", "required field 'rpm' is null"),
        (
            with_(temperature_c="hot"),
            ReasonCode.TYPE_MISMATCH,
            "temperature_c",
            "expected double, got str 'hot'",
        ),
        (with_(rpm=1480.5), ReasonCode.TYPE_MISMATCH, "rpm", "expected int, got float 1480.5"),
        (with_(rpm=True), ReasonCode.TYPE_MISMATCH, "rpm", "expected int, got bool True"),
        (with_(site=7), ReasonCode.TYPE_MISMATCH, "site", "expected string, got int 7"),
        (with_(event_time="yesterday"), ReasonCode.TYPE_MISMATCH, "event_time", "expected a timestamp"),
        (with_(rpm=2**31), ReasonCode.OUT_OF_RANGE, "rpm", "2147483648 is outside the Avro int range"),
        (with_(rpm=-(2**31) - 1), ReasonCode.OUT_OF_RANGE, "rpm", "outside the Avro int range"),
        (
            with_(humidity=0.4),
            ReasonCode.UNKNOWN_FIELD,
            "humidity",
            "field 'humidity' is not in schema sensors v1",
        ),
    ],
)
def test_each_problem_gets_its_reason_and_names_the_field(record, reason, field, detail) -> None:
    outcome = RecordValidator(SENSORS).validate(record, raw=b"original")
    assert not outcome.ok
    assert (outcome.reason, outcome.field) == (reason, field)
    assert detail in outcome.detail
    assert outcome.raw == b"original"
    assert outcome.stage is Stage.INGEST


def test_valid_record_is_converted_losslessly() -> None:
    outcome = RecordValidator(SENSORS).validate(with_(rpm=1480.0, pressure_kpa=301), raw=b"")
    assert outcome.ok
    assert outcome.value["event_time"] == datetime(2026, 1, 5, 8, 0, 0, 250000, tzinfo=UTC)
    assert outcome.value["rpm"] == 1480 and isinstance(outcome.value["rpm"], int)
    assert outcome.value["pressure_kpa"] == 301.0 and isinstance(outcome.value["pressure_kpa"], float)


@pytest.mark.parametrize(
    "stamp",
    ["2026-01-05T08:00:00.250Z", "2026-01-05T09:00:00.250+01:00", 1767600000250, 1767600000250.0,
     datetime(2026, 1, 5, 8, 0, 0, 250000), datetime(2026, 1, 5, 8, 0, 0, 250000, tzinfo=UTC)],
)  # fmt: skip
def test_timestamps_in_any_accepted_form_mean_the_same_instant(stamp) -> None:
    outcome = RecordValidator(SENSORS).validate(with_(event_time=stamp), raw=b"")
    assert outcome.ok, outcome
    assert outcome.value["event_time"] == datetime(2026, 1, 5, 8, 0, 0, 250000, tzinfo=UTC)


def test_csv_text_values_are_parsed_and_empty_means_null_or_missing() -> None:
    text = {k: ("" if v is None else str(v)) for k, v in GOOD.items()}
    validator = RecordValidator(SENSORS, text=True)
    ok = validator.validate(text, raw=b"")
    assert ok.ok
    assert ok.value["rpm"] == 1480 and ok.value["pressure_kpa"] is None and ok.value["temperature_c"] == 64.5
    missing = validator.validate({**text, "temperature_c": ""}, raw=b"")
    assert (missing.reason, missing.detail) == (
        ReasonCode.MISSING_FIELD,
        "required field 'temperature_c' is empty",
    )
    assert validator.validate({**text, "rpm": "n/a"}, raw=b"").reason is ReasonCode.TYPE_MISMATCH
    assert validator.validate({**text, "rpm": "99999999999"}, raw=b"").reason is ReasonCode.OUT_OF_RANGE
    assert validator.validate({**text, "site": ""}, raw=b"").value["site"] == ""


def test_non_object_input_is_not_parseable() -> None:
    outcome = RecordValidator(SENSORS).validate([1, 2], raw=b"[1, 2]")
    assert (outcome.reason, outcome.detail) == (
        ReasonCode.NOT_PARSEABLE,
        "expected a record (object), got list",
    )


@pytest.mark.parametrize(
    ("field", "value", "shown"),
    [("temperature_c", math.inf, "inf"), ("vibration_mm_s", -math.inf, "-inf"), ("temperature_c", math.nan, "nan"),
     ("pressure_kpa", math.inf, "inf")],
)  # fmt: skip
def test_non_finite_floats_are_out_of_range(field, value, shown) -> None:
    """+-Infinity anywhere, NaN where null is not allowed: one would poison a window's moments."""
    outcome = RecordValidator(SENSORS).validate(with_(**{field: value}), raw=b"")
    assert (outcome.reason, outcome.field) == (ReasonCode.OUT_OF_RANGE, field)
    assert f"{shown} is not a finite number" in outcome.detail


def test_nan_in_a_nullable_field_is_null_and_csv_infinity_is_refused() -> None:
    """pandas writes a missing value as NaN: where null is allowed it is null; CSV's "inf" is refused."""
    assert (
        RecordValidator(SENSORS).validate(with_(pressure_kpa=float("nan")), raw=b"").value["pressure_kpa"]
        is None
    )
    text = {k: "" if v is None else str(v) for k, v in GOOD.items()}
    refused = RecordValidator(SENSORS, text=True).validate({**text, "temperature_c": "Infinity"}, raw=b"")
    assert (refused.reason, refused.field) == (ReasonCode.OUT_OF_RANGE, "temperature_c")


def test_float_field_range_is_the_float32_range() -> None:
    clicks = REGISTRY.get("clickstream")
    base = {"session_id": "s", "event_time": 0, "page": "home", "device": "mobile", "dwell_ms": 5,
            "clicks": 1, "is_bounce": False}  # fmt: skip
    validator = RecordValidator(clicks)
    assert validator.validate({**base, "scroll_depth": 3.0e38}, raw=b"").ok
    too_big = validator.validate({**base, "scroll_depth": 1e39}, raw=b"")
    assert too_big.reason is ReasonCode.OUT_OF_RANGE


@settings(max_examples=200)
@given(records_for(REGISTRY.get("clickstream").definition))
def test_every_schema_valid_record_passes_unchanged(record) -> None:
    outcome = RecordValidator(REGISTRY.get("clickstream")).validate(record, raw=b"")
    assert outcome.ok, outcome
    assert outcome.value == record
