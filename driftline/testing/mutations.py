"""Seeded hostile payloads: JSON Lines for ``driftline ingest``, Kafka values for the job.

Two generators turn valid records of an Avro record schema into payloads a producer,
a file or a bit rot could hand driftline. Each payload is a :class:`Mutant` that says
what was done to it (``kind``, the ``field`` it touched, the ``value`` it put there
and a human ``detail``), so a test can work out what driftline must make of it. Both
are pure functions of their arguments and ``seed``: the same call gives the same bytes.
Pure Python, numpy and fastavro only (no Spark, no Kafka).

:class:`LineMutator` (one JSON Lines line each, never containing ``\\n``):

=====================  ==================================================================
kind                   what the line is
=====================  ==================================================================
``valid``              the record as compact JSON
``random_bytes``       1-256 random bytes, at least one of them not whitespace
``invalid_utf8``       a string value with an invalid UTF-8 sequence (lone continuation
                       byte, overlong form, encoded surrogate, cut multi-byte, > U+10FFFF)
``truncated``          the record's JSON cut after 1 .. len-1 bytes
``padded``             the record's JSON followed by non-whitespace garbage
``huge_string``        a field (any type) set to a string of 1-16 KB; the first ``big``
                       of them a string field of 100-600 KB or 1.2-2.1 MB
``extreme_number``     a numeric field set to a literal such as ``1e308``, ``2**63``,
                       ``-2**63-1``, ``2**64``, ``5e-324``, ``1e400`` or a 401-digit integer
``nan_inf``            a numeric or timestamp field set to ``NaN``, ``Infinity``, ``-Infinity``
``extreme_timestamp``  a timestamp field set to long min / max, year 1, year 9999, year
                       10000, negative millis, ``1e308`` or an ISO text at those edges
``wrong_type``         a field set to a JSON value of a type its Avro type never accepts
``missing_field``      a field left out
``null_field``         a field set to ``null``
``extra_field``        a key the schema does not have ("", a 300-char name, Unicode, ...)
``deep_nesting``       a field set to arrays / objects nested 2 to 20,000 deep (two of
                       them 100,000 deep)
``empty``              a blank line (not a record) or an empty JSON value (``{}``, ``[]``,
                       ``null``, ``""``, ``0``, ``true``)
``bom``                a UTF-8 byte order mark before, inside or after the JSON, two of
                       them, or the JSON in UTF-16 with its BOM
``control_char``       a raw control character (``\\x00``-``\\x1f`` but ``\\n``) in a string
``lone_surrogate``     a string value with an unpaired UTF-16 surrogate (escaped or raw)
``huge_int_literal``   a numeric field set to an integer literal of 5,000 digits (more than
                       Python's ``int`` parsing limit of 4,300)
=====================  ==================================================================

:class:`FrameMutator` (a Confluent-framed Avro value: ``0x00``, 4-byte schema id, body):

=====================  ==================================================================
kind                   what the value is
=====================  ==================================================================
``valid``              the record encoded with the current writer schema
``valid_older``        the record encoded with an older version of the subject
``random_bytes``       0-64 random bytes, half of them starting with ``0x00``
``truncated``          a valid frame cut after 0 .. len-1 bytes (a quarter inside the header)
``padded``             a valid frame followed by 1-32 extra bytes
``wrong_magic``        a valid frame whose first byte is 1-255
``unknown_schema_id``  a valid body framed with an id no known schema has (0, 1,
                       0x7FFFFFFF, 0xFFFFFFFF or random)
``foreign_schema``     another subject's valid frame, or this body with another subject's id
``bit_flip``           a valid frame with 1-4 bits of its body flipped
``huge_string``        a string field of 1-16 KB, the first ``big`` of them 100-900 KB
``invalid_utf8``       a string field whose bytes are not UTF-8 (written as Avro ``bytes``,
                       which has the same wire form)
``nan_inf``            a float / double field set to NaN, +Infinity or -Infinity
``extreme_number``     an int / long / float / double field at its type's edges
``extreme_timestamp``  a timestamp field set to long min / max, 0, -1, year 1, year 9999,
                       +-2**62 ms or the edges of what fits in microseconds
``far_future``         a timestamp field 2 hours to 400 days after ``now_millis``
``null_required``      a non-nullable field written as null (the record encoded with a copy
                       of the schema in which that field is ``["null", T]``)
``empty``              ``b""``
``tombstone``          ``None`` (a Kafka tombstone)
=====================  ==================================================================

>>> schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "int"},
...                                                     {"name": "s", "type": "string"}]}
>>> lines = LineMutator(schema, [{"n": 1, "s": "a"}], seed=3).generate(200, valid_share=0.25)
>>> len(lines), sum(m.kind == "valid" for m in lines), any(b"\\n" in m.data for m in lines)
(200, 50, False)
>>> again = LineMutator(schema, [{"n": 1, "s": "a"}], seed=3).generate(200, valid_share=0.25)
>>> [m.data for m in again] == [m.data for m in lines]
True
>>> frames = FrameMutator(Writer(7, schema), [{"n": 1, "s": "a"}], seed=3).generate(50)
>>> sorted({m.kind for m in frames})[:3]
['bit_flip', 'empty', 'extreme_number']
"""

