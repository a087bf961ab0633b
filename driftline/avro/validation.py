"""Validate input records against an Avro record schema, with stable reason codes.

Input comes from JSON Lines, CSV or Parquet, so values arrive as JSON types, as
strings (CSV) or as Arrow-converted Python values (Parquet). :class:`RecordValidator`
converts what Avro can represent losslessly (ISO-8601 strings or epoch numbers for
timestamps, numeric strings from CSV) and rejects the rest with one reason:

``MISSING_FIELD``   a field without default is absent, or null where null is not allowed
``TYPE_MISMATCH``   a value of the wrong type (``"abc"`` for a double, ``1.5`` for an int)
``OUT_OF_RANGE``    an int / long / float outside the Avro type's range, a float or double that is
                    not finite (NaN where null is not allowed, ±Infinity), an unknown enum symbol
``UNKNOWN_FIELD``   a key the schema does not have (it would be dropped silently otherwise)
``SCHEMA_INVALID``  anything else fastavro's own validation rejects (nested types)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastavro.validation import validate as fastavro_validate

from driftline.avro.registry import RegisteredSchema
from driftline.quality.outcome import Invalid, Outcome, Valid
from driftline.quality.reasons import ReasonCode

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
FLOAT32_MAX = 3.4028234663852886e38
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TRUE = {"true", "1", "yes", "t", "y"}
_FALSE = {"false", "0", "no", "f", "n"}


class _Reject(Exception):
    def __init__(self, reason: ReasonCode, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def _mismatch(name: str, expected: str, value: Any) -> _Reject:
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    return _Reject(
        ReasonCode.TYPE_MISMATCH,
        f"field {name!r}: expected {expected}, got {type(value).__name__} {shown}",
    )


def _check_int(name: str, value: Any, bounds: tuple[int, int], avro: str, text: bool) -> int:
    if text and isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _mismatch(name, avro, value) from None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise _mismatch(name, avro, value)
    if not bounds[0] <= value <= bounds[1]:
        raise _Reject(ReasonCode.OUT_OF_RANGE, f"field {name!r}: {value} is outside the Avro {avro} range")
    return value


def _is_nan(value: Any, as_text: bool) -> bool:
    """A float NaN, or with ``as_text`` (a CSV cell of a non-string field) the text ``nan``
    that Python's csv module and pandas write for it."""
    if isinstance(value, float):
        return math.isnan(value)
    return as_text and isinstance(value, str) and value.strip().lower() == "nan"


def _check_float(name: str, value: Any, avro: str, text: bool) -> float:
    if text and isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise _mismatch(name, avro, value) from None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(name, avro, value)
    try:
        value = float(value)
    except OverflowError:  # an int beyond any double, e.g. 10**400
        raise _Reject(
            ReasonCode.OUT_OF_RANGE, f"field {name!r}: an integer beyond the double range"
        ) from None
    if not math.isfinite(value):  # a nullable field's NaN never gets here: it is null (FieldCheck.check)
        raise _Reject(ReasonCode.OUT_OF_RANGE, f"field {name!r}: {value} is not a finite number")
    if avro == "float" and abs(value) > FLOAT32_MAX:
        raise _Reject(ReasonCode.OUT_OF_RANGE, f"field {name!r}: {value} is outside the Avro float range")
    return value


