"""Reading a source's dead letters back, and replaying chosen ones into its topic, exactly once.

**Inspect** reads the dead-letter topic (``read_committed``) and the replay ledger.

**Replay** sends chosen dead letters back through ingest's validation and then, on the
source topic, through the job, once the cause is fixed (a schema registered, a suite
relaxed, an upstream bug mended):

- a dead letter from ``ingest`` holds the input record's text (a JSON line, a Parquet
  row as JSON, a CSV row read with the input file's header): it is validated against
  the source's writer schema as ``driftline ingest`` validates it, and encoded;
- one from the job (``decode``, ``rule``, ``late``) holds the original Confluent frame:
  it is decoded with the registry as the job decodes it, and sent unchanged (same
  schema id, same bytes). Row rules and lateness are the job's to judge again: a
  record they still reject is dead-lettered again, with a new reason if it has one;
- a record that still fails validation is not sent: the replay counts it by reason;
  a dead letter whose value was cut to fit a Kafka message is not sent either (its
  whole original is in the ``dead_letters`` table and the source topic).

Exactly once: each sent record and a ledger entry for its dead letter (key
``letter/<pipeline>/<source>/<partition>/<offset>``) are written in one Kafka
transaction on the compacted ledger topic ``<topic_prefix>driftline.replays``, with the
producer's ``transactional.id`` ``driftline.replay.<pipeline>.<source>``. A replay
first fences any earlier one (its open transaction is aborted), then reads the ledger,
and skips every dead letter already replayed: repeating a replay, or running an
interrupted one again, never sends a record twice. Each replay also records itself
(``replay/<pipeline>/<source>/<id>``: what it chose, when, how many it sent, skipped and
left by reason) on the same topic. Sent records carry ``driftline.replay.id`` and
``driftline.replay.of`` (``<dead-letter topic>/<partition>/<offset>``) headers.

Counting: the job counts a replayed record like any record it reads, so its own
``read = valid + dead_lettered + late`` keeps holding, and for the dead letters
``count = replayed + outstanding`` (``driftline dlq inspect``). Records older than the
watermark when they come back are late (``LATE_DATA``) for the job, as any record.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException

from driftline import faults
from driftline.avro.codec import AvroDecoder, AvroEncoder
from driftline.avro.registry import SchemaRegistry
from driftline.avro.validation import RecordValidator
from driftline.config import PipelineConfig
from driftline.dlq.selection import Selection, StoredLetter
from driftline.errors import BrokerError, DeliveryError
from driftline.kafka.clients import (
    COMPACTED,
    TopicSpec,
    consumer_side,
    ensure_topics,
    make_admin,
    make_producer,
    produce,
    request_timeout,
)
from driftline.kafka.dead_letter import PREFIX, DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import Stage

logger = logging.getLogger(__name__)

LEDGER_TOPIC = "driftline.replays"
LEDGER_CONFIG = COMPACTED
NOT_REPLAYABLE = "NOT_REPLAYABLE"  # a cut value, or a CSV row whose input file is gone
REPLAY_HEADER = "driftline.replay."
READ_TIMEOUT = 90.0  # an open transaction of another writer holds a read_committed read this long


@dataclass
class ReplaySummary:
    """What one replay did; also the record it leaves on the ledger topic."""

    replay_id: str
    pipeline: str
    source: str
    selection: dict[str, Any]
    started: str
    finished: str | None = None
    selected: int = 0  # dead letters the selection chose
    already_replayed: int = 0  # of those, sent by an earlier replay: skipped
    sent: int = 0  # sent to the source topic now
    still_failing: dict[str, int] = field(default_factory=dict)  # not sent, by reason
    dry_run: bool = False
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.as_dict())


def ledger_topic(config: PipelineConfig) -> str:
    return config.kafka.topic_prefix + LEDGER_TOPIC


def _prefix(config: PipelineConfig, source: str, kind: str) -> str:
    return f"{kind}/{config.name}/{source}/"


def read_letters(config: PipelineConfig, source: str) -> list[StoredLetter]:
    """Every committed record of ``source``'s dead-letter topic, in (partition, offset) order."""
    kafka = config.kafka
    messages = read_topic(kafka.bootstrap_servers, config.dead_letter_topic(source), timeout=READ_TIMEOUT,
                          settings=consumer_side(kafka.librdkafka("consumer")))  # fmt: skip
    out = []
    for m in messages:
        headers = m.headers() or []
        if not any(k == PREFIX + "reason" for k, _ in headers):
            continue  # not a driftline dead letter (someone else wrote to the topic)
        letter = DeadLetter.from_message(m.value(), headers)
        out.append(StoredLetter(m.partition(), m.offset(), letter, m.key()))
    return out