from __future__ import annotations

import copy
import io
import json
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import fastavro
import numpy as np

LINE_KINDS = (
    "valid", "random_bytes", "invalid_utf8", "truncated", "padded", "huge_string", "extreme_number",
    "nan_inf", "extreme_timestamp", "wrong_type", "missing_field", "null_field", "extra_field",
    "deep_nesting", "empty", "bom", "control_char", "lone_surrogate", "huge_int_literal",
)  # fmt: skip
FRAME_KINDS = (
    "valid", "valid_older", "random_bytes", "truncated", "padded", "wrong_magic", "unknown_schema_id",
    "foreign_schema", "bit_flip", "huge_string", "invalid_utf8", "nan_inf", "extreme_number",
    "extreme_timestamp", "far_future", "null_required", "empty", "tombstone",
)  # fmt: skip

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
FLOAT_MAX = 3.4028234663852886e38
YEAR_1_MS = -62_135_596_800_000  # 0001-01-01T00:00:00Z
YEAR_9999_MS = 253_402_214_400_000  # 9999-12-31T00:00:00Z
YEAR_10000_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z: beyond Python's datetime
_TIMESTAMPS = ("timestamp-millis", "timestamp-micros", "local-timestamp-millis", "local-timestamp-micros")
_NUMERIC = ("int", "long", "float", "double")
_PLACEHOLDER = "\x01mutant\x01"  # a string value replaced by raw bytes after json.dumps
_QUOTED = json.dumps(_PLACEHOLDER).encode()

_LINE_EXTREMES = [b"1e308", b"-1e308", b"9223372036854775808", b"-9223372036854775809",
                  b"18446744073709551616", b"9223372036854775807", b"-9223372036854775808",
                  b"2147483648", b"-2147483649", b"2147483647", b"1.7976931348623157e308", b"5e-324",
                  b"-0.0", b"1e-400", b"1e400", b"1" + b"0" * 400, b"3.0", b"0.5"]  # fmt: skip
_LINE_TIMESTAMPS = [
    str(v).encode() for v in (LONG_MIN, LONG_MAX, 2**63, 2**64, -1, 0, YEAR_1_MS, YEAR_1_MS - 1,
                              YEAR_10000_MS - 1, YEAR_10000_MS, 2**62, -(2**62))
] + [b"1e308", b"-1e308", b"0.5", b'"0001-01-01T00:00:00Z"', b'"9999-12-31T23:59:59.999Z"',
     b'"10000-01-01T00:00:00Z"', b'"0000-12-31T00:00:00Z"', b'"-0001-01-01T00:00:00Z"',
     b'"2026-02-30T00:00:00Z"', b'"9999-12-31T23:59:59.999-14:00"', b'"0001-01-01T00:00:00+14:00"',
     b'"1970-01-01T00:00:00"', b'""', b'"now"']  # fmt: skip
