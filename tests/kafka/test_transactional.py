"""Exactly-once batches to Kafka: replays are skipped, interrupted batches are not doubled."""

from collections import Counter

import pytest

from driftline.errors import DeliveryError
from driftline.kafka.reading import read_topic
from driftline.kafka.transactional import OutgoingRecord, TransactionalBatchWriter

pytestmark = pytest.mark.kafka


def _writer(bootstrap: str, prefix: str) -> TransactionalBatchWriter:
    return TransactionalBatchWriter(
        bootstrap=bootstrap,
        topic=prefix + "out",
        markers_topic=prefix + "markers",
        name=prefix + "writer",
        partitions=3,
    )


def _records(batch: int, n: int) -> list[OutgoingRecord]:
    keys = [f"b{batch}-r{i}".encode() for i in range(n)]
    return [OutgoingRecord(value=b"v" + k, key=k) for k in keys]


def failing_after(records, n: int):
    """``records``, then the failure of their source (a Spark job) before the ``n``-th."""
    for i, record in enumerate(records):
        if i == n:
            raise RuntimeError("the Spark job feeding the writer failed")
        yield record


def _visible(bootstrap: str, topic: str) -> Counter:
    return Counter(m.key() for m in read_topic(bootstrap, topic, isolation="read_committed"))


def test_a_committed_batch_is_skipped_on_replay(kafka_bootstrap, topic_prefix) -> None:
    writer = _writer(kafka_bootstrap, topic_prefix)
    assert writer.write(0, _records(0, 200)) == 200
    assert writer.write(1, _records(1, 50)) == 50
    assert writer.write(1, _records(1, 50)) == 0  # same process, replayed batch
    restarted = _writer(kafka_bootstrap, topic_prefix)
    assert restarted.committed_batch == 1
    assert restarted.write(1, _records(1, 50)) == 0
    assert restarted.write(2, _records(2, 10)) == 10
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert sum(seen.values()) == 260 and set(seen.values()) == {1}


def test_an_interrupted_batch_is_written_again_without_doubles(kafka_bootstrap, topic_prefix) -> None:
    first = _writer(kafka_bootstrap, topic_prefix)
    assert first.write(0, _records(0, 100)) == 100
    # a crash mid-batch: records of batch 1 sent in an open transaction, never committed
    producer = first._producer
    producer.begin_transaction()
    for record in _records(1, 120)[:70]:
        producer.produce(first.topic, value=record.value, key=record.key)
    producer.flush(30)
    del producer

    restarted = _writer(kafka_bootstrap, topic_prefix)  # fences and aborts the open transaction
    assert restarted.committed_batch == 0
    written = restarted.write(1, _records(1, 120))
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert set(seen.values()) == {1}, "a record is visible twice"
    assert sum(seen.values()) == 220
    assert written == 120  # the aborted 70 are invisible, so all 120 are written again
    everything = Counter(m.key() for m in read_topic(kafka_bootstrap, topic_prefix + "out",
                                                       isolation="read_uncommitted"))  # fmt: skip
    assert sum(everything.values()) == 290, "the aborted records are still in the log, only hidden"


def test_an_empty_batch_writes_no_marker_and_markers_are_compacted(kafka_bootstrap, topic_prefix) -> None:
    from confluent_kafka.admin import ConfigResource

    from driftline.kafka.clients import make_admin

    writer = _writer(kafka_bootstrap, topic_prefix)
    assert writer.write(0, _records(0, 5)) == 5
    assert writer.write(1, iter([])) == 0  # nothing to write: no transaction, no marker
    assert writer.write(2, _records(2, 3)) == 3
    markers = [
        m.value() for m in read_topic(kafka_bootstrap, topic_prefix + "markers", isolation="read_committed")
    ]
    assert markers == [b'{"batch_id": 0}', b'{"batch_id": 2}']
    assert _writer(kafka_bootstrap, topic_prefix).committed_batch == 2
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic_prefix + "markers")
    admin = make_admin(kafka_bootstrap)  # kept alive until the future resolves
    configs = admin.describe_configs([resource])[resource].result(30)
    assert configs["cleanup.policy"].value == "compact"