def read_ledger(config: PipelineConfig, source: str) -> tuple[dict[str, dict], list[dict]]:
    """(replayed dead letters by ``PARTITION:OFFSET``, this source's replays oldest first)."""
    kafka = config.kafka
    topic = ledger_topic(config)
    letters, replays = _prefix(config, source, "letter"), _prefix(config, source, "replay")
    replayed: dict[str, dict] = {}
    runs: dict[str, dict] = {}
    try:
        messages = read_topic(kafka.bootstrap_servers, topic, timeout=READ_TIMEOUT,
                              settings=consumer_side(kafka.librdkafka("consumer")))  # fmt: skip
    except BrokerError as exc:  # no ledger topic yet: nothing was replayed
        if "does not exist" in str(exc):
            return {}, []
        raise
    for m in messages:
        key = (m.key() or b"").decode()
        if m.value() is None:
            continue
        if key.startswith(letters):
            replayed[key[len(letters) :].replace("/", ":")] = json.loads(m.value())
        elif key.startswith(replays):
            runs[key[len(replays) :]] = json.loads(m.value())
    return replayed, sorted(runs.values(), key=lambda r: r.get("started") or "")


class _Revalidator:
    """Ingest's validation of one dead letter; returns the bytes to send, or the reason not to."""

    def __init__(self, config: PipelineConfig, source: str, registry: SchemaRegistry) -> None:
        spec = config.source(source)
        writer = registry.get(spec.subject, spec.schema_version)
        self.decoder = AvroDecoder(registry, writer)
        self.encoder = AvroEncoder(writer)
        self.json_validator = RecordValidator(writer)
        self.text_validator = RecordValidator(writer, text=True)
        self._headers: dict[str, list[str] | None] = {}

    def __call__(self, stored: StoredLetter) -> tuple[bytes | None, str]:
        letter = stored.letter
        if stored.cut:
            return None, NOT_REPLAYABLE
        if letter.stage is not Stage.INGEST:
            outcome = self.decoder.decode(letter.raw)
            return (letter.raw, "ok") if outcome.ok else (None, outcome.reason.value)
        record, validator = self._parsed(letter)
        if record is None:
            return None, validator  # the reason
        outcome = validator.validate(record, raw=letter.raw)
        if not outcome.ok:
            return None, outcome.reason.value
        return self.encoder.encode(outcome.value), "ok"

    def _parsed(self, letter: DeadLetter):
        """The input record of an ingest dead letter, and the validator for its format."""
        name = (letter.input_file or "").lower()
        if name.endswith(".csv"):
            header = self._csv_header(letter.input_file)
            if header is None:
                return None, NOT_REPLAYABLE
            try:
                row = next(csv.reader(io.StringIO(letter.raw.decode("utf-8"))))
            except (UnicodeDecodeError, StopIteration, csv.Error):
                return None, "NOT_PARSEABLE"
            if len(row) != len(header):
                return None, "NOT_PARSEABLE"
            return dict(zip(header, row, strict=True)), self.text_validator
        try:
            return json.loads(letter.raw), self.json_validator
        except (ValueError, RecursionError):
            return None, "NOT_PARSEABLE"

    def _csv_header(self, path: str | None) -> list[str] | None:
        if path not in self._headers:
            try:
                with Path(path or "").open(newline="", encoding="utf-8") as handle:
                    self._headers[path] = next(csv.reader(handle), None)
            except OSError:
                self._headers[path] = None
        return self._headers[path]


