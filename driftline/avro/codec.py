"""Record-by-record Avro encoding and decoding with Confluent framing.

Decoding returns data, never raises for bad bytes: any input gives either
``Valid(record)`` or ``Invalid`` with ``NOT_FRAMED``, ``UNKNOWN_SCHEMA`` or
``DECODE_FAILED``. Python-side uses only, a record at a time: a reference profile read
from a topic, the dead-letter replay. The streaming job decodes in the JVM
(:mod:`driftline.spark.decode`).
"""

from __future__ import annotations

import io
from typing import Any

import fastavro

from driftline.avro.framing import FramingError, frame, unframe
from driftline.avro.registry import RegisteredSchema, SchemaRegistry
from driftline.quality.outcome import Invalid, Outcome, Valid
from driftline.quality.reasons import ReasonCode


class AvroEncoder:
    """Encodes records with one writer schema and frames them with its id."""

    def __init__(self, writer: RegisteredSchema) -> None:
        self.writer = writer

    def encode_body(self, record: dict[str, Any]) -> bytes:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, self.writer.parsed, record)
        return buffer.getvalue()

    def encode(self, record: dict[str, Any]) -> bytes:
        return frame(self.writer.schema_id, self.encode_body(record))


class AvroDecoder:
    """Decodes framed records written with any schema the registry knows.

    Parameters
    ----------
    registry:
        Where writer schemas are looked up by the id in each record's header.
    reader:
        The schema records are resolved to (Avro schema resolution: added fields take
        their defaults, removed fields are skipped). ``None`` decodes with the writer
        schema as is.
    """

    def __init__(self, registry: SchemaRegistry, reader: RegisteredSchema | None = None) -> None:
        self.registry = registry
        self.reader = reader

    def decode(self, data: bytes) -> Outcome:
        try:
            schema_id, body = unframe(data)
        except FramingError as exc:
            return Invalid(ReasonCode.NOT_FRAMED, str(exc), raw=bytes(data or b""))
        writer = self.registry.by_id(schema_id)
        if writer is None:
            return Invalid(ReasonCode.UNKNOWN_SCHEMA, f"schema id {schema_id} is not registered", raw=data)
        buffer = io.BytesIO(body)
        reader_schema = self.reader.parsed if self.reader is not None else None
        try:
            record = fastavro.schemaless_reader(buffer, writer.parsed, reader_schema)
        except Exception as exc:  # noqa: BLE001 - any failure of untrusted bytes is data
            detail = f"schema id {schema_id}: {type(exc).__name__}: {exc}"
            return Invalid(ReasonCode.DECODE_FAILED, detail[:500], raw=data)
        trailing = len(body) - buffer.tell()
        if trailing:
            return Invalid(
                ReasonCode.DECODE_FAILED,
                f"schema id {schema_id}: {trailing} trailing bytes after the record",
                raw=data,
            )
        return Valid(record, raw=data)
