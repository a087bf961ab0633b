"""A sentinel secret in every secret-bearing setting never leaves the configuration.

The pipeline gets one sentinel as ``sasl.password`` and ``ssl.key.password``
(``[kafka.client]``, every Kafka client: librdkafka's and the Java one behind Spark's
connector, where it becomes a JAAS line), as ``ssl.keystore.password``
(``[kafka.consumer]``) and in the schema registry's ``basic.auth.user.info`` (a
registry double that requires it). The broker is PLAINTEXT, so the Kafka clients carry
the secrets without using them; the registry checks its credentials on every request.
Then ``driftline ingest`` and ``driftline run`` run as a user runs them, at DEBUG, with
Spark logging at INFO (the Kafka clients print their whole configuration there) and
Spark's event log on (it holds Spark's configuration and every query plan). The
sentinel must appear in none of: their stdout and stderr, the run summaries, Spark's
event log, the checkpoints, tables and state on disk, a metrics scrape, and the error
messages of a bad configuration and of a registry refusing a wrong password.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from driftline.config import load_pipeline
from driftline.demo import generator_for, write_records
from driftline.errors import ConfigError
from driftline.testing.schema_registry import SchemaRegistryDouble
from tests.conftest import REPO, pipeline_copy

pytestmark = [pytest.mark.kafka, pytest.mark.e2e, pytest.mark.spark]
SENTINEL = "Sentinel-7f3a9c-secret"


def _pipeline(
    tmp_path: Path, bootstrap: str, prefix: str, registry_url: str, password: str = SENTINEL
) -> Path:
    return pipeline_copy(
        tmp_path, bootstrap=bootstrap, prefix=prefix,
        replace={
            '# schema_registry_url = "http://localhost:8081"': f'schema_registry_url = "{registry_url}"',
            "[kafka.producer]": (
                f'[kafka.client]\n"sasl.mechanisms" = "PLAIN"\n"sasl.username" = "svc"\n'
                f'"sasl.password" = "{SENTINEL}"\n"ssl.key.password" = "{SENTINEL}"\n\n'
                f'[kafka.consumer]\n"ssl.keystore.password" = "{SENTINEL}"\n\n'
                f'[kafka.schema_registry]\n"basic.auth.user.info" = "svc:{password}"\n\n[kafka.producer]'
            ),
        },
    )  # fmt: skip


def _driftline(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "driftline.cli", "--log-level", "DEBUG", *args],
                          capture_output=True, text=True, timeout=900, env=env, cwd=REPO)  # fmt: skip


def _files_holding(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_the_sentinel_secret_never_leaves_the_configuration(kafka_bootstrap, topic_prefix, tmp_path) -> None:
    conf = tmp_path / "spark-conf"
    conf.mkdir()
    log4j = (REPO / "spark-conf" / "log4j2.properties").read_text()
    (conf / "log4j2.properties").write_text(
        log4j.replace("rootLogger.level = warn", "rootLogger.level = info").replace(
            "logger.kafka.level = warn", "logger.kafka.level = info"
        )
    )
    events = tmp_path / "events"
    events.mkdir()
    (conf / "spark-defaults.conf").write_text(
        (REPO / "spark-conf" / "spark-defaults.conf").read_text()
        + f"\nspark.eventLog.enabled true\nspark.eventLog.compress false\nspark.eventLog.dir {events.as_uri()}\n"
    )
    env = {**os.environ, "SPARK_CONF_DIR": str(conf)}

    with SchemaRegistryDouble(basic_auth=("svc", SENTINEL)) as registry:
        pipeline = _pipeline(tmp_path, kafka_bootstrap, topic_prefix, registry.url)
        config = load_pipeline(pipeline)
        generator, names = generator_for(config, "payments", seed=2)
        data = write_records(tmp_path / "p.jsonl", generator.records(300), names)

        ingested = _driftline("ingest", "-p", str(pipeline), "-s", "payments", "-i", str(data), env=env)
        assert ingested.returncode == 0, ingested.stderr[-3000:]
        assert json.loads(ingested.stdout)["valid"] > 250
        ran = _driftline("run", "-p", str(pipeline), "--until-idle", "--source", "payments", env=env)
        assert ran.returncode == 0, ran.stderr[-3000:]
        assert json.loads(ran.stdout.strip().splitlines()[-1])["sources"]["payments"]["read"] == 300
        assert len(registry.authorizations) >= 2  # both commands used the registry with the secret

        # a wrong registry password: refused, and the message does not echo what was sent
        (tmp_path / "wrong").mkdir()
        wrong = _pipeline(
            tmp_path / "wrong", kafka_bootstrap, topic_prefix, registry.url, password="nope" + SENTINEL
        )
        refused = _driftline("ingest", "-p", str(wrong), "-s", "payments", "-i", str(data), env=env)
        assert refused.returncode == 2 and "HTTP 401 Unauthorized" in refused.stderr, refused.stderr[-2000:]

    for name, text in [("ingest", ingested.stdout + ingested.stderr), ("run", ran.stdout + ran.stderr),
                       ("refused ingest", refused.stdout + refused.stderr)]:  # fmt: skip
        assert SENTINEL not in text, f"the secret is in the output of {name}"
    assert "ConsumerConfig values" in ran.stderr or "AdminClientConfig values" in ran.stderr  # INFO logs ran
    assert "password = [hidden]" in ran.stderr  # the Java clients had the secrets, and hid them
    assert list(events.iterdir()), "no Spark event log was written"
    assert _files_holding(events, SENTINEL.encode()) == []
    assert b'"spark.eventLog.enabled":"true"' in b"".join(
        p.read_bytes() for p in events.rglob("*") if p.is_file()
    )
    assert (
        _files_holding(tmp_path / "p", SENTINEL.encode()) == []
    )  # state, checkpoints, warehouse, references

    # metrics: a registry with this pipeline's series, scraped
    from prometheus_client import generate_latest

    from driftline.metrics.pipeline import PipelineMetrics

    metrics = PipelineMetrics(config.name)
    assert SENTINEL not in generate_latest(metrics.registry).decode()

    # configuration errors in a table that holds the secret name the key, never the value
    for bad, key in [('"sasl.mechanisms" = "PLAIN"', '"sasl.mechanisms" = "PLAIN"\n"linger.mss" = 5'),
                     ('"ssl.key.password" = ', '"ssl.key.password" = ["'), ]:  # fmt: skip
        text = pipeline.read_text().replace(bad, key, 1)
        if key.endswith('["'):
            text = text.replace(
                f'"ssl.key.password" = ["{SENTINEL}"', f'"ssl.key.password" = ["{SENTINEL}"]', 1
            )
        broken = tmp_path / "broken.toml"
        broken.write_text(text)
        with pytest.raises(ConfigError) as failure:
            load_pipeline(broken)
        assert SENTINEL not in str(failure.value), str(failure.value)