def test_a_large_batch_spans_transactions_and_a_crash_between_them_resumes(
    kafka_bootstrap, topic_prefix
) -> None:
    """Batch 1 of 10 records in transactions of 3: the source fails after 7 records (2
    transactions committed, the 3rd aborted); a restarted writer writes the last 4."""
    import json

    first = _writer(kafka_bootstrap, topic_prefix)
    first.transaction_records = 3
    assert first.write(0, _records(0, 2)) == 2
    with pytest.raises(RuntimeError, match="feeding the writer"):
        first.write(1, failing_after(_records(1, 10), 7))
    assert first.write(1, _records(1, 10)) == 4  # same writer, replay: its transaction was aborted

    seen = [m.key() for m in read_topic(kafka_bootstrap, topic_prefix + "out", isolation="read_committed")]
    assert Counter(seen) == Counter(r.key for r in _records(0, 2) + _records(1, 10))
    markers = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topic_prefix + "markers")]
    assert markers == [
        {"batch_id": 0}, {"batch_id": 1, "partial": 3}, {"batch_id": 1, "partial": 6},
        {"batch_id": 1, "partial": 9}, {"batch_id": 1},
    ]  # fmt: skip

    # a new writer (a restarted job) that crashed after the 2nd partial marker of batch 2
    crashed = _writer(kafka_bootstrap, topic_prefix)
    crashed.transaction_records = 3
    with pytest.raises(RuntimeError):
        crashed.write(2, failing_after(_records(2, 8), 7))  # 3 + 3 committed, the 7th in flight
    restarted = _writer(kafka_bootstrap, topic_prefix)
    assert restarted.write(2, _records(2, 8)) == 2
    assert restarted.write(2, _records(2, 8)) == 0
    seen = Counter(m.key() for m in read_topic(kafka_bootstrap, topic_prefix + "out"))
    assert set(seen.values()) == {1} and sum(seen.values()) == 2 + 10 + 8


def test_a_transaction_also_closes_on_time(kafka_bootstrap, topic_prefix) -> None:
    import json

    now = [0.0]

    def slow(records):
        for record in records:
            now[0] += 0.3  # a slow source: 0.3 s per record on the writer's clock
            yield record

    writer = _writer(kafka_bootstrap, topic_prefix)
    writer.transaction_seconds, writer.clock = 0.5, lambda: now[0]
    assert writer.write(0, slow(_records(0, 5))) == 5
    markers = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topic_prefix + "markers")]
    # opened at 0.3 (record 1 fetched), record 2 at 0.6 and 3 at 0.9: 0.6 s open -> commit 2, and so on
    assert markers == [{"batch_id": 0, "partial": 2}, {"batch_id": 0, "partial": 4}, {"batch_id": 0}]


def test_a_replay_under_another_configuration_stops_instead_of_skipping(
    kafka_bootstrap, topic_prefix
) -> None:
    from driftline.kafka.transactional import ReplayMismatch

    first = _writer(kafka_bootstrap, topic_prefix)
    first.fingerprint = "a" * 64
    assert first.write(3, _records(3, 4)) == 4
    same = _writer(kafka_bootstrap, topic_prefix)
    same.fingerprint = "a" * 64
    assert same.write(3, _records(3, 4)) == 0  # an ordinary replay: skipped
    edited = _writer(kafka_bootstrap, topic_prefix)
    edited.fingerprint = "b" * 64
    with pytest.raises(ReplayMismatch, match=r"batch 3 is replayed with another configuration .*aaaaaaaaaaaa, "
                                             r"now bbbbbbbbbbbb.*Restore the configuration"):  # fmt: skip
        edited.write(3, _records(3, 4))
    assert edited.write(4, _records(4, 2)) == 2  # the next batch runs under the new configuration
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert sum(seen.values()) == 6 and set(seen.values()) == {1}


def test_a_starting_writer_reads_the_markers_since_its_own_not_the_whole_history(
    kafka_bootstrap, topic_prefix
) -> None:
    """20,000 markers of other writers before this writer's last one, 300 after it: a
    restarted writer finds its batch reading 1,000 markers, however long the history."""
    from driftline.kafka.clients import make_producer

    first = _writer(kafka_bootstrap, topic_prefix)
    assert first.write(0, _records(0, 1)) == 1  # creates the markers topic
    others = make_producer(kafka_bootstrap)

    def other_markers(n: int, tag: str) -> None:
        for i in range(n):
            others.produce(topic_prefix + "markers", key=f"{tag}-{i % 50}".encode(), value=b'{"batch_id": 1}')
            if i % 10_000 == 0:
                others.poll(0)
        assert others.flush(60) == 0

    other_markers(20_000, "old")
    assert first.write(7, _records(7, 3)) == 3
    other_markers(300, "new")

    restarted = _writer(kafka_bootstrap, topic_prefix)
    assert restarted.committed_batch == 7
    assert 900 < restarted.markers_read <= 1_000  # one span of 1,000 offsets (some hold transaction markers)
    assert restarted.write(7, _records(7, 3)) == 0

    never = TransactionalBatchWriter(bootstrap=kafka_bootstrap, topic=topic_prefix + "out",
                                     markers_topic=topic_prefix + "markers", name=topic_prefix + "never")  # fmt: skip
    assert never.committed_batch is None and never.markers_read > 20_000  # no marker: reads it all, once


