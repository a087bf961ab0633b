"""Bulk decoding of Confluent-framed Avro records into one Arrow table.

Record-by-record fastavro decodes ~65k records/s. The values of one schema id, put back
to back into one block of an in-memory Avro Object Container File and read by polars'
Rust reader, decode far faster (DESIGN.md, "Facts measured"). The container's schema is
the writer's with the 5-byte Confluent header as a leading ``fixed`` field, so framed
values go into the block as they are, with no per-record slicing. :class:`BulkDecoder`
does this per writer schema id, resolves writer to reader on the Arrow side, and hands a
group whose block is not trusted to :class:`~driftline.kafka.codec.AvroDecoder` (the
reference), so that exactly the bad records fail. One bad body costs its whole group the
reference's speed.

Why a guard
-----------
A block is a record count and bodies with no boundaries between them; polars reads
``count`` records and ignores what is left. So a damaged body need not raise: trailing
bytes shift every later record, a truncated body borrows its neighbour's bytes. Seen with
polars 2.1: damage mid-block usually fails (invalid UTF-8, a length past the end, or a
Rust panic, caught here, whose message still reaches stderr), but trailing bytes on the
last body pass silently and shifted neighbours can decode without error. polars also
reads some bytes unlike fastavro: a boolean byte other than 0/1 is False (fastavro:
True), union branch 2 is the value (fastavro: error), an ``int`` beyond 32 bits wraps
(fastavro: the large int), dates and timestamps outside Python's range decode (fastavro:
error).

So a block is accepted only if its decoded columns re-derive its bytes
(``_layout_matches``): each record's canonical encoded size (zigzag varints,
length-prefixed strings, fixed floats, one byte per boolean and union branch) equals its
body's length; each boolean and branch byte, read back at its computed offset, is the
decoded value; each varint ends with the byte its value ends with; dates and timestamps
are within Python's range. A reader never consumes fewer bytes for a value than its
canonical encoding, and polars reads a block from a slice of exactly the declared size.
So if canonical sizes equal body lengths row by row, the consumed sizes (summing to at
most the block size) equal them too, field by field: every record was read from exactly
its own bytes. Aligned bytes give both readers the same value except for the divergences
above, which the byte and range checks exclude.

Residual risk: (1) the argument rests on two observed polars properties, reads bounded by
the block and fields decoded in order; ``pl.read_avro`` is marked unstable, so re-run the
tests on a polars upgrade. (2) For aligned float, double, string, bytes and long values
polars is trusted to read what fastavro reads (bit copies; strict UTF-8 in both); a polars
bug confined to those would pass the guard. Conservative by design: a non-canonical but
valid encoding costs a fallback, never a wrong value; writers with types outside the
supported set, renamed records, aliases, incompatible promotions or nullable-to-required
fields always take the reference path. Deliberate differences from the reference: an
``int`` beyond 32 bits, which fastavro returns, is ``DECODE_FAILED`` (Arrow int32 cannot
hold it); defaults of added fields follow the Avro spec (a ``timestamp-millis`` default
is epoch millis, a ``bytes`` default is code points 0-255), where fastavro returns the
raw JSON value.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
from polars.exceptions import PanicException

from driftline.errors import SchemaError
from driftline.kafka.codec import AvroDecoder
from driftline.kafka.framing import HEADER_SIZE, MAGIC_BYTE
from driftline.kafka.registry import RegisteredSchema, SchemaRegistry
from driftline.quality.outcome import Invalid
from driftline.quality.reasons import ReasonCode

logger = logging.getLogger(__name__)

_UTC_MICROS = pa.timestamp("us", tz="UTC")
_ARROW_TYPES: dict[tuple[str, str | None], pa.DataType] = {
    ("string", None): pa.string(),
    ("int", None): pa.int32(),
    ("long", None): pa.int64(),
    ("float", None): pa.float32(),
    ("double", None): pa.float64(),
    ("boolean", None): pa.bool_(),
    ("bytes", None): pa.binary(),
    ("long", "timestamp-millis"): _UTC_MICROS,
    ("long", "timestamp-micros"): _UTC_MICROS,
    ("int", "date"): pa.date32(),
}
# Avro schema resolution's promotions (writer, reader), besides identical types.
_PROMOTIONS = {
    ("int", "long"), ("int", "float"), ("int", "double"), ("long", "float"), ("long", "double"),
    ("float", "double"), ("string", "bytes"), ("bytes", "string"),
}  # fmt: skip
# Raw values fastavro can turn into Python dates and datetimes; it raises outside them.
_PYTHON_RANGE = {
    "timestamp-millis": (-62_135_596_800_000, 253_402_300_799_999),
    "timestamp-micros": (-62_135_596_800_000_000, 253_402_300_799_999_999),
    "date": (-719_162, 2_932_896),
}
_VARINT_LIMITS = np.array([1 << (7 * k) for k in range(1, 10)], dtype=np.uint64)
_SYNC = b"driftline-bulk\x00\x01"  # any 16 bytes: the reader only compares it with itself
_HEADER_FIELD = "_driftline_confluent_header"


@dataclass(frozen=True)
class _AvroType:
    """A field type the bulk path understands: a primitive, maybe logical, maybe nullable."""

    base: str
    logical: str | None = None
    nullable: bool = False
    null_first: bool = True

    @property
    def arrow(self) -> pa.DataType:
        return _ARROW_TYPES[(self.base, self.logical)]


def _avro_type(avro_type: Any) -> _AvroType | None:
    """The field type as :class:`_AvroType`, or ``None`` when it has no Arrow mapping here."""
    if isinstance(avro_type, list):
        values = [branch for branch in avro_type if branch != "null"]
        inner = _avro_type(values[0]) if len(avro_type) == 2 and len(values) == 1 else None
        if inner is None or inner.nullable:
            return None
        return replace(inner, nullable=True, null_first=avro_type[0] == "null")
    if isinstance(avro_type, dict):
        base, logical = avro_type.get("type"), avro_type.get("logicalType")
    else:
        base, logical = avro_type, None
    known = isinstance(base, str) and (base, logical) in _ARROW_TYPES
    return _AvroType(base, logical) if known else None


def arrow_schema(reader: RegisteredSchema) -> pa.Schema:
    """The Arrow schema that records of ``reader`` decode to: its fields, in order, all nullable.

    Parameters
    ----------
    reader:
        A record schema whose fields are strings, ints, longs, floats, doubles, booleans,
        bytes, ``timestamp-millis`` / ``timestamp-micros`` longs, ``date`` ints, or
        ``["null", T]`` unions of them.

    Raises
    ------
    SchemaError
        For any other field type, naming the field and the type.

    Notes
    -----
    Timestamps of either precision become ``timestamp[us, tz=UTC]``: Spark rejects an
    Arrow batch whose timestamps have no time zone.
    """
    fields = []
    for field in reader.definition.get("fields", []):
        avro_type = _avro_type(field["type"])
        if avro_type is None:
            raise SchemaError(
                f"{reader.subject} v{reader.version}: field {field['name']!r} has Avro type "
                f"{json.dumps(field['type'])}, which has no Arrow mapping; supported: string, int, "
                "long, float, double, boolean, bytes, long timestamp-millis/timestamp-micros, "
                'int date, and ["null", T] unions of these'
            )
        fields.append(pa.field(field["name"], avro_type.arrow, nullable=True))
    return pa.schema(fields)


@dataclass(frozen=True)
class DecodedBatch:
    """The outcome of :meth:`BulkDecoder.decode`, one row per input value, in input order.

    ``table`` has the columns of :func:`arrow_schema`; rows that failed are all null.
    ``reasons`` and ``details`` hold the :class:`ReasonCode` value and a human detail where
    ``ok`` is False (``None`` elsewhere); ``schema_ids`` is the id in each value's framing
    (``None`` when not framed).
    """

    table: pa.Table
    ok: np.ndarray
    reasons: list[str | None]
    details: list[str | None]
    schema_ids: list[int | None]


@dataclass(frozen=True)
class _Group:
    """Values decoded together: their input positions, the rows of the good ones, the bad ones."""

    positions: np.ndarray
    table: pa.Table  # one row per position not in failures, in order
    failures: dict[int, Invalid]


@dataclass(frozen=True)
class _WriterPlan:
    """How records of one writer schema become rows of the reader's Arrow schema."""

    schema_id: int
    header: bytes  # Object Container File header announcing the writer schema
    layout: list[tuple[str, _AvroType]] | None  # writer fields, in order; None: no fast path
    columns: tuple[str, ...]  # reader fields the writer has; the others take their defaults
    missing: str | None  # why no record of this writer resolves, if none can


