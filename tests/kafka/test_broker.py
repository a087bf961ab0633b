"""``driftline broker start|stop|status`` runs Apache Kafka (KRaft), keeps its data, refuses clearly."""

import json
import os
import socket
import subprocess
import sys

import pytest

from driftline.kafka.broker import free_port

pytestmark = pytest.mark.kafka


def cli(*args, env=None, timeout=90):
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli", "broker", *args],
        capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def test_start_status_stop_and_refusals(tmp_path) -> None:
    port = free_port()
    state = str(tmp_path / "broker")
    started = cli("start", "--state-dir", state, "--port", str(port))
    try:
        assert started.returncode == 0, started.stderr
        assert started.stdout.strip() == f"127.0.0.1:{port}"
        status = cli("status", "--state-dir", state)
        assert status.returncode == 0
        info = json.loads(status.stdout)
        assert (info["bootstrap"], info["answering"]) == (f"127.0.0.1:{port}", True)
        assert (tmp_path / "broker" / "broker.log").exists()

        again = cli("start", "--state-dir", state, "--port", str(port))
        assert again.returncode == 4
        assert f"a broker is already running at 127.0.0.1:{port} (pid {info['pid']})" in again.stderr

        taken = cli("start", "--state-dir", str(tmp_path / "other"), "--port", str(port))
        assert taken.returncode == 4
        assert f"port 127.0.0.1:{port} is already in use" in taken.stderr
    finally:
        stopped = cli("stop", "--state-dir", state)
    assert stopped.stdout.strip() == f"stopped broker at 127.0.0.1:{port} (pid {info['pid']})"
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    gone = cli("status", "--state-dir", state)
    assert (gone.returncode, gone.stderr.strip()) == (4, "not running")
    assert cli("stop", "--state-dir", state).stdout.strip() == "no broker running"


def test_records_survive_a_stop_and_a_kill(tmp_path) -> None:
    """The log directory is formatted once and kept: a clean stop and a SIGKILL lose nothing."""
    from driftline.kafka.broker import EmbeddedBroker
    from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer
    from driftline.kafka.reading import read_topic

    broker = EmbeddedBroker(tmp_path / "broker", port=free_port())
    bootstrap = broker.start().bootstrap
    try:
        ensure_topics(make_admin(bootstrap), [TopicSpec("kept", 2)])
        producer = make_producer(bootstrap)
        for i in range(500):
            producer.produce("kept", value=b"%d" % i, partition=i % 2)
        assert producer.flush(30) == 0
        cluster = (tmp_path / "broker" / "kraft" / "meta.properties").read_text()
        broker.stop()
        broker.start()
        assert sorted(int(m.value()) for m in read_topic(bootstrap, "kept")) == list(range(500))
        broker.stop(force=True)
        broker.start()
        assert sorted(int(m.value()) for m in read_topic(bootstrap, "kept")) == list(range(500))
        assert (tmp_path / "broker" / "kraft" / "meta.properties").read_text() == cluster, "reformatted"
    finally:
        broker.stop()


def test_missing_jars_are_refused_with_the_fix(tmp_path) -> None:
    home = tmp_path / "venv"
    run = cli("start", "--state-dir", str(tmp_path), "--port", str(free_port()),
              env={"DRIFTLINE_JARS_HOME": str(home)})  # fmt: skip
    assert run.returncode == 4
    assert "the kafka jars (org.apache.kafka:kafka_2.13:" in run.stderr
    assert "python -m driftline.jvm fetch" in run.stderr and str(home / "kafka") in run.stderr


def test_cluster_ids_are_kafka_uuids_the_storage_tool_accepts() -> None:
    """1 in 64 random base64 ids starts with ``-``, which kafka-storage reads as an option
    ("argument --cluster-id/-t: expected one argument"); Kafka's own Uuid never does."""
    import base64

    from driftline.kafka.broker import cluster_id

    ids = [cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == 16 for i in ids)
    assert len(set(ids)) == len(ids)
