"""Schema evolution checks between the versions of each subject.

The check itself is Apache Avro's own ``ReaderWriterCompatibilityChecker`` (the
``avro`` package, a port of the Java implementation Schema Registry uses); this
module only decides which (reader, writer) pairs a mode asks for, the same way
Confluent Schema Registry does:

=====================  ===========================================================
mode                   pairs checked for each new version ``vN``
=====================  ===========================================================
BACKWARD               reader ``vN`` reads data written with ``vN-1``
FORWARD                reader ``vN-1`` reads data written with ``vN``
FULL                   both of the above
*_TRANSITIVE           the same against every earlier version, not only ``vN-1``
NONE                   nothing
=====================  ===========================================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum

import avro.schema
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

from driftline.avro.registry import RegisteredSchema, SchemaRegistry


class CompatibilityMode(StrEnum):
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"


@dataclass(frozen=True)
class Incompatibility:
    """One (reader, writer) pair that does not resolve, with the offending fields."""

    subject: str
    reader_version: int
    writer_version: int
    kinds: tuple[str, ...]
    fields: tuple[str, ...]
    locations: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.subject}: v{self.reader_version} cannot read data written with "
            f"v{self.writer_version}: {', '.join(self.kinds)} "
            f"(field {', '.join(self.fields)} at {', '.join(self.locations)})"
        )


def _avro(schema: RegisteredSchema) -> avro.schema.Schema:
    return avro.schema.parse(json.dumps(schema.definition))


def check_pair(reader: RegisteredSchema, writer: RegisteredSchema) -> Incompatibility | None:
    """``None`` when ``reader`` can decode everything ``writer`` writes."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(_avro(reader), _avro(writer))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return None
    return Incompatibility(
        subject=reader.subject,
        reader_version=reader.version,
        writer_version=writer.version,
        kinds=tuple(sorted(k.value for k in result.incompatibilities)),
        fields=tuple(sorted(str(m) for m in result.messages)),
        locations=tuple(sorted(result.locations)),
    )


def check_subject(registry: SchemaRegistry, subject: str, mode: CompatibilityMode) -> list[Incompatibility]:
    """Every incompatibility between the versions of ``subject`` under ``mode``."""
    if mode is CompatibilityMode.NONE:
        return []
    schemas = [registry.get(subject, v) for v in registry.versions(subject)]
    transitive = mode.endswith("_TRANSITIVE")
    backward = mode.startswith(("BACKWARD", "FULL"))
    forward = mode.startswith(("FORWARD", "FULL"))
    problems: list[Incompatibility] = []
    for index, new in enumerate(schemas[1:], start=1):
        for old in schemas[:index] if transitive else [schemas[index - 1]]:
            pairs = ([(new, old)] if backward else []) + ([(old, new)] if forward else [])
            problems.extend(p for r, w in pairs if (p := check_pair(r, w)) is not None)
    return problems