def replay(
    config: PipelineConfig,
    source: str,
    selection: Selection,
    *,
    registry: SchemaRegistry,
    replay_id: str | None = None,
    dry_run: bool = False,
    transaction_records: int = 500,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReplaySummary:
    """Replay the dead letters of ``source`` that ``selection`` chooses (see the module notes)."""
    started = clock()
    summary = ReplaySummary(
        replay_id=replay_id or started.strftime("%Y%m%dT%H%M%S%fZ"), pipeline=config.name, source=source,
        selection=selection.as_dict(), started=started.isoformat(timespec="milliseconds"), dry_run=dry_run,
    )  # fmt: skip
    kafka = config.kafka
    spec = config.source(source)
    topic, ledger = config.topic(source), ledger_topic(config)
    revalidate = _Revalidator(config, source, registry)
    producer = None
    if not dry_run:
        ensure_topics(make_admin(kafka.bootstrap_servers, kafka.librdkafka("admin")), [
            TopicSpec(topic, spec.partitions, kafka.replication_factor),
            TopicSpec(ledger, 1, kafka.replication_factor, config=LEDGER_CONFIG),
        ], timeout=request_timeout(kafka.librdkafka("admin")))  # fmt: skip
        transactional = {"transactional.id": f"driftline.replay.{config.name}.{source}"}
        producer = make_producer(kafka.bootstrap_servers, kafka.librdkafka("producer"), transactional)
        try:  # fences an earlier replay of this source: its open transaction is aborted
            producer.init_transactions(60)
        except KafkaException as exc:
            raise DeliveryError(f"cannot start Kafka transactions for the replay: {exc}") from exc
    replayed, _ = read_ledger(config, source)
    chosen = [s for s in read_letters(config, source) if selection.matches(s)]
    summary.selected = len(chosen)
    failing: Counter = Counter()
    pending: list[tuple[StoredLetter, bytes]] = []
    transactions = 0

    def commit() -> None:
        nonlocal transactions
        if producer is None or not pending:
            pending.clear()
            return
        producer.begin_transaction()
        dlq = config.dead_letter_topic(source)
        for stored, value in pending:
            of = f"{dlq}/{stored.partition}/{stored.offset}"
            headers = [(REPLAY_HEADER + "id", summary.replay_id.encode()),
                       (REPLAY_HEADER + "of", of.encode())]  # fmt: skip
            produce(producer, topic, key=stored.key, value=value, headers=headers)
            entry = {"replay_id": summary.replay_id, "at": clock().isoformat(timespec="milliseconds"),
                     "reason": stored.letter.reason.value}  # fmt: skip
            key = f"{_prefix(config, source, 'letter')}{stored.partition}/{stored.offset}"
            produce(producer, ledger, key=key.encode(), value=json.dumps(entry).encode())
        if faults.armed():
            producer.flush(30)
            faults.point(faults.REPLAY_POINT, transactions)
        producer.commit_transaction(60)
        summary.sent += len(pending)
        transactions += 1
        pending.clear()

    try:
        for stored in chosen:
            if stored.place in replayed:
                summary.already_replayed += 1
                continue
            value, status = revalidate(stored)
            if value is None:
                failing[status] += 1
                continue
            if dry_run:
                summary.sent += 1
                continue
            pending.append((stored, value))
            if len(pending) >= transaction_records:
                commit()
        commit()
    except KafkaException as exc:
        summary.error = f"delivery failed: {exc.args[0].str() if exc.args else exc}"
        if producer is not None:
            with contextlib.suppress(KafkaException):  # the batch is reported; the next replay fences it
                producer.abort_transaction(30)
    summary.still_failing = dict(sorted(failing.items()))
    summary.finished = clock().isoformat(timespec="milliseconds")
    if producer is not None:
        _record(producer, ledger, f"{_prefix(config, source, 'replay')}{summary.replay_id}", summary)
    logger.info("replay_done source=%s id=%s selected=%d sent=%d skipped=%d failing=%d", source,
                summary.replay_id, summary.selected, summary.sent, summary.already_replayed,
                sum(failing.values()))  # fmt: skip
    return summary


def _record(producer, ledger: str, key: str, summary: ReplaySummary) -> None:
    """The replay's own record on the ledger topic (its own transaction)."""
    try:
        producer.begin_transaction()
        produce(producer, ledger, key=key.encode(), value=summary.to_json().encode())
        producer.commit_transaction(60)
    except KafkaException as exc:
        logger.warning("replay_record_failed id=%s error=%s", summary.replay_id, exc)
        summary.error = summary.error or f"the replay's record was not written: {exc}"
    finally:
        producer.flush(30)


__all__ = ["ReplaySummary", "ledger_topic", "read_ledger", "read_letters", "replay"]
