"""The ingest loop: read, validate, produce in transactions; count every record once.

Invariants, checked by the tests and printed in the summary:
``read == valid + dead_lettered`` and ``read == delivered + undelivered``, over the
records this run read. ``delivered`` counts records in committed transactions (valid
records and dead letters alike); ``undelivered`` those of a transaction that was
aborted or never committed (the broker refused, the run was interrupted), which a
re-run writes. ``skipped`` counts the records an earlier run committed already
(:mod:`driftline.ingest.ledger`): a re-run of a failed or finished ingest produces
nothing twice.

No record stops a run: a line that does not parse, cannot be validated or is larger
than one Kafka message (``TOO_LARGE``) is a dead letter, cut to fit one message if it
must be (:meth:`~driftline.kafka.dead_letter.DeadLetter.fitted`). A failure of the
broker or of the run itself ends the run with its summary and the reason in
``error``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from driftline.avro.codec import AvroEncoder
from driftline.avro.registry import SchemaRegistry, open_registry
from driftline.avro.validation import RecordValidator
from driftline.config import PipelineConfig
from driftline.errors import ConfigError, DeliveryError
from driftline.ingest import ledger
from driftline.ingest.readers import InputFormat, InputRecord, detect_format, read_records
from driftline.kafka.clients import (
    DeliveryReport,
    TopicSpec,
    consumer_side,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
    request_timeout,
)
from driftline.kafka.dead_letter import DeadLetter, max_message_bytes
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
    skipped: int = 0
    error: str | None = None
    delivery_errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    # schema drift at the door: fields the data has and the writer schema lacks, per field
    # (records with one are dead letters, UNKNOWN_FIELD; this says which fields, how often)
    unknown_fields: Counter[str] = field(default_factory=Counter)

    @property
    def reconciles(self) -> bool:
        return (
            self.read == self.valid + self.dead_lettered == self.valid + sum(self.by_reason.values())
            and self.read == self.delivered + self.undelivered
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "read": self.read,
            "valid": self.valid,
            "dead_lettered": self.dead_lettered,
            "by_reason": dict(sorted(self.by_reason.items())),
            "delivered": self.delivered,
            "undelivered": self.undelivered,
            "skipped": self.skipped,
            "error": self.error,
            "seconds": round(self.seconds, 3),
            "unknown_fields": dict(sorted(self.unknown_fields.items())),
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
    from_start: bool = False,
    commit_records: int = 10_000,
    commit_seconds: float = 5.0,
) -> IngestSummary:
    """Ingest one file into ``source``'s topic and dead-letter topic, exactly once.

    Records are written in transactions of at most ``commit_records`` input records or
    ``commit_seconds`` seconds, each with the file's position on the ledger topic; a
    run resumes after the committed position unless ``from_start``. Raises
    :class:`~driftline.errors.ConfigError` for a bad source, path or format and for a
    file whose committed prefix changed; never for a bad record. A broker failure or
    an interruption is reported in the summary's ``error``.
    """
    path = Path(path)
    source_config = config.source(source)
    fmt: InputFormat = detect_format(path, input_format)
    registry = registry or open_pipeline_registry(config)
    writer = registry.get(source_config.subject, source_config.schema_version)
    validator = RecordValidator(writer, text=fmt is InputFormat.CSV)
    encoder = AvroEncoder(writer)
    kafka = config.kafka
    topic, dlq_topic = config.topic(source), config.dead_letter_topic(source)
    ledger_topic = kafka.topic_prefix + ledger.LEDGER_TOPIC
    bootstrap, settings = kafka.bootstrap_servers, kafka.librdkafka("producer")

    ensure_topics(
        make_admin(bootstrap, kafka.librdkafka("admin")),
        [
            TopicSpec(topic, source_config.partitions, kafka.replication_factor),
            TopicSpec(dlq_topic, source_config.partitions, kafka.replication_factor),
            TopicSpec(ledger_topic, 1, kafka.replication_factor, config=ledger.LEDGER_CONFIG),
        ],
        timeout=request_timeout(kafka.librdkafka("admin")),
    )
    key = ledger.ledger_key(config.name, source, path)
    report = DeliveryReport()
    producer = make_producer(bootstrap, settings, {"transactional.id": ledger.transactional_id(key)})
    try:
        # fence an earlier run of this file first (its open transaction is aborted), then read
        # the position: read before, a run still going could commit more after the read
        producer.init_transactions(60)
    except KafkaException as exc:
        raise DeliveryError(f"cannot start Kafka transactions on {bootstrap} for ingest: {exc}") from exc
    committed = (
        None if from_start else ledger.read_position(bootstrap, ledger_topic, key, consumer_side(settings))
    )
    records = read_records(path, fmt)
    digest = ledger.Digest()
    summary = IngestSummary(source=source)
    if committed is not None and committed.records:
        summary.skipped = _skip_committed(records, committed, digest, path)
    limit = max_message_bytes(settings)
    started = time.monotonic()
    key_field = source_config.entity_id
    pending = 0  # records of the open transaction

    def commit(done: bool) -> None:
        nonlocal pending
        position = ledger.Position(summary.skipped + summary.read, digest.hexdigest(), done)
        produce(producer, ledger_topic, key=key.encode(), value=position.to_json())
        producer.commit_transaction(60)
        summary.delivered += pending
        pending = 0

    try:
        producer.begin_transaction()
        opened = time.monotonic()
        for record in records:
            summary.read += 1
            pending += 1
            digest.update(record.raw)
            if isinstance(record.value, dict):
                summary.unknown_fields.update(validator.unknown_fields(record.value))
            outcome = _validated(validator, record)
            if outcome.ok:
                outcome = _produce_valid(producer, topic, encoder, outcome, record, key_field, report)
            if outcome.ok:
                summary.valid += 1
            else:
                letter = DeadLetter.from_invalid(
                    outcome, pipeline=config.name, source=source,
                    input_file=str(path), input_location=record.location,
                ).fitted(limit)  # fmt: skip
                produce(producer, dlq_topic, value=letter.raw, headers=letter.headers(), on_delivery=report)
                summary.dead_lettered += 1
                summary.by_reason[outcome.reason.value] += 1
            if pending >= commit_records or time.monotonic() - opened >= commit_seconds:
                commit(done=False)
                producer.begin_transaction()
                opened = time.monotonic()
            if summary.read % 1000 == 0:
                producer.poll(0)
                if progress is not None:
                    progress(record.position)
        commit(done=True)
    except (Exception, KeyboardInterrupt) as exc:  # noqa: BLE001 - the run ends with its summary, not a traceback
        logger.debug("ingest_failed source=%s", source, exc_info=True)
        summary.error = "interrupted" if isinstance(exc, KeyboardInterrupt) else _describe(exc)
        try:
            producer.abort_transaction(30)
        except KafkaException as abort:
            logger.warning("ingest_abort_failed source=%s error=%s", source, abort)
    summary.undelivered = pending  # the records of the transaction that did not commit
    summary.delivery_errors = report.errors
    summary.seconds = time.monotonic() - started
    logger.info(
        "ingest_done source=%s topic=%s read=%d valid=%d dead_lettered=%d undelivered=%d skipped=%d",
        source, topic, summary.read, summary.valid, summary.dead_lettered,
        summary.undelivered, summary.skipped,
    )  # fmt: skip
    return summary


def _skip_committed(records: Iterator[InputRecord], committed: ledger.Position, digest: ledger.Digest,
                    path: Path) -> int:  # fmt: skip
    """Read past the records an earlier run committed, checking they are the same bytes."""
    seen = 0
    for record in records:
        digest.update(record.raw)
        seen += 1
        if seen == committed.records:
            break
    if seen < committed.records or digest.hexdigest() != committed.digest:
        found = f"has only {seen} records" if seen < committed.records else "differs in them"
        raise ConfigError(
            f"--input: an earlier ingest of {path} committed its first {committed.records} records, "
            f"but the file {found} now; pass --from-start to ingest the whole file again "
            "(its records are then produced a second time)"
        )
    return seen


def _validated(validator: RecordValidator, record: InputRecord) -> Outcome:
    if record.error is not None:
        return Invalid(ReasonCode.NOT_PARSEABLE, record.error, raw=record.raw)
    try:
        return validator.validate(record.value, raw=record.raw)
    except Exception as exc:  # noqa: BLE001 - a record the validator chokes on is a dead letter
        return Invalid(ReasonCode.NOT_PARSEABLE, f"cannot validate: {_describe(exc)}", raw=record.raw)


def _produce_valid(producer, topic, encoder, outcome, record, key_field, report) -> Outcome:
    """Produce a valid record; a record that cannot be encoded or sent alone is an Invalid."""
    try:
        value = encoder.encode(outcome.value)
    except Exception as exc:  # noqa: BLE001 - an unencodable record is a dead letter
        return Invalid(ReasonCode.SCHEMA_INVALID, f"cannot encode: {exc}", raw=record.raw)
    key = outcome.value.get(key_field) if key_field else None
    try:
        produce(
            producer, topic, value=value, key=None if key is None else str(key).encode(), on_delivery=report
        )
    except KafkaException as exc:
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        if error is None or error.code() != KafkaError.MSG_SIZE_TOO_LARGE:
            raise
        return Invalid(
            ReasonCode.TOO_LARGE,
            f"encoded record is {len(value):,} bytes, more than one Kafka message holds "
            "(the producer's message.max.bytes)",
            raw=record.raw,
        )
    return outcome


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return f"Kafka: {exc.args[0].str()}"
    return f"{type(exc).__name__}: {exc}"[:500]
