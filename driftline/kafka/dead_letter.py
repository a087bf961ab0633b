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
``driftline.error.original.size``   only on a cut value: the original's length in bytes
``driftline.error.original.sha256``  only on a cut value: the original's SHA-256, hex
==================================  ==================================================

A dead letter must fit in one Kafka message (the producer's ``message.max.bytes``,
librdkafka's default 1,000,000 bytes) with its headers, or it could never be written
and the batch holding it would fail on every replay. :meth:`DeadLetter.fitted` keeps
the first bytes of an original that does not fit and says so in the two
``original.*`` headers; the message header is cut to :data:`MESSAGE_LIMIT` characters,
and a key longer than a quarter of the limit becomes its SHA-256 (:func:`fit_key`).
The whole original stays where it came from: the input file (``input.file`` and
``input.location``) or the source topic (``topic``, ``partition``, ``offset``) and the
job's ``dead_letters`` table, which keeps every byte.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from driftline.quality.outcome import Invalid
from driftline.quality.reasons import ReasonCode, Stage

PREFIX = "driftline.error."
_OPTIONAL = (
    "topic", "partition", "offset", "schema_id", "input_file", "input_location", "batch_id",
    "original_size", "original_sha256",
)  # fmt: skip
MESSAGE_LIMIT = 2_000  # characters of the message header
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000  # librdkafka's message.max.bytes
RECORD_OVERHEAD = 1_024  # bytes kept free for Kafka's record framing and header lengths


def _header_name(attribute: str) -> str:
    return PREFIX + attribute.replace("_", ".")


def fit_key(key: bytes | None, limit: int) -> bytes | None:
    """A dead letter's key: the original's, or its SHA-256 (hex) when it takes more than a
    quarter of ``limit`` (the key is never cut: a cut key would partition differently
    from any other record's, the hash at least is stable)."""
    if key is None or len(key) <= limit // 4:
        return key
    return hashlib.sha256(key).hexdigest().encode()


def max_message_bytes(producer_settings: Mapping[str, Any] | None) -> int:
    """The producer's limit on one message: ``message.max.bytes`` or librdkafka's default."""
    return int((producer_settings or {}).get("message.max.bytes", DEFAULT_MAX_MESSAGE_BYTES))


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
    original_size: int | None = None
    original_sha256: str | None = None

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
            (PREFIX + "message", _cut(self.message)),
            (PREFIX + "pipeline", self.pipeline),
            (PREFIX + "source", self.source),
            (PREFIX + "time", self.time.isoformat(timespec="milliseconds")),
        ]
        for attribute in _OPTIONAL:
            value = getattr(self, attribute)
            if value is not None:
                pairs.append((_header_name(attribute), str(value)))
        return [(name, value.encode("utf-8", "replace")) for name, value in pairs]

    def fitted(self, limit: int, key: bytes | None = None) -> DeadLetter:
        """This dead letter, cut to fit one Kafka message of at most ``limit`` bytes.

        Room for the value = ``limit - RECORD_OVERHEAD - len(key) - header bytes`` (the
        headers counted with the two ``original.*`` headers a cut adds). A value within
        it comes back unchanged; a longer one keeps its first ``room`` bytes and records
        the original's size and SHA-256.
        """
        cut = replace(self, original_size=len(self.raw), original_sha256="0" * 64)
        room = limit - RECORD_OVERHEAD - len(key or b"") - sum(len(n) + len(v) for n, v in cut.headers())
        if len(self.raw) <= room:
            return self
        digest = hashlib.sha256(self.raw).hexdigest()
        return replace(self, raw=self.raw[: max(room, 0)], original_size=len(self.raw),
                       original_sha256=digest)  # fmt: skip

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
            original_size=optional("original_size", int),
            original_sha256=optional("original_sha256"),
        )

    @property
    def origin(self) -> tuple[str | None, int | None, int | None]:
        """The original record's Kafka coordinates: what makes a dead letter unique."""
        return (self.topic, self.partition, self.offset)


def _cut(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 1] + "\u2026"
