"""The ingest loop: read, validate, produce; count every record exactly once.

Invariants, checked by the tests and printed in the summary:
``read == valid + dead_lettered`` and ``read == delivered + undelivered``. A record the
broker never acknowledged (after librdkafka's retries, within ``message.timeout.ms``)
is counted in ``undelivered`` and makes the CLI exit non-zero.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from driftline.avro.codec import AvroEncoder
from driftline.avro.registry import SchemaRegistry, open_registry
from driftline.avro.validation import RecordValidator
from driftline.config import PipelineConfig
from driftline.ingest.readers import InputFormat, detect_format, read_records
from driftline.kafka.clients import (
    DeliveryReport,
    TopicSpec,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
)
from driftline.kafka.dead_letter import DeadLetter
from driftline.quality.outcome import Invalid, Outcome
from driftline.quality.reasons import ReasonCode

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int], None]


@dataclass
class IngestSummary:
    """What one ingest run did; ``to_json`` is the CLI's one-line summary."""

    source: str
    read: int = 0
    valid: int = 0
    dead_lettered: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    delivered: int = 0
    undelivered: int = 0
    delivery_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def reconciles(self) -> bool:
        return self.read == self.valid + self.dead_lettered == self.valid + sum(self.by_reason.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "valid": self.valid,
            "dead_lettered": self.dead_lettered,
            "by_reason": dict(sorted(self.by_reason.items())),
            "delivered": self.delivered,
            "undelivered": self.undelivered,
            "seconds": round(self.seconds, 3),
        }

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


def open_pipeline_registry(config: PipelineConfig) -> SchemaRegistry:
    kafka = config.kafka
    return open_registry(
        config.path(config.schemas_dir), kafka.schema_registry_url, kafka.schema_registry_client()
    )


def ingest_file(
    config: PipelineConfig,
    source: str,
    path: Path | str,
    *,
    input_format: str | None = None,
    registry: SchemaRegistry | None = None,
    progress: ProgressCallback | None = None,
    flush_timeout: float = 120.0,
) -> IngestSummary:
    """Ingest one file into ``source``'s topic and dead-letter topic.

    Raises :class:`~driftline.errors.ConfigError` for a bad source, path or format;
    never for a bad record. Delivery failures are reported in the summary.
    """
    path = Path(path)
    source_config = config.source(source)
    fmt: InputFormat = detect_format(path, input_format)
    registry = registry or open_pipeline_registry(config)
    writer = registry.get(source_config.subject, source_config.schema_version)
    validator = RecordValidator(writer, text=fmt is InputFormat.CSV)
    encoder = AvroEncoder(writer)
    topic, dlq_topic = config.topic(source), config.dead_letter_topic(source)
    bootstrap = config.kafka.bootstrap_servers

    ensure_topics(
        make_admin(bootstrap, config.kafka.librdkafka("admin")),
        [
            TopicSpec(topic, source_config.partitions, config.kafka.replication_factor),
            TopicSpec(dlq_topic, source_config.partitions, config.kafka.replication_factor),
        ],
    )
    producer = make_producer(bootstrap, config.kafka.librdkafka("producer"))
    report = DeliveryReport()
    summary = IngestSummary(source=source)
    started = time.monotonic()
    key_field = source_config.entity_id

    for record in read_records(path, fmt):
        summary.read += 1
        outcome: Outcome
        if record.error is not None:
            outcome = Invalid(ReasonCode.NOT_PARSEABLE, record.error, raw=record.raw)
        else:
            outcome = validator.validate(record.value, raw=record.raw)
        if outcome.ok:
            try:
                value = encoder.encode(outcome.value)
            except Exception as exc:  # noqa: BLE001 - an unencodable record is a dead letter
                outcome = Invalid(ReasonCode.SCHEMA_INVALID, f"cannot encode: {exc}", raw=record.raw)
            else:
                key = outcome.value.get(key_field) if key_field else None
                produce(
                    producer,
                    topic,
                    value=value,
                    key=None if key is None else str(key).encode(),
                    on_delivery=report,
                )
                summary.valid += 1
        if not outcome.ok:
            letter = DeadLetter.from_invalid(
                outcome,
                pipeline=config.name,
                source=source,
                input_file=str(path),
                input_location=record.location,
            )
            produce(producer, dlq_topic, value=letter.raw, headers=letter.headers(), on_delivery=report)
            summary.dead_lettered += 1
            summary.by_reason[outcome.reason.value] += 1
        if summary.read % 1000 == 0:
            producer.poll(0)
            if progress is not None:
                progress(record.position)

    remaining = producer.flush(flush_timeout)
    summary.delivered = sum(report.delivered.values())
    summary.undelivered = sum(report.failed.values()) + remaining
    summary.delivery_errors = report.errors + (
        [f"{remaining} still queued after {flush_timeout}s"] if remaining else []
    )
    summary.seconds = time.monotonic() - started
    logger.info(
        "ingest_done source=%s topic=%s read=%d valid=%d dead_lettered=%d undelivered=%d",
        source, topic, summary.read, summary.valid, summary.dead_lettered, summary.undelivered,
    )  # fmt: skip
    return summary
