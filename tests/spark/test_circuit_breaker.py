"""The circuit breaker: a producer that sends garbage does not page as drift.

A payments stream of 3,600 records (one per second, Kafka timestamps at their event
times: twelve five-minute windows). In windows 4, 5 and 6 a broken producer replaces
30% of the records with unframed bytes and sends the rest with amounts tripled. Without
the breaker those windows would drift on ``amount``; with it (open at 20%, calm below
10%, closed after two calm windows) windows 4 to 7 are ``degraded`` and no alert fires,
and window 8 is scored as usual again.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pandas as pd
import pytest

from driftline.avro.codec import AvroEncoder
from driftline.config import load_pipeline
from driftline.demo import SignalGenerator, write_records
from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin, make_producer, produce
from driftline.metrics import PipelineMetrics
from driftline.reference import baseline_from_file
from driftline.spark.job import run
from tests.conftest import pipeline_copy
from tests.spark.helpers import REGISTRY, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N, WINDOW = 3600, 300
BROKEN = range(4 * WINDOW, 7 * WINDOW)  # windows 4, 5 and 6
START = pd.Timestamp("2026-01-05T08:00:00Z")


def _window(index: int) -> pd.Timestamp:
    return START + pd.Timedelta(seconds=WINDOW * index)


@pytest.fixture(scope="module")
def degraded(spark, kafka_bootstrap, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("breaker")
    config = load_pipeline(
        pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:10]}.")
    )
    training = SignalGenerator("payments", seed=99, interval=timedelta(seconds=1)).records(8000)
    baseline_from_file(
        config, "payments", write_records(tmp_path / "train.parquet", training, [*training[0].value])
    )
    records = [r.value for r in SignalGenerator("payments", seed=8, interval=timedelta(seconds=1)).records(N)]
    encoder = AvroEncoder(REGISTRY.get("payments"))
    topic = config.topic("payments")
    ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 4)])
    producer = make_producer(kafka_bootstrap)
    garbage = 0
    for i, record in enumerate(records):
        millis = int(record["event_time"].timestamp() * 1000)  # CreateTime = event time, as live
        if i in BROKEN and i % 10 < 3:
            value, garbage = b"\x7fgarbage from a broken producer %d" % i, garbage + 1
        else:
            if i in BROKEN:
                record = {**record, "amount": record["amount"] * 3}
            value = encoder.encode(record)
        produce(producer, topic, value=value, key=str(i).encode(), timestamp=millis)
    assert producer.flush(60) == 0
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=900, metrics=metrics)
    warehouse = config.path(config.warehouse_dir)
    scores = read_delta(warehouse / "drift_scores")
    alerts = read_delta(warehouse / "alerts") if (warehouse / "alerts").exists() else pd.DataFrame()
    return config, summary.sources["payments"], scores, alerts, metrics, garbage


def test_windows_full_of_dead_letters_are_degraded_not_drifted(degraded):
    config, summary, scores, alerts, metrics, garbage = degraded
    assert summary.read == N and summary.reconciles and summary.dead_lettered == garbage == 270
    verdicts = scores.groupby("window_start")["verdict"].agg(set)
    judged = sorted(verdicts.index)
    assert judged == [_window(i) for i in range(9)]  # windows 9-11 stay open behind the watermark
    for i in (4, 5, 6, 7):  # opened at 4; 7 is the first calm window, the breaker is still open
        assert verdicts[_window(i)] <= {"degraded", "insufficient"} and "degraded" in verdicts[_window(i)], i
    for i in (0, 1, 2, 3, 8):
        assert "degraded" not in verdicts[_window(i)], i
    # the garbage windows would have drifted: amount's effect is far above its threshold
    amount = scores[(scores["feature"] == "amount") & (scores["method"] == "ks")].set_index("window_start")
    for i in (4, 5, 6):
        assert amount.loc[_window(i), "effect"] > 3 * amount.loc[_window(i), "threshold"]
    assert alerts.empty or alerts[alerts["event"] == "fired"].empty  # nothing paged
    assert summary.breaker == {"open": False, "since": None, "degraded_windows": 4}
    assert summary.drifted == {}


def test_the_breaker_shows_in_metrics(degraded):
    config, *_, metrics, _ = degraded
    ids = {"pipeline": config.name, "source": "payments"}
    assert metrics.registry.get_sample_value("driftline_circuit_breaker_active", ids) == 0
    assert metrics.registry.get_sample_value("driftline_window_dead_letter_ratio", ids) == 0.0  # window 8
