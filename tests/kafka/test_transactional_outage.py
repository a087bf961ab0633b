"""A broker that goes away in the middle of a transaction is ridden out: the writer commits
again when the broker is back, or, when the broker aborted the transaction meanwhile,
writes the batch again from its last committed marker. Every record is visible once."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from driftline.errors import DeliveryError
from driftline.kafka.broker import EmbeddedBroker, free_port
from driftline.kafka.reading import read_topic
from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter
from driftline.testing.live import LogWatch
from tests.conftest import QUICK_RESTART

pytestmark = pytest.mark.kafka
N, STOP_AT = 200, 120  # transactions of 50: two committed, the third open when the broker dies
# librdkafka's log line once a transaction's records timed out: it can only be aborted now
TRANSACTION_FAILED = "Current transaction failed"


def _records(batch: int) -> list[OutgoingRecord]:
    return [OutgoingRecord(value=b"v%d" % i, key=b"b%d-r%d" % (batch, i), position=(i,)) for i in range(N)]


def _restart_when(broker: EmbeddedBroker, ready) -> threading.Thread:
    """Start ``broker`` again (a thread) once ``ready()`` holds: the writer is mid-outage."""

    def run() -> None:
        deadline = time.monotonic() + 120
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.1)
        broker.start(timeout=60)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _batch_with_outage(broker: EmbeddedBroker, batch: int, stopped: list):
    """The batch's records; the broker is killed before record ``STOP_AT`` of the first reading."""

    def records():
        for record in _records(batch):
            if record.position == (STOP_AT,) and not stopped:
                broker.stop(force=True)
                stopped.append(True)
            yield record

    return records


@pytest.mark.timeout(600)
def test_a_broker_outage_mid_transaction_is_ridden_out(tmp_path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port(), overrides=QUICK_RESTART)
    bootstrap = broker.start(timeout=60).bootstrap
    try:

        def writer(settings: dict) -> TransactionalBatchWriter:
            return TransactionalBatchWriter(bootstrap=bootstrap, topic="out", markers_topic="markers",
                                            name="outage", settings=settings, transaction_records=50,
                                            commit_timeout=2.0, outage_seconds=240)  # fmt: skip

        # 1. the records are still within message.timeout.ms when the broker is back: the
        #    commit that timed out while it was away is tried again and succeeds
        patient, stopped = writer({}), []
        thread = _restart_when(broker, lambda: patient.retries >= 1)
        assert patient.write(0, _batch_with_outage(broker, 0, stopped)) == N
        thread.join()
        assert stopped and patient.retries >= 1 and patient.rewrites == 0

        # 2. the records time out while the broker is away (message.timeout.ms 3 s): the
        #    broker's transaction is aborted and the batch written again from the marker
        #    of its second transaction, record 100 on. The broker comes back once librdkafka
        #    says the transaction failed (its records timed out), not at a guessed moment
        hasty, stopped = writer({"message.timeout.ms": 3000, "transaction.timeout.ms": 3000}), []
        with LogWatch("driftline.librdkafka", TRANSACTION_FAILED) as failed:
            thread = _restart_when(broker, lambda: failed.seen.is_set() and hasty.retries >= 1)
            assert hasty.write(1, _batch_with_outage(broker, 1, stopped)) == N
            thread.join()
        assert stopped and hasty.rewrites >= 1

        visible = Counter(m.key() for m in read_topic(bootstrap, "out", isolation="read_committed"))
        assert len(visible) == 2 * N and set(visible.values()) == {1}, visible.most_common(3)
        assert TransactionalBatchWriter(bootstrap=bootstrap, topic="out", markers_topic="markers",
                                        name="outage").write(1, _records(1)) == 0  # fmt: skip

        # 3. records that cannot be read again cannot be rewritten: the batch fails with the
        #    broker's error, as before, rather than committing a part of it
        once, stopped = writer({"message.timeout.ms": 3000, "transaction.timeout.ms": 3000}), []
        with LogWatch("driftline.librdkafka", TRANSACTION_FAILED) as failed:
            thread = _restart_when(broker, lambda: failed.seen.is_set() and once.retries >= 1)
            with pytest.raises(DeliveryError, match="batch 2 was not committed"):
                once.write(2, iter(_batch_with_outage(broker, 2, stopped)()))
            thread.join()
    finally:
        broker.stop()
