"""Producer, consumer and admin construction with driftline's defaults.

Every client takes the user's librdkafka settings (SASL / SSL included) on top of
these defaults; user settings win.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from driftline.errors import BrokerError

logger = logging.getLogger(__name__)
librdkafka_logger = logging.getLogger("driftline.librdkafka")


class _RetryingIsInfo(logging.Filter):
    """librdkafka warns about states it retries by itself (``...: retrying``, such as a new
    broker's transaction coordinator still loading); nothing to act on, so they are INFO.
    If the retries run out, the failure reaches the caller as an error anyway."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and record.getMessage().rstrip().endswith("retrying"):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return record.levelno >= librdkafka_logger.getEffectiveLevel()


librdkafka_logger.addFilter(_RetryingIsInfo())

PRODUCER_DEFAULTS: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "compression.type": "zstd",
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "message.timeout.ms": 60_000,
    "retries": 2_147_483_647,
}


#: Settings of producers; a ``[kafka.client]`` table may hold them for every producer.
PRODUCER_ONLY = frozenset(
    {
        "acks", "request.required.acks", "batch.size", "batch.num.messages", "compression.type",
        "compression.codec", "compression.level", "enable.idempotence", "linger.ms",
        "queue.buffering.max.ms", "queue.buffering.max.messages", "queue.buffering.max.kbytes",
        "message.timeout.ms", "delivery.timeout.ms", "retries", "message.send.max.retries",
        "transactional.id", "transaction.timeout.ms", "partitioner", "max.in.flight",
        "max.in.flight.requests.per.connection",
    }
)  # fmt: skip


def consumer_side(settings: Mapping[str, Any] | None) -> dict[str, Any]:
    """``settings`` without producer-only keys (librdkafka warns about each one a consumer gets)."""
    return {k: v for k, v in (settings or {}).items() if k not in PRODUCER_ONLY}


def client_config(bootstrap: str, *layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """librdkafka settings: bootstrap, then each layer in order (later layers win)."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": librdkafka_logger}
    for layer in layers:
        config.update(layer or {})
    return config


_SILENT = logging.getLogger("driftline.librdkafka.check")
_SILENT.addHandler(logging.NullHandler())
_SILENT.propagate = False
# librdkafka's refusals that are about the settings themselves (a name, a value)
_NAME_OR_VALUE = re.compile(r"No such configuration property|Invalid value .*for configuration property")


def librdkafka_problem(role: str, settings: Mapping[str, Any]) -> str | None:
    """librdkafka's own verdict on ``settings`` for a ``producer`` or ``consumer``: None, or
    its message when it does not know a property or cannot parse a value (``No such
    configuration property: "compresion.type"``, ``Invalid value for configuration
    property ...``). A client is built without brokers and dropped at once: nothing
    connects, nothing is logged. Other refusals (no SASL provider or SSL file on this
    machine) are left to the real client where it runs."""
    from confluent_kafka import Consumer

    config = {**settings, "logger": _SILENT}
    config.pop("bootstrap.servers", None)
    try:
        if role == "consumer":
            Consumer({"group.id": "driftline-config-check", **config}).close()
        else:
            Producer(config)
    except (KafkaException, ValueError, TypeError) as error:
        kafka = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
        message = kafka.str() if kafka is not None else str(error)
        # only names and values: what this machine lacks (a SASL provider, an SSL file) is the
        # real client's to report where it runs
        return message if _NAME_OR_VALUE.search(message) else None
    return None


def make_producer(bootstrap: str, *layers: Mapping[str, Any] | None) -> Producer:
    return Producer(client_config(bootstrap, PRODUCER_DEFAULTS, *layers))


def make_admin(bootstrap: str, *layers: Mapping[str, Any] | None) -> AdminClient:
    return AdminClient(client_config(bootstrap, *layers))


DEFAULT_REQUEST_TIMEOUT = 30.0


def request_timeout(*layers: Mapping[str, Any] | None) -> float:
    """Seconds an admin request may wait for the broker: the settings' own
    ``socket.timeout.ms`` (librdkafka's timeout for network requests, set in
    ``[kafka.client]``), else :data:`DEFAULT_REQUEST_TIMEOUT`. So a pipeline that
    shortens the socket timeout hears of an unreachable broker as soon."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    value = merged.get("socket.timeout.ms")
    return int(value) / 1000 if value is not None else DEFAULT_REQUEST_TIMEOUT


# a compacted topic that keeps about one record per key (commit markers, ledgers): segments
# roll hourly so the cleaner can run, and it does once a tenth of the log is superseded
COMPACTED = {"cleanup.policy": "compact", "segment.ms": "3600000", "min.cleanable.dirty.ratio": "0.1"}


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int = 1
    replication_factor: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


def ensure_topics(admin: AdminClient, specs: Iterable[TopicSpec], timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    An existing topic is left as it is (its partition count is not changed).
    """
    specs = list(specs)
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise BrokerError(f"cannot list topics: {exc}") from exc
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [NewTopic(s.name, s.partitions, s.replication_factor, config=dict(s.config)) for s in missing],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise BrokerError(f"cannot create topic {name!r}: {exc}") from exc
    _wait_for_topics(admin, [s.name for s in missing], timeout)
    logger.info("topics_created names=%s", ",".join(sorted(created)))
    return created


def topic_ids(admin: AdminClient, names: Iterable[str], timeout: float = 30.0) -> dict[str, str | None]:
    """Kafka's topic id (the UUID assigned when a topic is created) of each of ``names``;
    None for a topic the cluster does not have. An unreachable cluster is a BrokerError."""
    from confluent_kafka import TopicCollection

    names = list(names)
    try:
        futures = admin.describe_topics(TopicCollection(names), request_timeout=timeout)
    except KafkaException as exc:
        raise BrokerError(f"cannot describe topics {names}: {exc}") from exc
    ids: dict[str, str | None] = {}
    for name, future in futures.items():
        try:
            ids[name] = str(future.result(timeout=timeout).topic_id)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise BrokerError(f"cannot describe topic {name!r}: {exc}") from exc
            ids[name] = None
    return ids


def _wait_for_topics(admin: AdminClient, names: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        if all(n in topics and not topics[n].error for n in names):
            return
        if time.monotonic() > deadline:
            raise BrokerError(f"topics {names} did not appear in metadata within {timeout}s")
        time.sleep(0.05)


class DeliveryReport:
    """Counts delivery outcomes per topic; keeps the first few errors for the message."""

    def __init__(self, keep_errors: int = 5) -> None:
        self.delivered: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self.errors: list[str] = []
        self._keep = keep_errors

    def __call__(self, error: KafkaError | None, message: Any) -> None:
        if error is None:
            self.delivered[message.topic()] += 1
            return
        self.failed[message.topic()] += 1
        if len(self.errors) < self._keep:
            self.errors.append(f"{message.topic()}: {error.str()}")


def produce(producer: Producer, topic: str, **kwargs: Any) -> None:
    """``Producer.produce`` that waits for room when the local queue is full."""
    while True:
        try:
            producer.produce(topic, **kwargs)
            return
        except BufferError:
            producer.poll(0.1)
