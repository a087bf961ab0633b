"""How far ``driftline ingest`` got through a file, kept in Kafka with the records.

Ingest writes in Kafka transactions (like Kafka Connect's exactly-once source
connectors, KIP-618): each transaction holds a slice of the file's records, their dead
letters and one *position* record on the compacted ledger topic
(``<topic_prefix>driftline.ingest``), keyed by ``<pipeline>/<source>/<absolute path>``::

    {"records": 20000, "digest": "<sha256 hex>", "done": false}

``records`` counts the input records (valid and dead-lettered) committed so far, and
``digest`` is the SHA-256 of their original bytes, each preceded by its length as 8
bytes big-endian. The records and the position become visible together or not at all,
so after any failure the ledger says exactly which records are in Kafka: a re-run
skips that many (checking the digest, so an edited file is not silently skipped),
writes the rest, and never produces a record twice. A file that grew since
(appended lines) continues where it stopped; ``--from-start`` ingests a file whole
again on purpose.

The ledger is read once per run with ``read_committed``; compaction keeps about one
record per file. The producer's ``transactional.id`` is
``driftline.ingest.<pipeline>.<source>.<hash of the path>``, so a second ingest of the
same file fences the first (its open transaction is aborted), while different files
of one source ingest side by side.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from driftline.kafka.clients import COMPACTED
from driftline.kafka.reading import read_topic

LEDGER_TOPIC = "driftline.ingest"
LEDGER_CONFIG = COMPACTED


def ledger_key(pipeline: str, source: str, path: Path) -> str:
    return f"{pipeline}/{source}/{path.resolve()}"


def transactional_id(key: str) -> str:
    pipeline, source, _ = key.split("/", 2)
    return f"driftline.ingest.{pipeline}.{source}.{hashlib.sha256(key.encode()).hexdigest()[:16]}"


@dataclass(frozen=True)
class Position:
    """The committed prefix of a file: its record count and digest; ``done`` once whole."""

    records: int = 0
    digest: str = hashlib.sha256().hexdigest()
    done: bool = False

    def to_json(self) -> bytes:
        return json.dumps({"records": self.records, "digest": self.digest, "done": self.done}).encode()

    @classmethod
    def from_json(cls, value: bytes) -> Position:
        data = json.loads(value)
        return cls(int(data["records"]), str(data["digest"]), bool(data["done"]))


class Digest:
    """SHA-256 over records' original bytes, each framed by its 8-byte length."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, raw: bytes) -> None:
        self._hash.update(len(raw).to_bytes(8, "big"))
        self._hash.update(raw)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def read_position(
    bootstrap: str, topic: str, key: str, settings: Mapping[str, Any] | None = None
) -> Position | None:
    """The newest committed position of ``key`` on the ledger topic, or ``None``."""
    position = None
    for message in read_topic(
        bootstrap, topic, settings=settings, timeout=90.0
    ):  # past a left-open transaction
        if message.key() == key.encode():
            position = None if message.value() is None else Position.from_json(message.value())
    return position