def test_a_replay_with_other_records_resumes_after_the_last_committed_position(kafka_bootstrap,
                                                                                topic_prefix) -> None:  # fmt: skip
    """Transactions of 3 over 10 positioned records; the source fails after 6 committed. The
    replay no longer has record 2 (a schema registered in between made it valid): by
    count it would skip 6 and lose record 6; by position it writes 6..9."""

    def positioned(indices):
        return [OutgoingRecord(value=b"v%d" % i, key=b"r%d" % i, position=("t", 0, 10 * i)) for i in indices]

    first = _writer(kafka_bootstrap, topic_prefix)
    first.transaction_records = 3
    with pytest.raises(RuntimeError):
        first.write(0, failing_after(positioned(range(10)), 7))
    replay = _writer(kafka_bootstrap, topic_prefix)
    assert replay.write(0, positioned([0, 1, 3, 4, 5, 6, 7, 8, 9])) == 4
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert seen == Counter({b"r%d" % i: 1 for i in range(10)})


def test_a_transaction_left_open_by_another_writer_does_not_hide_newer_markers(kafka_bootstrap,
                                                                               topic_prefix) -> None:  # fmt: skip
    """Writer B dies with its marker sent but not committed; writer A commits batch 1 after
    it. Read committed, the topic's readable end (the last stable offset) stops at B's open
    record until the broker aborts it (B's transaction.timeout.ms: 3 s here), so a
    restarted A must read to the true end, or it finds batch 0 and writes batch 1 again."""
    a = _writer(kafka_bootstrap, topic_prefix)
    assert a.write(0, _records(0, 2)) == 2
    b = TransactionalBatchWriter(bootstrap=kafka_bootstrap, topic=topic_prefix + "out",
                                 markers_topic=topic_prefix + "markers", name=topic_prefix + "b",
                                 settings={"transaction.timeout.ms": 3000, "message.timeout.ms": 3000})  # fmt: skip
    b._start()
    b._producer.begin_transaction()
    b._producer.produce(topic_prefix + "markers", key=b.name.encode(), value=b'{"batch_id": 0}')
    assert b._producer.flush(30) == 0  # on the broker, never committed: B "died" here
    assert a.write(1, _records(1, 2)) == 2

    restarted = _writer(kafka_bootstrap, topic_prefix)
    assert restarted.committed_batch == 1
    assert restarted.write(1, _records(1, 2)) == 0
    seen = _visible(kafka_bootstrap, topic_prefix + "out")
    assert sum(seen.values()) == 4 and set(seen.values()) == {1}


def test_a_marker_ahead_of_the_query_is_refused_not_obeyed(kafka_bootstrap, topic_prefix) -> None:
    """Anyone who can write the markers topic can claim batch 1,000 is committed. A query
    writes its batches in order, so a marker ahead of the batch at hand is not its own:
    the writer stops instead of skipping every batch up to 1,000."""
    from driftline.kafka.clients import make_producer
    from driftline.kafka.transactional import ReplayMismatch

    writer = _writer(kafka_bootstrap, topic_prefix)
    assert writer.write(0, _records(0, 2)) == 2
    forger = make_producer(kafka_bootstrap)
    forger.produce(topic_prefix + "markers", key=writer.name.encode(), value=b'{"batch_id": 1000}')
    assert forger.flush(30) == 0

    restarted = _writer(kafka_bootstrap, topic_prefix)
    with pytest.raises(
        ReplayMismatch, match=r"says batch 1000 is committed, but this query is writing batch 1"
    ):
        restarted.write(1, _records(1, 3))
    assert sum(_visible(kafka_bootstrap, topic_prefix + "out").values()) == 2


def test_an_error_of_the_records_fails_the_batch_at_once_without_rewrites(
    kafka_bootstrap, topic_prefix
) -> None:
    """Only a broker outage is ridden out: a record over the producer's size limit would fail
    every rewrite the same way, so the batch fails at once, with the reason, and nothing of it
    is visible."""
    writer = _writer(kafka_bootstrap, topic_prefix)
    too_large = [*_records(0, 2), OutgoingRecord(value=b"x" * 2_000_000, key=b"big")]
    with pytest.raises(DeliveryError, match="batch 0 was not committed.*(too large|size)"):
        writer.write(0, lambda: too_large)
    assert writer.rewrites == 0
    assert _visible(kafka_bootstrap, topic_prefix + "out") == Counter()
    assert writer.write(0, _records(0, 2)) == 2  # the same writer goes on