_LINE_TOKENS = {
    "extreme_number": _LINE_EXTREMES,
    "nan_inf": [b"NaN", b"Infinity", b"-Infinity"],
    "extreme_timestamp": _LINE_TIMESTAMPS,
    "huge_int_literal": [b"7" * 5_000],
}
_FRAME_EXTREMES = {
    "int": [INT_MIN, INT_MAX, -1, 0],
    "long": [LONG_MIN, LONG_MAX, -1, 0],
    "float": [FLOAT_MAX, -FLOAT_MAX, 1.401298464324817e-45, -0.0, 1e-38],
    "double": [1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 5e-324, -5e-324, -0.0],
}
_MICROS_EDGE = LONG_MAX // 1000  # the largest millis that still fit a long of microseconds
_FRAME_TIMESTAMPS = [LONG_MIN, LONG_MAX, 0, -1, YEAR_1_MS, YEAR_1_MS + 86_400_000, YEAR_9999_MS,
                     YEAR_9999_MS - 86_400_000, 2**62, -(2**62), _MICROS_EDGE, _MICROS_EDGE + 1,
                     -_MICROS_EDGE, -_MICROS_EDGE - 1]  # fmt: skip
_FIELD_KINDS = {  # frame kinds that change a field of one of these types
    "huge_string": ("string",),
    "invalid_utf8": ("string",),
    "nan_inf": ("float", "double"),
    "extreme_number": _NUMERIC,
    "extreme_timestamp": ("timestamp",),
}
_WRONG = {
    "string": [12345, 1.5, True, [], {}, ["a"], {"k": "v"}],
    "number": ["n/a", "12", True, False, [1], {"v": 1}, ""],
    "boolean": [1, 0, "true", "yes", 1.0, [], {}],
    "timestamp": [True, [1], {"t": 1}, "not a time", ""],
}
_BAD_UTF8 = [b"\xff", b"\xc3\x28", b"\xc0\xaf", b"\xed\xa0\x80", b"\xe2\x82", b"\xf4\x90\x80\x80",
             b"ok\xfe\xfe", b"\x80abc"]  # fmt: skip
_EXTRA_KEYS = ["", "extra", "__proto__", "x" * 300, "ünïcödé", "event_time ", "AMOUNT", "null"]
_EMPTY = [b"", b" ", b"\t", b"\r", b" \t \r", b"\x0b\x0c", b"{}", b"[]", b"null", b'""', b"0", b"true",
          b"{ }"]  # fmt: skip
_ALPHABETS = ["x", "abcdefghijklmnopqrstuvwxyz_", "ABC xyz 0123456789 !#%&()*+-./:;<=>?@[]^{|}~",
              "éü中文😀ß"]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Mutant:
    """One hostile payload: its bytes (``None`` for a tombstone) and what was done to it."""

    kind: str
    data: bytes | None
    field: str | None = None
    value: Any = None  # the value placed in ``field``, as a reader of ``data`` would see it
    detail: str = ""
    base: int | None = None  # index of the valid record it was made from


@dataclass(frozen=True)
class Writer:
    """A writer schema and the id that frames its records."""

    schema_id: int
    definition: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class _Field:
    name: str
    avro: str  # string, int, long, float, double, boolean, bytes, timestamp, other
    nullable: bool
    per_second: int = 1  # timestamp units per second: 1,000 (millis) or 1,000,000 (micros)


