"""The streaming source's row schema: the reader schema's fields plus Kafka metadata.

Avro -> Spark SQL types (the Arrow batches the source yields use the matching Arrow
types exactly, see :func:`driftline.kafka.bulk_decode.arrow_schema`):

=============================  ===========
Avro                           Spark
=============================  ===========
string                         STRING
int / long                     INT / BIGINT
float / double                 FLOAT / DOUBLE
boolean                        BOOLEAN
bytes                          BINARY
long timestamp-millis/-micros  TIMESTAMP
int date                       DATE
["null", T]                    T, nullable
=============================  ===========
"""

from __future__ import annotations

from typing import Any

from driftline.avro.registry import RegisteredSchema
from driftline.errors import SchemaError

#: Metadata columns every source row carries, after the data columns.
METADATA_COLUMNS: list[tuple[str, str]] = [
    ("_topic", "STRING"),
    ("_partition", "INT"),
    ("_offset", "BIGINT"),
    ("_timestamp", "TIMESTAMP"),
    ("_key", "BINARY"),
    ("_schema_id", "BIGINT"),
    ("_raw", "BINARY"),
    ("_reason", "STRING"),
    ("_detail", "STRING"),
]

_SIMPLE = {
    "string": "STRING",
    "int": "INT",
    "long": "BIGINT",
    "float": "FLOAT",
    "double": "DOUBLE",
    "boolean": "BOOLEAN",
    "bytes": "BINARY",
}


def spark_type(name: str, avro_type: Any) -> str:
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    non_null = [b for b in branches if b != "null"]
    if len(non_null) == 1:
        only = non_null[0]
        if isinstance(only, str) and only in _SIMPLE:
            return _SIMPLE[only]
        if isinstance(only, dict):
            logical, base = only.get("logicalType"), only.get("type")
            if logical in ("timestamp-millis", "timestamp-micros") and base == "long":
                return "TIMESTAMP"
            if logical == "date" and base == "int":
                return "DATE"
            if logical is None and base in _SIMPLE:
                return _SIMPLE[base]
    raise SchemaError(
        f"field {name!r} has Avro type {avro_type!r}, which the streaming source does not map; "
        f"supported: {', '.join(_SIMPLE)}, timestamp-millis/-micros, date, and nullable unions of them"
    )


def source_columns(reader: RegisteredSchema) -> list[tuple[str, str]]:
    """(name, Spark type) of every column the source yields, data first."""
    data = [(f["name"], spark_type(f["name"], f["type"])) for f in reader.definition["fields"]]
    clash = {name for name, _ in data} & {name for name, _ in METADATA_COLUMNS}
    if clash:
        raise SchemaError(
            f"{reader.subject} v{reader.version} has field(s) {sorted(clash)} that collide with "
            f"the source's metadata columns {[n for n, _ in METADATA_COLUMNS]}"
        )
    return data + METADATA_COLUMNS


def nullable_fields(reader: RegisteredSchema) -> list[str]:
    """The reader schema's top-level fields whose type is a union with ``null``."""
    fields = reader.definition["fields"]
    return [f["name"] for f in fields if isinstance(f["type"], list) and "null" in f["type"]]


def source_ddl(reader: RegisteredSchema) -> str:
    return ", ".join(f"`{name}` {kind}" for name, kind in source_columns(reader))
