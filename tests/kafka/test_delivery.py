"""When the broker goes away mid-ingest nothing is silently lost: it is counted and
reported, and a re-run once the broker is back sends exactly what is missing.

Once the open transaction has failed (its records timed out), ingest aborts it, and the
abort waits for the broker (up to 30 s): the tests start the broker again as soon as the
failure is logged, so the abort ends when the broker is back rather than at its timeout.
What was counted is decided by then."""

import subprocess
import sys
import threading
import time

import pytest

from driftline.config import load_pipeline
from driftline.demo import generator_for, write_records
from driftline.ingest.run import ingest_file
from driftline.kafka.broker import EmbeddedBroker, free_port
from driftline.testing.live import LogWatch, wait_until
from tests.conftest import QUICK_RESTART, pipeline_copy

pytestmark = pytest.mark.kafka
# librdkafka's log line when a transaction's commit failed (its records timed out): from then
# on the transaction can only be aborted
TRANSACTION_FAILED = "Current transaction failed"


def _pipeline_for(bootstrap: str, tmp_path):
    timeout = {'"compression.type" = "zstd"': '"compression.type" = "zstd"\n"message.timeout.ms" = 3000'}
    return pipeline_copy(tmp_path, bootstrap=bootstrap, replace=timeout)


def _wait_for_records(
    bootstrap: str, topic: str, process, timeout: float = 60.0, at_least: int = 30_000
) -> bool:
    """Until the broker holds ``at_least`` of ``topic``'s records, so some were acknowledged
    before the kill (the loss will be partial: records just written may still await their ack)."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "probe"})
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and process.poll() is None:
            metadata = consumer.list_topics(topic, timeout=5).topics.get(topic)
            if metadata is not None and metadata.error is None and metadata.partitions:
                try:
                    ends = [
                        consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
                        for p in metadata.partitions
                    ]
                except KafkaException:  # a new topic's leaders are still being elected
                    ends = []
                if sum(ends) >= at_least:
                    return True
            time.sleep(0.02)
    finally:
        consumer.close()
    return False


def test_records_not_acknowledged_are_counted_as_undelivered(tmp_path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port(), overrides=QUICK_RESTART)
    state = broker.start()
    ended = threading.Event()
    with LogWatch("driftline.librdkafka", TRANSACTION_FAILED) as failed:

        def restart_once_failed() -> None:  # the abort then reaches the broker instead of timing out
            while not ended.is_set():
                if failed.seen.wait(0.1):
                    broker.start()
                    return

        restarter = threading.Thread(target=restart_once_failed, daemon=True)
        try:
            config = load_pipeline(_pipeline_for(state.bootstrap, tmp_path))
            generator, names = generator_for(config, "sensors", seed=3)
            path = write_records(tmp_path / "in.jsonl", generator.records(30_000), names)
            restarter.start()
            summary = ingest_file(
                config, "sensors", path, progress=lambda position: broker.stop(force=True), commit_seconds=1e9
            )  # transactions by count only: the first one holds 10,000 records
        finally:
            ended.set()  # the restarter does not outlive the test; a start it began ends first
            if restarter.is_alive():
                restarter.join(120)
            broker.stop()
    # the first transaction (10,000 records) could not commit: the run stops there, nothing half-sent
    assert summary.read == summary.valid + summary.dead_lettered == 10_000
    assert (summary.delivered, summary.undelivered) == (0, 10_000) and summary.reconciles
    assert summary.error and "failed delivery" in summary.error, summary.error


def test_cli_exits_3_and_says_how_many_were_lost(tmp_path) -> None:
    broker = EmbeddedBroker(tmp_path / "broker", port=free_port(), overrides=QUICK_RESTART)
    state = broker.start()
    config_path = _pipeline_for(state.bootstrap, tmp_path)
    generator, names = generator_for(load_pipeline(config_path), "payments", seed=4)
    path = write_records(tmp_path / "in.jsonl", generator.records(150_000), names)
    # stderr to a file: librdkafka's connection errors could fill a pipe while we wait
    log_path = tmp_path / "ingest.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "driftline.cli", "ingest", "-p", str(config_path), "-s", "payments", "-i", str(path)],
            stdout=subprocess.PIPE, stderr=log, text=True,
        )  # fmt: skip
    try:
        try:
            assert _wait_for_records(state.bootstrap, "signals.payments", process), "ingest never produced"
        finally:
            broker.stop(force=True)
        # the broker comes back (same data, same port) once the open transaction failed: the
        # abort that follows ends then, and the same command sends the rest further down
        wait_until(lambda: process.poll() is not None or TRANSACTION_FAILED in log_path.read_text(), 120,
                   "the open transaction to fail")  # fmt: skip
        broker = EmbeddedBroker(
            tmp_path / "broker", port=int(state.bootstrap.rsplit(":", 1)[1]), overrides=QUICK_RESTART
        )
        broker.start()
        out, _ = process.communicate(timeout=120)
        stderr = log_path.read_text()
        assert process.returncode == 3, stderr
        import json

        summary = json.loads(out.strip().splitlines()[-1])
        assert (
            summary["read"] == summary["valid"] + summary["dead_lettered"] < 150_000
        )  # it stopped at the failure
        assert summary["delivered"] >= 20_000 and summary["undelivered"] > 0  # 30,000 were on the broker
        assert summary["delivered"] + summary["undelivered"] == summary["read"]
        assert f"{summary['undelivered']} record(s) were not committed to {state.bootstrap}" in stderr
        assert f"the first {summary['delivered']} records of the file are in Kafka" in stderr
        assert "Traceback" not in stderr

        # the broker is back: the same command sends the rest, once
        rerun = subprocess.run(
            [sys.executable, "-m", "driftline.cli", "ingest", "-p", str(config_path), "-s", "payments", "-i", str(path)],
            capture_output=True, text=True, timeout=600,
        )  # fmt: skip
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        again = json.loads(rerun.stdout.strip().splitlines()[-1])
        assert (again["skipped"], again["read"]) == (summary["delivered"], 150_000 - summary["delivered"])
        from driftline.kafka.reading import read_topic

        values = [m.value() for m in read_topic(state.bootstrap, "signals.payments", timeout=120)]
        letters = read_topic(state.bootstrap, "dlq.payments", timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        broker.stop()
    assert len(values) + len(letters) == 150_000 and len(set(values)) == len(values)
