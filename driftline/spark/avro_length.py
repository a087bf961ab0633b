"""The length of a value's Avro binary encoding, computed from the decoded value in Spark SQL.

The decode stage rejects a body with bytes after its record (``from_avro`` reads one
record and ignores the rest). To see them it needs the length the record takes, which it
used to get by encoding the decoded struct again with ``to_avro``: building and writing
an Avro record per row, about a sixth of the decode's time. This module instead builds,
once per writer schema on the driver, one arithmetic Spark SQL expression that adds up
the encoded sizes field by field, per Avro's binary encoding (specification 1.11,
"Binary Encoding"):

* ``null``: 0 bytes; ``boolean``: 1; ``float``: 4; ``double``: 8; ``fixed``: its size;
* ``int`` and ``long``: a zig-zag varint, ``z = (v << 1) ^ (v >> 63)`` written 7 bits a
  byte, so ``k`` bytes hold exactly ``-2^(7k-1) <= v < 2^(7k-1)`` (1 to 10 bytes);
* ``string`` and ``bytes``: a long (the byte count ``n``) then ``n`` bytes;
* ``enum``: a varint of the symbol's index; a ``union``: a varint of the branch's
  index, then the value in that branch;
* ``record``: its fields one after another, nothing else.

Logical types are sized by their underlying number: ``date`` as ``unix_date``,
``timestamp-millis`` as ``unix_millis``, ``timestamp-micros`` as ``unix_micros`` (the
value spark-avro read, so exactly the one written); ``uuid`` is a string.

That encoding is canonical, the same bytes in every Avro library, for everything but
arrays and maps (a writer may split them into blocks of any size). For a schema with an
array or a map, a decimal, another logical type, or a union of two non-null branches
(spark-avro turns those into a struct or widens them), :func:`encoded_length` returns
``None`` and the caller falls back to another check.

Where it runs: :func:`encoded_length` runs on the driver when the decode expression is
built (once per batch and writer schema); Spark evaluates the expression on the
executors, per row, in generated code. No Python runs per record.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column
from pyspark.sql import functions as F

_FIXED = {"null": 0, "boolean": 1, "float": 4, "double": 8}
_NUMBERS = ("int", "long")
_SIZED_LOGICAL = {"date": F.unix_date, "timestamp-millis": F.unix_millis, "timestamp-micros": F.unix_micros}


class _Unsupported(Exception):
    """A schema part whose length this module does not compute (see the module text)."""


def varint_length(value: Column) -> Column:
    """Bytes of the zig-zag varint of a long or int column: the least ``k`` in 1..10 with
    ``-2^(7k-1) <= value < 2^(7k-1)``."""
    cases = None
    for k in range(1, 10):
        bound = 1 << (7 * k - 1)
        hit = (value >= F.lit(-bound)) & (value < F.lit(bound))
        cases = F.when(hit, F.lit(k)) if cases is None else cases.when(hit, F.lit(k))
    assert cases is not None
    return cases.otherwise(F.lit(10))


def _index_length(index: int) -> int:
    """Bytes of the zig-zag varint of a non-negative constant (an enum or union index)."""
    zigzag, size = index << 1, 1
    while zigzag >= 0x80:
        zigzag >>= 7
        size += 1
    return size


def encoded_length(schema: Any, value: Column) -> Column | None:
    """An expression for the length in bytes of ``value`` (a column spark-avro decoded
    with ``schema``, the parsed Avro JSON) in Avro's binary encoding, or ``None`` where
    that length is not canonical or not computed here (arrays, maps, decimals, unions of
    two non-null branches, other logical types)."""
    try:
        return _Lengths().of(schema, value, namespace="")
    except _Unsupported:
        return None


class _Lengths:
    """One walk over a schema; remembers the named types (records, enums, fixed) it has
    met so a later reference by name is sized like the definition."""

    def __init__(self) -> None:
        self.named: dict[str, dict] = {}

    def of(self, schema: Any, value: Column, namespace: str) -> Column:
        if isinstance(schema, list):
            return self._union(schema, value, namespace)
        if isinstance(schema, str):
            return self._named_or_primitive(schema, value, namespace)
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind in ("record", "error", "enum", "fixed"):
            namespace = self._remember(schema, namespace)
        if kind in ("record", "error"):
            total: Column = F.lit(0)
            for field in schema.get("fields", []):
                total = total + self.of(field["type"], value.getField(field["name"]), namespace)
            return total
        if kind == "enum":
            return self._enum(schema, value)
        if kind == "fixed":
            if logical is not None:
                raise _Unsupported(f"fixed with logicalType {logical}")
            return F.lit(int(schema["size"]))
        if logical is not None:
            if kind in _NUMBERS and logical in _SIZED_LOGICAL:
                return varint_length(_SIZED_LOGICAL[logical](value))
            if not (kind == "string" and logical == "uuid"):
                raise _Unsupported(f"logicalType {logical}")
        if isinstance(kind, str):
            return self._named_or_primitive(kind, value, namespace)
        return self.of(kind, value, namespace)

    def _named_or_primitive(self, name: str, value: Column, namespace: str) -> Column:
        if name in _FIXED:
            return F.lit(_FIXED[name])
        if name in _NUMBERS:
            return varint_length(value)
        if name in ("string", "bytes"):
            size = F.octet_length(value)
            return varint_length(size) + size
        definition = self.named.get(name) or self.named.get(f"{namespace}.{name}")
        if definition is None:
            raise _Unsupported(f"type {name}")  # array, map or a name not defined before
        return self.of(definition, value, namespace)

    def _remember(self, schema: dict, namespace: str) -> str:
        name = schema.get("name", "")
        own = schema.get("namespace", namespace) if "." not in name else name.rpartition(".")[0]
        full = name if "." in name else (f"{own}.{name}" if own else name)
        self.named[full] = schema
        self.named.setdefault(full.rpartition(".")[2], schema)
        return own or ""

    def _enum(self, schema: dict, value: Column) -> Column:
        symbols = list(schema.get("symbols", []))
        long_ones = [(s, _index_length(i)) for i, s in enumerate(symbols) if _index_length(i) > 1]
        if not long_ones:
            return F.lit(1)
        cases = None
        for symbol, size in long_ones:
            cases = (F if cases is None else cases).when(value == F.lit(symbol), F.lit(size))
        assert cases is not None
        return cases.otherwise(F.lit(1))

    def _union(self, branches: list, value: Column, namespace: str) -> Column:
        non_null = [(i, b) for i, b in enumerate(branches) if b != "null"]
        nulls = [i for i, b in enumerate(branches) if b == "null"]
        if len(non_null) > 1:
            raise _Unsupported("union of two non-null branches")
        if not non_null:
            return F.lit(_index_length(nulls[0]))
        index, branch = non_null[0]
        present = F.lit(_index_length(index)) + self.of(branch, value, namespace)
        if not nulls:
            return present
        return F.when(value.isNull(), F.lit(_index_length(nulls[0]))).otherwise(present)