def schema_fields(definition: Mapping[str, Any]) -> list[_Field]:
    """Every field of a record schema with its base type (``timestamp`` for timestamp
    logical types) and whether null is allowed."""
    out = []
    for spec in definition["fields"]:
        branches = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
        non_null = [b for b in branches if b != "null"]
        base = non_null[0] if len(non_null) == 1 else "other"
        logical = base.get("logicalType") if isinstance(base, dict) else None
        if isinstance(base, dict):
            base = "timestamp" if logical in _TIMESTAMPS else base.get("type", "other")
        per_second = 1_000_000 if logical and logical.endswith("micros") else 1_000
        kind = base if isinstance(base, str) else "other"
        out.append(_Field(spec["name"], kind, "null" in branches, per_second if kind == "timestamp" else 1))
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


class _Base:
    def __init__(self, definition: Mapping[str, Any], records: Sequence[Mapping[str, Any]], seed: int,
                 big: int) -> None:  # fmt: skip
        if not records:
            raise ValueError("give at least one valid record to mutate")
        self.fields = schema_fields(definition)
        self.records = list(records)
        self.rng = np.random.default_rng(seed)
        self.big_left = big  # the few payloads allowed to be hundreds of KB or MB

    def _plan(self, n: int, kinds: Iterable[str], valid_share: float, known: Sequence[str]) -> list[str]:
        mutated = [k for k in kinds if k != "valid"]
        unknown = sorted(set(mutated) - set(known))
        if unknown or not 0.0 <= valid_share <= 1.0:
            raise ValueError(f"kinds {unknown} / valid_share {valid_share}: valid kinds are {known}, "
                             "valid_share is in [0, 1]")  # fmt: skip
        n_valid = round(n * valid_share) if mutated else n
        plan = ["valid"] * n_valid + [mutated[i % len(mutated)] for i in range(n - n_valid)]
        self.rng.shuffle(plan)
        return plan

    def _pick(self, *types: str, nullable: bool | None = None) -> _Field | None:
        found = [f for f in self.fields if f.avro in types and (nullable is None or f.nullable == nullable)]
        return found[int(self.rng.integers(len(found)))] if found else None

    def _choice(self, options: Sequence[Any]) -> Any:
        return options[int(self.rng.integers(len(options)))]

    def _base(self) -> tuple[int, dict[str, Any]]:
        index = int(self.rng.integers(len(self.records)))
        return index, copy.deepcopy(dict(self.records[index]))

    def _huge_text(self, *ranges: tuple[int, int]) -> str:
        """1-16 KB of text; while the ``big`` budget lasts, a size from ``ranges`` in turn,
        in ASCII (a JSON line would carry every other character escaped, six times as long)."""
        if self.big_left > 0:
            self.big_left -= 1
            low, high = ranges[self.big_left % len(ranges)]
            alphabet = self._choice(_ALPHABETS[:3])
        else:
            low, high = 1_024, 16_384
            alphabet = self._choice(_ALPHABETS)
        size = int(self.rng.integers(low, high))
        if len(alphabet) == 1:
            return alphabet * size
        return "".join(alphabet[i] for i in self.rng.integers(0, len(alphabet), size))


