"""Dead-letter records: the original bytes, untouched, plus context headers.

Headers follow Kafka Connect's ``errors.deadletterqueue.context.headers`` idea with a
``driftline.error.`` prefix. Values are UTF-8 text, so any Kafka tool can show them:

==================================  ==================================================
header                              value
==================================  ==================================================
``driftline.error.reason``          stable reason code, e.g. ``TYPE_MISMATCH``
``driftline.error.stage``           ``ingest``, ``decode``, ``rule`` or ``late``
``driftline.error.message``         human detail (field, expected, got)
``driftline.error.pipeline``        pipeline name
``driftline.error.source``          driftline source name
``driftline.error.time``            when it was dead-lettered, ISO-8601 UTC
``driftline.error.topic``           original topic (decode / rule / late stages)
``driftline.error.partition``       original partition
``driftline.error.offset``          original offset
``driftline.error.schema.id``       schema id in the record's framing, when known
``driftline.error.input.file``      input file (ingest stage)
``driftline.error.input.location``  ``line N`` / ``row N`` in that file (ingest stage)
``driftline.error.batch.id``        Spark micro-batch that wrote it (streaming stages)
==================================  ==================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from driftline.quality.outcome import Invalid
from driftline.quality.reasons import ReasonCode, Stage

PREFIX = "driftline.error."
_OPTIONAL = ("topic", "partition", "offset", "schema_id", "input_file", "input_location", "batch_id")


def _header_name(attribute: str) -> str:
    return PREFIX + attribute.replace("_id", ".id").replace("input_", "input.")


@dataclass(frozen=True)
class DeadLetter:
    """One rejected record with everything needed to find, understand and replay it."""

    raw: bytes
    reason: ReasonCode
    message: str
    pipeline: str
    source: str
    time: datetime = field(default_factory=lambda: datetime.now(UTC))
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    schema_id: int | None = None
    input_file: str | None = None
    input_location: str | None = None
    batch_id: int | None = None

    @property
    def stage(self) -> Stage:
        return self.reason.stage

    @classmethod
    def from_invalid(cls, invalid: Invalid, *, pipeline: str, source: str, **context) -> DeadLetter:
        return cls(
            raw=invalid.raw,
            reason=invalid.reason,
            message=invalid.detail,
            pipeline=pipeline,
            source=source,
            **context,
        )

    def headers(self) -> list[tuple[str, bytes]]:
        pairs = [
            (PREFIX + "reason", self.reason.value),
            (PREFIX + "stage", self.stage.value),
            (PREFIX + "message", self.message),
            (PREFIX + "pipeline", self.pipeline),
            (PREFIX + "source", self.source),
            (PREFIX + "time", self.time.isoformat(timespec="milliseconds")),
        ]
        for attribute in _OPTIONAL:
            value = getattr(self, attribute)
            if value is not None:
                pairs.append((_header_name(attribute), str(value)))
        return [(name, value.encode()) for name, value in pairs]

    @classmethod
    def from_message(cls, value: bytes | None, headers: list[tuple[str, bytes]] | None) -> DeadLetter:
        """Rebuild a dead letter from a consumed Kafka message (value and headers)."""
        text = {k: v.decode() for k, v in (headers or []) if k.startswith(PREFIX) and v is not None}

        def optional(attribute: str, convert=str):
            raw = text.get(_header_name(attribute))
            return None if raw is None else convert(raw)

        return cls(
            raw=value or b"",
            reason=ReasonCode(text[PREFIX + "reason"]),
            message=text.get(PREFIX + "message", ""),
            pipeline=text.get(PREFIX + "pipeline", ""),
            source=text.get(PREFIX + "source", ""),
            time=datetime.fromisoformat(text[PREFIX + "time"]),
            topic=optional("topic"),
            partition=optional("partition", int),
            offset=optional("offset", int),
            schema_id=optional("schema_id", int),
            input_file=optional("input_file"),
            input_location=optional("input_location"),
            batch_id=optional("batch_id", int),
        )

    @property
    def origin(self) -> tuple[str | None, int | None, int | None]:
        """The original record's Kafka coordinates: what makes a dead letter unique."""
        return (self.topic, self.partition, self.offset)