class BulkDecoder:
    """Decodes many framed Avro records at once into Arrow, resolved to one reader schema.

    Parameters
    ----------
    registry:
        Where writer schemas are looked up by the id in each value's header.
    reader:
        The schema every row is resolved to; :func:`arrow_schema` gives the table's schema.

    Notes
    -----
    Build one per reader schema where decoding runs (in the data source's ``read()``, on
    the executor); it keeps one plan per writer schema id it has seen. It pickles when the
    registry does. Results are identical to :class:`AvroDecoder` record by record, value
    for value and reason for reason, except where the module docstring says otherwise.
    """

    def __init__(self, registry: SchemaRegistry, reader: RegisteredSchema) -> None:
        self.registry = registry
        self.reader = reader
        self.schema = arrow_schema(reader)
        fields = reader.definition["fields"]
        self._types = {f["name"]: _avro_type(f["type"]) for f in fields}
        self._defaults = {f["name"]: self._default(f) for f in fields if "default" in f}
        self._reference = AvroDecoder(registry, reader)
        self._plans: dict[int, _WriterPlan] = {}
        self._null_row = pa.Table.from_pylist([{}], schema=self.schema)

    def decode(self, values: Sequence[bytes | None]) -> DecodedBatch:
        """Decode ``values`` (Kafka message values); bad ones are rows with ``ok`` False."""
        raw = [b"" if value is None else value for value in values]
        lengths = np.fromiter(map(len, raw), dtype=np.int64, count=len(raw))
        joined = b"".join(raw)
        schema_ids = _schema_ids(np.frombuffer(joined, dtype=np.uint8), lengths)
        framed_ids = [None if schema_id < 0 else schema_id for schema_id in schema_ids.tolist()]
        groups = [self._by_reference(values, np.flatnonzero(schema_ids < 0), None)]
        for schema_id in sorted(set(framed_ids) - {None}):
            positions = np.flatnonzero(schema_ids == schema_id)
            # one schema id for the whole batch is the common case: the joined values are its block
            block = joined if len(positions) == len(raw) else b"".join([raw[p] for p in positions])
            groups.append(self._decode_group(values, schema_id, positions, block, lengths[positions]))
        return self._assemble(len(raw), groups, framed_ids)

    def _decode_group(
        self,
        values: Sequence[bytes | None],
        schema_id: int,
        positions: np.ndarray,
        block: bytes,
        lengths: np.ndarray,
    ) -> _Group:
        writer = self.registry.by_id(schema_id)
        if writer is None:
            return self._by_reference(values, positions, None)
        plan = self._plan(writer)
        if plan.missing is not None:
            failed = Invalid(ReasonCode.DECODE_FAILED, plan.missing, raw=b"")
            failures = {p: replace(failed, raw=values[p]) for p in positions.tolist()}
            return _Group(positions, self._null_row.slice(0, 0), failures)
        if plan.layout is not None:
            table = self._read_block(plan, block, lengths)
            if table is not None:
                return _Group(positions, table, {})
            logger.info("bulk_decode_fallback schema_id=%s records=%d", schema_id, len(positions))
        return self._by_reference(values, positions, plan)

    def _read_block(self, plan: _WriterPlan, block: bytes, lengths: np.ndarray) -> pa.Table | None:
        """The framed values decoded by polars and resolved, or ``None`` if not to be trusted."""
        container = b"".join([plan.header, _varint(len(lengths)), _varint(len(block)), block, _SYNC])
        try:
            decoded = pl.read_avro(io.BytesIO(container)).to_arrow()
        except (Exception, PanicException) as exc:  # damaged bodies fail in many ways, some as panics
            logger.debug("bulk_decode_block_failed error=%s", f"{type(exc).__name__}: {exc}"[:200])
            return None
        buffer = np.frombuffer(block, dtype=np.uint8)
        if decoded.num_rows != len(lengths) or not _layout_matches(decoded, plan.layout, buffer, lengths):
            return None
        columns = {name: decoded.column(name) for name in plan.columns}
        try:
            return self._complete(columns, len(lengths))
        except pa.ArrowException:  # a promotion Arrow will not cast: let the reference decide
            return None

    def _by_reference(
        self, values: Sequence[bytes | None], positions: np.ndarray, plan: _WriterPlan | None
    ) -> _Group:
        """Decode record by record: exact reasons and details for the bad ones."""
        failures: dict[int, Invalid] = {}
        good: dict[int, dict[str, Any]] = {}
        for position in positions.tolist():
            outcome = self._reference.decode(values[position])
            if outcome.ok:
                good[position] = outcome.value
            else:
                failures[position] = outcome
        if plan is None or not good:
            return _Group(positions, self._null_row.slice(0, 0), failures)
        written = pa.schema([self.schema.field(name) for name in plan.columns])
        try:
            rows = pa.Table.from_pylist(list(good.values()), schema=written)
        except pa.ArrowException:  # fastavro accepts e.g. an int beyond 32 bits; Arrow cannot hold it
            for position, value in list(good.items()):
                try:
                    pa.Table.from_pylist([value], schema=written)
                except pa.ArrowException as exc:
                    detail = f"schema id {plan.schema_id}: {exc}"
                    failures[position] = Invalid(ReasonCode.DECODE_FAILED, detail[:500], raw=values[position])
                    del good[position]
            rows = pa.Table.from_pylist(list(good.values()), schema=written)
        columns = {name: rows.column(name) for name in plan.columns}
        return _Group(positions, self._complete(columns, rows.num_rows), failures)

    def _complete(self, columns: dict[str, pa.ChunkedArray], n: int) -> pa.Table:
        """Reader-ordered table: written columns cast to the reader's types, defaults elsewhere."""
        arrays = []
        for field in self.schema:
            if field.name in columns:
                # unsafe only for int -> float promotions, which round as fastavro's would
                safe = not pa.types.is_floating(field.type)
                arrays.append(columns[field.name].cast(field.type, safe=safe))
            else:
                arrays.append(pa.repeat(self._defaults[field.name], n))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _plan(self, writer: RegisteredSchema) -> _WriterPlan:
        if writer.schema_id not in self._plans:
            self._plans[writer.schema_id] = self._make_plan(writer)
        return self._plans[writer.schema_id]

    def _make_plan(self, writer: RegisteredSchema) -> _WriterPlan:
        written = {f["name"]: _avro_type(f["type"]) for f in writer.definition.get("fields", [])}
        fast = _full_name(writer.definition) == _full_name(self.reader.definition)
        fast = fast and None not in written.values()
        columns, missing = [], None
        for field in self.reader.definition["fields"]:
            name = field["name"]
            if name in written:
                columns.append(name)
                fast = fast and _resolves(written[name], self._types[name])
            elif field.get("aliases"):
                fast = False  # alias matching is left to the reference decoder
            elif name not in self._defaults and missing is None:
                missing = (
                    f"schema id {writer.schema_id}: reader field {name!r} is not in the writer "
                    f"schema and has no default"
                )
        fast = fast and _HEADER_FIELD not in written
        header = _container_header(writer.definition)
        layout = list(written.items()) if fast else None
        return _WriterPlan(writer.schema_id, header, layout, tuple(columns), missing)

    def _default(self, field: dict[str, Any]) -> pa.Scalar:
        """A field's default as an Arrow scalar, read the way the Avro spec reads JSON defaults."""
        value, avro_type = field["default"], self._types[field["name"]]
        try:
            if value is not None and avro_type.base == "bytes":
                value = value.encode("latin-1")  # JSON bytes defaults are code points 0-255
            elif value is not None and avro_type.logical is not None:
                raw = value * 1000 if avro_type.logical == "timestamp-millis" else value
                storage = pa.int32() if avro_type.logical == "date" else pa.int64()
                return pa.array([raw], type=storage).cast(avro_type.arrow)[0]
            return pa.scalar(value, type=avro_type.arrow)
        except (pa.ArrowException, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(
                f"{self.reader.subject} v{self.reader.version}: field {field['name']!r}: default "
                f"{value!r} is not a valid {avro_type.base} value: {exc}"
            ) from exc

    def _assemble(self, n: int, groups: list[_Group], schema_ids: list[int | None]) -> DecodedBatch:
        """Put the groups' rows back in input order, with an all-null row for each failure."""
        reasons: list[str | None] = [None] * n
        details: list[str | None] = [None] * n
        rows = np.zeros(n, dtype=np.int64)  # row of each value in the stacked tables; 0 = all null
        tables, stacked = [self._null_row], 1
        for group in groups:
            good = group.positions
            if group.failures:
                good = good[~np.isin(good, list(group.failures))]
            rows[good] = np.arange(stacked, stacked + len(good))
            tables.append(group.table)
            stacked += len(good)
            for position, invalid in group.failures.items():
                reasons[position], details[position] = invalid.reason.value, invalid.detail
        table = pa.concat_tables(tables)
        in_order = np.array_equal(rows, np.arange(1, n + 1))  # e.g. one clean group: no copy
        table = table.slice(1) if in_order else table.take(rows)
        return DecodedBatch(table, rows > 0, reasons, details, schema_ids)


def _layout_matches(
    table: pa.Table, layout: list[tuple[str, _AvroType]], block: np.ndarray, lengths: np.ndarray
) -> bool:
    """Whether the decoded rows re-derive the block's bytes (see the module docstring)."""
    ends = np.cumsum(lengths)
    position = ends - lengths + HEADER_SIZE  # offset of the current field in each record
    for name, avro_type in layout:
        column = table.column(name)
        present = column.is_valid().to_numpy()
        if avro_type.nullable:
            branch = present if avro_type.null_first else ~present
            if not np.array_equal(block.take(position, mode="clip"), branch * 2):
                return False
            position = position + 1
        sizes = _value_sizes(avro_type, column, present, block, position)
        if sizes is None:
            return False
        position = position + np.where(present, sizes, 0)
    return np.array_equal(position, ends)


def _value_sizes(
    avro_type: _AvroType, column: pa.ChunkedArray, present: np.ndarray, block: np.ndarray, at: np.ndarray
) -> np.ndarray | None:
    """Canonical encoded size of each value, or ``None`` if a byte read back disagrees."""
    base = avro_type.base
    if base in ("float", "double"):
        return np.full(len(present), 4 if base == "float" else 8)
    if base == "boolean":
        values = column.fill_null(False).to_numpy(zero_copy_only=False)
        agrees = ~present | (block.take(at, mode="clip") == values)
        return np.ones(len(present), dtype=np.int64) if agrees.all() else None
    if base in ("string", "bytes"):
        lengths = pc.binary_length(column).fill_null(0).to_numpy().astype(np.int64)
        return _zigzag_varints(lengths)[1] + lengths
    storage = pa.int32() if base == "int" else pa.int64()
    values = column.cast(storage).fill_null(0).to_numpy().astype(np.int64)
    zigzag, sizes = _zigzag_varints(values)
    # int wraps to 32 bits in polars: only the last byte of a 5-byte varint shows it
    last = zigzag >> (7 * (sizes - 1)).astype(np.uint64)
    agrees = block.take(at + sizes - 1, mode="clip") == last
    low, high = _PYTHON_RANGE.get(avro_type.logical, (-(2**63), 2**63 - 1))
    agrees &= (low <= values) & (values <= high)
    return sizes if (agrees | ~present).all() else None


def _zigzag_varints(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each int64's zigzag encoding and the byte count of its canonical varint."""
    zigzag = ((values << 1) ^ (values >> 63)).view(np.uint64)
    return zigzag, np.searchsorted(_VARINT_LIMITS, zigzag, side="right") + 1


def _resolves(written: _AvroType, read: _AvroType) -> bool:
    """Whether Avro resolution maps the writer's type to the reader's for every value."""
    same_kind = written.base == read.base or (written.base, read.base) in _PROMOTIONS
    return same_kind and written.logical == read.logical and (read.nullable or not written.nullable)


def _full_name(definition: dict[str, Any]) -> str:
    name, namespace = definition.get("name", ""), definition.get("namespace")
    return f"{namespace}.{name}" if namespace and "." not in name else name


def _varint(n: int) -> bytes:
    """Avro's zigzag varint for a non-negative ``n`` (counts and sizes in the container)."""
    n <<= 1
    out = bytearray()
    while n > 0x7F:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _schema_ids(joined: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The schema id in each value's Confluent header, -1 where the value is not framed.

    The rule of :func:`~driftline.kafka.framing.unframe`, over all values at once.
    """
    starts = np.cumsum(lengths) - lengths
    framed = np.flatnonzero(lengths >= HEADER_SIZE)
    framed = framed[joined[starts[framed]] == MAGIC_BYTE]
    schema_id = np.zeros(len(framed), dtype=np.int64)
    for offset in range(1, HEADER_SIZE):  # 4 bytes, big-endian
        schema_id = schema_id << 8 | joined[starts[framed] + offset]
    schema_ids = np.full(len(lengths), -1, dtype=np.int64)
    schema_ids[framed] = schema_id
    return schema_ids


def _container_header(definition: dict[str, Any]) -> bytes:
    """Object Container File header: magic, metadata (schema, null codec), sync marker.

    The schema is the writer's with the Confluent header as a leading ``fixed`` field, so
    framed values go into the block as they are, without a copy of each body.
    """
    header = {
        "name": _HEADER_FIELD,
        "type": {"type": "fixed", "name": "ConfluentHeader", "size": HEADER_SIZE},
    }
    framed = {**definition, "fields": [header, *definition.get("fields", [])]}
    metadata = {b"avro.schema": json.dumps(framed).encode(), b"avro.codec": b"null"}
    entries = b"".join(_varint(len(k)) + k + _varint(len(v)) + v for k, v in metadata.items())
    return b"Obj\x01" + _varint(len(metadata)) + entries + _varint(0) + _SYNC