class LineMutator(_Base):
    """Hostile JSON Lines lines made from valid ``records`` of the record ``schema``.

    Parameters
    ----------
    schema:
        The Avro record schema the records follow (a JSON object).
    records:
        Valid records (datetimes are written as ISO-8601 UTC with milliseconds).
    seed:
        Everything random derives from it.
    big:
        How many huge strings may be large (100-600 KB and 1.2-2.1 MB in turn); the
        others are 1-16 KB.
    """

    KINDS = LINE_KINDS

    def __init__(self, schema: Mapping[str, Any], records: Sequence[Mapping[str, Any]], *, seed: int,
                 big: int = 6) -> None:  # fmt: skip
        super().__init__(schema, records, seed, big)
        self.deep_left = 2  # lines nested 100,000 deep (200 KB each)

    def generate(
        self, n: int, *, kinds: Iterable[str] = LINE_KINDS, valid_share: float = 0.0
    ) -> list[Mutant]:
        """``n`` lines: a ``valid_share`` of valid ones, the rest spread evenly over ``kinds``."""
        return [self._one(kind) for kind in self._plan(n, kinds, valid_share, LINE_KINDS)]

    def _dump(self, record: Mapping[str, Any], raw: bytes | None = None) -> bytes:
        text = json.dumps(record, default=_jsonable, separators=(",", ":")).encode()
        return text if raw is None else text.replace(_QUOTED, raw, 1)

    def _one(self, kind: str) -> Mutant:
        index, record = self._base()
        line = self._dump(record)
        if kind == "valid":
            return Mutant(kind, line, base=index)
        if kind == "random_bytes":
            size = int(self.rng.integers(1, 257))
            data = bytes(b if b != 0x0A else 0x0B for b in self.rng.integers(0, 256, size).tolist())
            data = data if data.strip() else b"~" + data
            return Mutant(kind, data, detail=f"{len(data)} random bytes")
        if kind == "truncated":
            cut = int(self.rng.integers(1, len(line)))
            return Mutant(kind, line[:cut], detail=f"cut after {cut} of {len(line)} bytes", base=index)
        if kind == "padded":
            garbage = self._choice([b"}", b",", b"x", b"\x00", b"{}", b"]", b" 1", b"//", b'"', b"\x1f"])
            return Mutant(kind, line + garbage, detail=f"+ {garbage!r}", base=index)
        if kind == "empty":
            data = self._choice(_EMPTY)
            return Mutant(kind, data, detail="blank line" if not data.strip() else repr(data))
        if kind == "bom":
            return self._bom(index, record, line)
        return self._field_mutant(kind, index, record)

    def _bom(self, index: int, record: dict, line: bytes) -> Mutant:
        bom = b"\xef\xbb\xbf"
        variant = int(self.rng.integers(6))
        if variant == 3:  # inside a string value; without a string field, first as in variant 0
            text = self._pick("string")
            if text is not None:
                record[text.name] = _PLACEHOLDER
                return Mutant("bom", self._dump(record, b'"\xef\xbb\xbf' + b'x"'), text.name, "\ufeffx",
                              "BOM inside a string", index)  # fmt: skip
        data, detail = [
            (bom + line, "UTF-8 BOM first"),
            (bom + bom + line, "two UTF-8 BOMs first"),
            (line + bom, "UTF-8 BOM last"),
            (bom + line, "UTF-8 BOM first"),
            (b"\xff\xfe" + line.decode().encode("utf-16-le"), "UTF-16-LE with its BOM"),
            (b"\xfe\xff" + line.decode().encode("utf-16-be"), "UTF-16-BE with its BOM"),
        ][variant]
        return Mutant("bom", data, detail=detail, base=index)

    def _field_mutant(self, kind: str, index: int, record: dict) -> Mutant:
        numeric = _NUMERIC
        if kind == "missing_field":
            field = self._choice(self.fields)
            record.pop(field.name, None)
            return Mutant(kind, self._dump(record), field.name, detail="absent", base=index)
        if kind == "null_field":
            field = self._choice(self.fields)
            record[field.name] = None
            return Mutant(kind, self._dump(record), field.name, detail="null", base=index)
        if kind == "extra_field":
            key = self._choice(_EXTRA_KEYS)
            record[key] = self._choice([1, "x", None, [1], {"a": 1}])
            return Mutant(kind, self._dump(record), key, record[key], f"extra key {key[:20]!r}", index)
        if kind == "wrong_type":
            field = self._choice([f for f in self.fields if f.avro != "other"])
            group = "number" if field.avro in numeric else field.avro
            value = self._choice(_WRONG["string" if group == "bytes" else group])
            record[field.name] = value
            return Mutant(kind, self._dump(record), field.name, value, f"{field.avro} <- {value!r}", index)
        if kind == "huge_string":  # the big ones go to string fields, to be too large rather than mistyped
            field = (self._pick("string") if self.big_left > 0 else None) or self._choice(self.fields)
            value = self._huge_text((1_200_000, 2_100_000), (100_000, 600_000))
            record[field.name] = value
            return Mutant(kind, self._dump(record), field.name, value, f"{len(value):,} characters", index)
        if kind in ("invalid_utf8", "control_char", "lone_surrogate"):
            field = self._pick("string") or self._choice(self.fields)
            raw = {
                "invalid_utf8": lambda: self._choice(_BAD_UTF8),
                "control_char": lambda: bytes([self._choice([b for b in range(32) if b != 10])]),
                "lone_surrogate": lambda: self._choice(
                    [b"\\ud800", b"\\udfff", b"\xed\xa0\x80", b"ab\\udc00"]
                ),
            }[kind]()
            record[field.name] = _PLACEHOLDER
            return Mutant(kind, self._dump(record, b'"' + raw + b'"'), field.name, raw, repr(raw), index)
        if kind == "deep_nesting":
            field = self._choice(self.fields)
            depth = self._choice([2, 32, 900, 2_000, 5_000, 20_000])
            if self.deep_left > 0 and depth == 20_000:
                self.deep_left, depth = self.deep_left - 1, 100_000
            opener, closer = self._choice([(b"[", b"]"), (b'{"a":', b"}")])
            record[field.name] = _PLACEHOLDER
            nested = opener * depth + b"1" + closer * depth
            return Mutant(kind, self._dump(record, nested), field.name, depth, f"{depth} deep", index)
        tokens = _LINE_TOKENS[kind]
        field = (
            self._pick("timestamp")
            if kind == "extreme_timestamp"
            else self._pick(*numeric, *(("timestamp",) if kind == "nan_inf" else ()))
        ) or self._choice(self.fields)
        token = self._choice(tokens)
        record[field.name] = _PLACEHOLDER
        value = json.loads(token) if len(token) < 4_300 else None
        return Mutant(kind, self._dump(record, token), field.name, value, token[:40].decode(), index)


