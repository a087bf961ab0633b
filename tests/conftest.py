"""Shared fixtures: one real broker per test session, unique topics per test.

Set ``DRIFTLINE_TEST_BOOTSTRAP`` to run the Kafka tests against an existing cluster
(e.g. Apache Kafka from docker-compose.kafka.yml) instead of the embedded broker.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from driftline.config import PipelineConfig, load_pipeline
from driftline.kafka.broker import EmbeddedBroker, free_port

REPO = Path(__file__).resolve().parent.parent
#: Server settings of a test broker that is killed and started again on its log directory:
#: KRaft refuses the new node's registration until the killed one's session has expired
#: (``broker.session.timeout.ms``, 9 s by default), and a restart waited that out (about
#: 13 s instead of 6 here). Heartbeats every 0.5 s keep a live node well inside 3 s.
QUICK_RESTART = {"broker.session.timeout.ms": 3000, "broker.heartbeat.interval.ms": 500}
#: ``pipeline_copy(replace=...)`` entry for a run meant to fail: it exits at once instead of
#: keeping the exporter up for ``[metrics] linger_on_failure`` (30 s) for Prometheus to scrape.
NO_LINGER = {'lag_interval = "15 seconds"': 'lag_interval = "15 seconds"\nlinger_on_failure = "0 seconds"'}
DEMO_PIPELINE = REPO / "pipelines" / "demo.toml"
SCHEMAS = REPO / "schemas"


def pipeline_copy(
    tmp_path: Path,
    *,
    bootstrap: str | None = None,
    prefix: str | None = None,
    name: str = "p",
    replace: dict[str, str] | None = None,
    extra: str = "",
) -> Path:
    """Write the demo pipeline to ``tmp_path/<name>.toml`` with absolute schema and suite
    paths, its own state and warehouse folders, and optionally another broker and topic
    prefix; ``replace`` edits the text further, ``extra`` appends tables."""
    edits = {
        'schemas_dir = "../schemas"': f'schemas_dir = "{SCHEMAS}"',
        'state_dir = "../.driftline"': f'state_dir = "{tmp_path / name / "state"}"',
        'warehouse_dir = "../.driftline/warehouse"': f'warehouse_dir = "{tmp_path / name / "warehouse"}"',
        'path = "../.driftline/references"': f'path = "{tmp_path / name / "references"}"',
        'expectations = "expectations/': f'expectations = "{DEMO_PIPELINE.parent}/expectations/',
        "port = 9464": "port = 0",  # tests never collide on the exporter's port
        **(
            {'bootstrap_servers = "127.0.0.1:9092"': f'bootstrap_servers = "{bootstrap}"'}
            if bootstrap
            else {}
        ),
        **({'topic_prefix = ""': f'topic_prefix = "{prefix}"'} if prefix is not None else {}),
        **(replace or {}),
    }
    text = DEMO_PIPELINE.read_text()
    for old, new in edits.items():
        assert old in text, f"the demo pipeline no longer contains {old!r}"
        text = text.replace(old, new)
    path = tmp_path / f"{name}.toml"
    path.write_text(text + extra)
    return path


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> str:
    external = os.environ.get("DRIFTLINE_TEST_BOOTSTRAP")
    if external:
        yield external
        return
    broker = EmbeddedBroker(tmp_path_factory.mktemp("broker"), port=free_port())
    state = broker.start(timeout=60)
    yield state.bootstrap
    broker.stop()


@pytest.fixture
def topic_prefix() -> str:
    """A prefix that makes every topic of one test unique."""
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
def demo_config(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> PipelineConfig:
    """The demo pipeline pointed at the session broker, with this test's own topics."""
    config = load_pipeline(DEMO_PIPELINE)
    config = config.with_kafka(bootstrap_servers=kafka_bootstrap, topic_prefix=topic_prefix)
    metrics = config.metrics.model_copy(update={"port": 0})
    return config.model_copy(update={"state_dir": str(tmp_path / "state"), "metrics": metrics})


@pytest.fixture(scope="session")
def spark():
    """One local SparkSession for the whole run (JVM start-up is the expensive part)."""
    from driftline.spark.session import build_session

    session = build_session("driftline-tests", conf={"spark.sql.shuffle.partitions": "2"})
    yield session
    session.stop()