def _check_bool(name: str, value: Any, text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if text and isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise _mismatch(name, "boolean", value)


def _check_timestamp(name: str, value: Any, unit_ms: float, text: bool) -> datetime:
    """Accept an aware / naive (taken as UTC) datetime, ISO-8601 text, or epoch numbers."""
    expected = "a timestamp (ISO-8601 text or epoch number)"
    if isinstance(value, datetime):
        return _in_utc_range(name, value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, str):
        stripped = value.strip()
        try:
            parsed = datetime.fromisoformat(stripped)
        except ValueError:
            if not text:
                raise _mismatch(name, expected, value) from None
            value = _check_int(name, stripped, INT64, "long", text=True)
        else:
            return _in_utc_range(name, parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _mismatch(name, expected, value)
    try:
        return EPOCH + timedelta(milliseconds=value * unit_ms)
    except (OverflowError, ValueError):  # beyond datetime's years 1-9999, or NaN
        raise _Reject(
            ReasonCode.OUT_OF_RANGE, f"field {name!r}: {value} is not a representable time"
        ) from None


def _in_utc_range(name: str, value: datetime) -> datetime:
    """``value`` if it is within years 1-9999 in UTC too (``9999-12-31T23:59-14:00`` is not:
    readers that convert to UTC cannot hold it)."""
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise _Reject(
            ReasonCode.OUT_OF_RANGE, f"field {name!r}: {value.isoformat()} is outside years 1-9999 in UTC"
        ) from None
    return value


def _check_date(name: str, value: Any, text: bool) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            raise _mismatch(name, "a date (YYYY-MM-DD)", value) from None
    if isinstance(value, int) and not isinstance(value, bool):
        return date(1970, 1, 1) + timedelta(days=value)
    raise _mismatch(name, "a date (YYYY-MM-DD)", value)


def _check_string(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise _mismatch(name, "string", value)
    return value


def _converter(name: str, avro_type: Any, text: bool) -> Callable[[Any], Any] | None:
    """A function that checks and converts one non-null value, or ``None`` to defer."""
    if isinstance(avro_type, dict):
        logical, base = avro_type.get("logicalType"), avro_type.get("type")
        if logical in ("timestamp-millis", "local-timestamp-millis") and base == "long":
            return lambda v: _check_timestamp(name, v, 1.0, text)
        if logical in ("timestamp-micros", "local-timestamp-micros") and base == "long":
            return lambda v: _check_timestamp(name, v, 0.001, text)
        if logical == "date" and base == "int":
            return lambda v: _check_date(name, v, text)
        if base == "enum":
            symbols = list(avro_type["symbols"])

            def check_enum(value: Any) -> str:
                if value not in symbols:
                    raise _Reject(
                        ReasonCode.OUT_OF_RANGE,
                        f"field {name!r}: {value!r} is not one of the symbols {symbols}",
                    )
                return value

            return check_enum
        if logical is None and isinstance(base, str):
            return _converter(name, base, text)
        return None
    simple: dict[str, Callable[[Any], Any]] = {
        "string": lambda v: _check_string(name, v),
        "int": lambda v: _check_int(name, v, INT32, "int", text),
        "long": lambda v: _check_int(name, v, INT64, "long", text),
        "float": lambda v: _check_float(name, v, "float", text),
        "double": lambda v: _check_float(name, v, "double", text),
        "boolean": lambda v: _check_bool(name, v, text),
    }
    return simple.get(avro_type) if isinstance(avro_type, str) else None


class _FieldRule:
    __slots__ = ("name", "nullable", "has_default", "default", "convert", "deferred", "textual")

    def __init__(self, spec: dict[str, Any], text: bool) -> None:
        self.name = spec["name"]
        branches = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        self.nullable = "null" in branches
        non_null = [b for b in branches if b != "null"]
        self.has_default = "default" in spec
        self.default = spec.get("default")
        self.convert = _converter(self.name, non_null[0], text) if len(non_null) == 1 else None
        self.deferred = self.convert is None and bool(non_null)
        # in CSV an empty cell is null, except for a required string, where "" is a value
        self.textual = non_null in (["string"], [{"type": "string"}])

    def check(self, record: Mapping[str, Any], text: bool) -> Any:
        if self.name not in record:
            if self.has_default:
                return self.default
            raise _Reject(ReasonCode.MISSING_FIELD, f"required field {self.name!r} is absent")
        value = record[self.name]
        if text and value == "" and (self.nullable or not self.textual):
            value = None
        if self.nullable and _is_nan(value, text and not self.textual):  # pandas' missing value
            value = None
        if value is None:
            if self.nullable:
                return None
            empty = "empty" if text else "null"
            raise _Reject(ReasonCode.MISSING_FIELD, f"required field {self.name!r} is {empty}")
        return self.convert(value) if self.convert is not None else value


class RecordValidator:
    """Checks and converts input records for one writer schema.

    Parameters
    ----------
    writer:
        The registered schema records will be written with.
    text:
        ``True`` when every value arrives as a string (CSV): numbers and booleans are
        parsed, and an empty string means null for nullable fields.

    Examples
    --------
    >>> from driftline.avro.registry import RegisteredSchema, parse_schema
    >>> d = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"}]}
    >>> v = RecordValidator(RegisteredSchema("s", 1, 1, d, parse_schema(d, origin="doc")))
    >>> v.validate({"n": 3}, raw=b"").value
    {'n': 3}
    >>> v.validate({"n": 2**40}, raw=b"").reason
    <ReasonCode.OUT_OF_RANGE: 'OUT_OF_RANGE'>
    """

    def __init__(self, writer: RegisteredSchema, *, text: bool = False) -> None:
        self.writer = writer
        self.text = text
        self._rules = [_FieldRule(spec, text) for spec in writer.definition.get("fields", [])]
        self._names = {rule.name for rule in self._rules}
        self._needs_fastavro = any(rule.deferred for rule in self._rules)

    def unknown_fields(self, record: Mapping[str, Any]) -> list[str]:
        """The fields of ``record`` the writer schema does not have, sorted."""
        return sorted(set(record) - self._names)

    def validate(self, record: Any, *, raw: bytes) -> Outcome:
        if not isinstance(record, Mapping):
            return Invalid(
                ReasonCode.NOT_PARSEABLE,
                f"expected a record (object), got {type(record).__name__}",
                raw=raw,
            )
        converted: dict[str, Any] = {}
        for rule in self._rules:
            try:
                converted[rule.name] = rule.check(record, self.text)
            except _Reject as reject:
                return Invalid(reject.reason, reject.detail, raw=raw, field=rule.name)
        unknown = self.unknown_fields(record)
        if unknown:
            return Invalid(
                ReasonCode.UNKNOWN_FIELD,
                f"field {unknown[0]!r} is not in schema {self.writer.subject} "
                f"v{self.writer.version}; its fields are {sorted(self._names)}",
                raw=raw,
                field=unknown[0],
            )
        if self._needs_fastavro:
            try:
                fastavro_validate(converted, self.writer.parsed, raise_errors=True)
            except Exception as exc:  # noqa: BLE001 - fastavro's ValidationError and friends
                return Invalid(ReasonCode.SCHEMA_INVALID, str(exc)[:500], raw=raw)
        return Valid(converted, raw=raw)