class FrameMutator(_Base):
    """Hostile Kafka values made from valid ``records`` of the ``writer`` schema.

    Parameters
    ----------
    writer:
        The current writer schema and its id (the frames' own subject).
    records:
        Valid records, as fastavro encodes them (datetimes or epoch numbers for timestamps).
    seed:
        Everything random derives from it.
    known_ids:
        Every id a registry knows; ``unknown_schema_id`` avoids them.
    older:
        Older writer versions of the same subject (for ``valid_older``).
    foreign:
        Another subject's writer and valid records of it (for ``foreign_schema``).
    now_millis:
        Wall-clock time the frames are produced at (for ``far_future``).
    big:
        How many huge strings may be 100-900 KB; the others are 1-16 KB.
    """

    KINDS = FRAME_KINDS

    def __init__(self, writer: Writer, records: Sequence[Mapping[str, Any]], *, seed: int,
                 known_ids: Iterable[int] = (), older: Sequence[Writer] = (),
                 foreign: tuple[Writer, Sequence[Mapping[str, Any]]] | None = None,
                 now_millis: int | None = None, big: int = 4) -> None:  # fmt: skip
        super().__init__(writer.definition, records, seed, big)
        self.writer, self.older, self.foreign, self.now_millis = writer, list(older), foreign, now_millis
        self.known_ids = {writer.schema_id, *known_ids, *(w.schema_id for w in older)}
        if foreign is not None:
            self.known_ids.add(foreign[0].schema_id)
        self._parsed: dict[Any, Any] = {}

    def available(self) -> tuple[str, ...]:
        """The kinds this mutator can make with what it was given."""
        present = {f.avro for f in self.fields}
        required = {f.avro for f in self.fields if not f.nullable}
        missing = {
            "valid_older": not self.older,
            "foreign_schema": self.foreign is None,
            "far_future": self.now_millis is None or "timestamp" not in present,
            "null_required": not required & {"string", "bytes", "boolean", "timestamp", *_NUMERIC},
            **{kind: not present & set(types) for kind, types in _FIELD_KINDS.items()},
        }
        return tuple(k for k in FRAME_KINDS if not missing.get(k, False))

    def generate(
        self, n: int, *, kinds: Iterable[str] | None = None, valid_share: float = 0.0
    ) -> list[Mutant]:
        """``n`` values: a ``valid_share`` of valid ones, the rest spread evenly over ``kinds``
        (default: every kind :meth:`available`)."""
        plan = self._plan(n, kinds or self.available(), valid_share, self.available())
        return [self._one(kind) for kind in plan]

    def encode(self, definition: Mapping[str, Any], record: Mapping[str, Any], schema_id: int) -> bytes:
        """``record`` encoded with ``definition`` (its timestamps as plain longs) and framed."""
        key = json.dumps(definition, sort_keys=True)
        if key not in self._parsed:
            self._parsed[key] = fastavro.parse_schema(_plain(definition), _write_hint=True, _force=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self._parsed[key], _as_epoch(record, self.fields))
        return struct.pack(">bI", 0, schema_id) + buffer.getvalue()

    def _valid(self, record: Mapping[str, Any]) -> bytes:
        return self.encode(self.writer.definition, record, self.writer.schema_id)

    def _one(self, kind: str) -> Mutant:
        index, record = self._base()
        frame = self._valid(record)
        rng = self.rng
        if kind == "valid":
            return Mutant(kind, frame, base=index)
        if kind == "valid_older":
            older = self._choice(self.older)
            data = self.encode(older.definition, record, older.schema_id)
            return Mutant(kind, data, detail=f"schema id {older.schema_id}", base=index)
        if kind == "random_bytes":
            data = bytes(rng.integers(0, 256, int(rng.integers(0, 65))).tolist())
            data = b"\x00" + data[1:] if data and rng.random() < 0.5 else data
            return Mutant(kind, data, detail=f"{len(data)} random bytes")
        if kind == "truncated":
            cut = int(rng.integers(0, 5)) if rng.random() < 0.25 else int(rng.integers(5, len(frame)))
            return Mutant(kind, frame[:cut], detail=f"cut after {cut} of {len(frame)} bytes", base=index)
        if kind == "padded":
            extra = bytes(rng.integers(0, 256, int(rng.integers(1, 33))).tolist())
            return Mutant(kind, frame + extra, detail=f"+ {len(extra)} bytes", base=index)
        if kind == "wrong_magic":
            magic = int(rng.integers(1, 256))
            return Mutant(kind, bytes([magic]) + frame[1:], detail=f"magic byte {magic:#04x}", base=index)
        if kind == "unknown_schema_id":
            schema_id = self._choice([0, 1, 0x7FFFFFFF, 0xFFFFFFFF, int(rng.integers(0, 2**32))])
            while schema_id in self.known_ids:
                schema_id = int(rng.integers(0, 2**32))
            return Mutant(kind, frame[:1] + struct.pack(">I", schema_id) + frame[5:], None, schema_id,
                          f"schema id {schema_id}", index)  # fmt: skip
        if kind == "foreign_schema":
            other, others = self.foreign
            if rng.random() < 0.5:
                data = self.encode(other.definition, self._choice(others), other.schema_id)
                return Mutant(kind, data, detail=f"a valid record of schema id {other.schema_id}")
            data = frame[:1] + struct.pack(">I", other.schema_id) + frame[5:]
            return Mutant(kind, data, detail=f"this body framed with schema id {other.schema_id}", base=index)
        if kind == "bit_flip":
            body = bytearray(frame)
            flips = sorted(int(p) for p in rng.integers(5 * 8, len(frame) * 8, int(rng.integers(1, 5))))
            for bit in flips:
                body[bit // 8] ^= 1 << (bit % 8)
            return Mutant(kind, bytes(body), detail=f"bits {flips} flipped", base=index)
        if kind == "empty":
            return Mutant(kind, b"", detail="empty value")
        if kind == "tombstone":
            return Mutant(kind, None, detail="tombstone")
        return self._field_mutant(kind, index, record)

    def _field_mutant(self, kind: str, index: int, record: dict) -> Mutant:
        definition = self.writer.definition
        rng = self.rng
        if kind == "null_required":
            field = self._pick("string", "bytes", *_NUMERIC, "boolean", "timestamp", nullable=False)
            value, definition = None, _retyped(definition, field.name, None)
        else:  # far_future and the kinds of _FIELD_KINDS
            field = self._pick(*_FIELD_KINDS.get(kind, ("timestamp",)))
        if kind == "huge_string":
            value = self._huge_text((100_000, 900_000))
        elif kind == "invalid_utf8":
            kept = str(record.get(field.name) or "").encode()[: int(rng.integers(0, 8))]
            value, definition = self._choice(_BAD_UTF8) + kept, _retyped(definition, field.name, "bytes")
        elif kind == "nan_inf":
            value = self._choice([float("nan"), float("inf"), float("-inf")])
        elif kind == "extreme_number":
            value = self._choice(_FRAME_EXTREMES[field.avro])
        elif kind == "extreme_timestamp":
            value = self._choice(_FRAME_TIMESTAMPS)
        elif kind == "far_future":
            value = self.now_millis + int(rng.integers(7_200_000, 400 * 86_400_000))
        record[field.name] = value
        data = self.encode(definition, record, self.writer.schema_id)
        shown = repr(value) if not isinstance(value, str) else f"{len(value):,} characters"
        return Mutant(kind, data, field.name, value, f"{field.name} = {shown}", index)


def _plain(definition: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``definition`` whose timestamp fields are plain longs (any long is written as is)."""
    plain = copy.deepcopy(dict(definition))

    def strip(avro_type: Any) -> Any:
        if isinstance(avro_type, list):
            return [strip(branch) for branch in avro_type]
        if isinstance(avro_type, dict) and avro_type.get("logicalType") in _TIMESTAMPS:
            return avro_type["type"]
        return avro_type

    for spec in plain["fields"]:
        spec["type"] = strip(spec["type"])
    return plain


def _retyped(definition: Mapping[str, Any], name: str, avro_type: str | None) -> dict[str, Any]:
    """A copy of ``definition`` with field ``name`` of ``avro_type``, or made nullable (``None``)."""
    changed = copy.deepcopy(dict(definition))
    for spec in changed["fields"]:
        if spec["name"] != name:
            continue
        if avro_type is None:
            spec["type"] = ["null", spec["type"]]
        elif isinstance(spec["type"], list):  # keep the union (its index is on the wire)
            spec["type"] = [b if b == "null" else avro_type for b in spec["type"]]
        else:
            spec["type"] = avro_type
    return changed


def _as_epoch(record: Mapping[str, Any], fields: Sequence[_Field]) -> dict[str, Any]:
    """``record`` with its timestamp datetimes as epoch numbers in their field's unit."""
    out = dict(record)
    for field in fields:
        value = out.get(field.name)
        if field.avro == "timestamp" and isinstance(value, datetime):
            delta = (value if value.tzinfo else value.replace(tzinfo=UTC)) - _EPOCH
            seconds = delta.days * 86_400 + delta.seconds
            out[field.name] = seconds * field.per_second + delta.microseconds * field.per_second // 1_000_000
    return out


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

__all__ = ["FRAME_KINDS", "LINE_KINDS", "FrameMutator", "LineMutator", "Mutant", "Writer", "schema_fields"]
