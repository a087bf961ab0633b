"""The quality stream job on a known mix: every record accounted for, every dead letter
right, and window statistics equal to an independent pandas / numpy computation."""

from __future__ import annotations

import time
from collections import Counter
from datetime import timedelta

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import EXPECTED_REASON, SignalGenerator
from driftline.errors import JobError
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.metrics import PipelineMetrics, serve
from driftline.spark.job import run
from tests.conftest import pipeline_copy
from tests.spark.helpers import (
    encode_mix,
    produce_frames,
    read_delta,
    sample,
    scrape,
    spark_delta_read,
    within_rank_bound,
)

pytestmark = [pytest.mark.spark, pytest.mark.kafka]
N, LATE = 6000, 200
KLL_RANK_BOUND = 0.0165 + 1 / 250  # k=200 bound, plus one step of a ~300-row window's CDF
NUMERIC = ["amount", "risk_score", "installments"]
CATEGORICAL = ["merchant_category", "country", "is_online"]


@pytest.fixture
def mix(kafka_bootstrap, topic_prefix):
    """Payments records: frame corruptions, rule violations, then late arrivals."""
    one_second = timedelta(seconds=1)  # 6000 records over 100 minutes: 20 windows, most of them closed
    generated = SignalGenerator("payments", seed=17, interval=one_second).records(N)
    records = [r.value for r in generated]
    frame_kinds = {i: ("wrong_schema_id", "truncated", "not_framed")[i % 3] for i in range(5, N, 101)}
    violating = {i for i in range(3, N, 89) if i not in frame_kinds}
    for i in violating:
        records[i]["amount"] = -5.0
    late_source = SignalGenerator("payments", seed=18, interval=one_second)
    late_records = [r.value for r in late_source.records(LATE, first_index=N)]
    for j, record in enumerate(late_records):
        # half land in windows closed long ago that have data, half an hour before any data
        behind = timedelta(hours=2) if j % 2 else (record["event_time"] - records[j * 13]["event_time"])
        record["event_time"] -= behind
    return records, frame_kinds, violating, late_records


def test_known_mix_reconciles_and_statistics_match_pandas(
    spark, kafka_bootstrap, topic_prefix, tmp_path, mix
):
    records, frame_kinds, violating, late_records = mix
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    topic = config.topic("payments")
    keys = [str(i).encode() for i in range(N + LATE)]
    placed = produce_frames(kafka_bootstrap, topic, encode_mix("payments", records, frame_kinds), keys[:N])

    metrics = PipelineMetrics(config.name)  # one registry over both runs, served like the job serves it
    exporter = serve(metrics.registry, port=0)
    first = run(spark, config, sources=["payments"], max_records_per_batch=2500, metrics=metrics)
    first = first.sources["payments"]
    assert first.read == N and first.batches >= 3 and first.late == 0
    placed |= produce_frames(kafka_bootstrap, topic, encode_mix("payments", late_records, {}), keys[N:])
    summary = run(spark, config, sources=["payments"], max_records_per_batch=2500, metrics=metrics)
    summary = summary.sources["payments"]
    _check_metrics(exporter, summary, records, frame_kinds, violating)
    exporter.close()

    expected_reasons = Counter(EXPECTED_REASON[k] for k in frame_kinds.values()) + Counter(
        {"RULE_FAILED": len(violating)}
    )
    assert summary.read == N + LATE == summary.valid + summary.dead_lettered + summary.late
    assert summary.by_reason == dict(expected_reasons)
    assert summary.late == LATE
    assert summary.valid == N - len(frame_kinds) - len(violating)

    # dead letters: right reason, right stage, the exact original bytes, traceable to the source
    letters = [
        DeadLetter.from_message(m.value(), m.headers())
        for m in read_topic(kafka_bootstrap, config.dead_letter_topic("payments"))
    ]
    assert len(letters) == summary.dead_lettered + summary.late
    by_index = {}
    for message, letter in zip(
        read_topic(kafka_bootstrap, config.dead_letter_topic("payments")), letters, strict=True
    ):
        index = int(message.key())
        by_index[index] = letter
        assert letter.topic == topic and letter.raw == placed[(letter.partition, letter.offset)]
        assert letter.batch_id is not None and letter.pipeline == "demo" and letter.source == "payments"
    assert len(by_index) == len(letters)
    for index, letter in by_index.items():
        if index in frame_kinds:
            assert (letter.reason.value, letter.stage.value) == (
                EXPECTED_REASON[frame_kinds[index]],
                "decode",
            )
        elif index in violating:
            assert (letter.reason.value, letter.stage.value) == ("RULE_FAILED", "rule")
            assert letter.message.startswith("amount:between: amount=-5.0 is not between 0 and ")
        else:
            assert index >= N and (letter.reason.value, letter.stage.value) == ("LATE_DATA", "late")
            assert "is behind the watermark" in letter.message

    # window statistics against pandas on the valid records
    valid = pd.DataFrame([r for i, r in enumerate(records) if i not in frame_kinds and i not in violating])
    valid["window_start"] = valid["event_time"].dt.floor("5min")  # UTC instants, as in the tables
    stats = read_delta(config.path(config.warehouse_dir) / "feature_stats").drop(columns=["sketch"])
    stats = stats[stats["source"] == "payments"]
    assert set(stats["feature"]) == set(NUMERIC + CATEGORICAL)
    late = pd.DataFrame(late_records)
    late["window_start"] = late["event_time"].dt.floor("5min")  # UTC instants, as in the tables
    windows = set(valid["window_start"]) | set(late["window_start"])
    assert len(stats) == len(windows) * 6 and set(stats["window_start"]) == windows
    for row in stats.itertuples():
        column = valid.loc[valid["window_start"] == row.window_start, row.feature]
        values = column.dropna()
        assert (row.rows, row.nulls, row.n) == (len(column), column.isna().sum(), len(values))
        if row.kind == "numeric" and row.n:
            x = values.to_numpy(dtype=float)
            assert row.mean == pytest.approx(x.mean(), rel=1e-9)
            assert row.stddev == pytest.approx(x.std(ddof=1), rel=1e-9)
            assert (row.min, row.max) == (x.min(), x.max())
            for name, q in (("p01", 0.01), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p99", 0.99)):
                assert within_rank_bound(x, getattr(row, name), q, KLL_RANK_BOUND), (row.feature, name)
        elif row.kind == "categorical":
            counts = values.astype(str).str.lower().value_counts().to_dict()
            assert {k.lower(): v for k, v in dict(row.category_counts or {}).items()} == counts
            assert row.distinct_count == len(counts)
            if counts:
                assert row.top_categories[0]["value"].lower() == max(counts, key=counts.get)
        if row.rows:
            offsets = row.offset_ranges
            assert offsets is not None and all(r["first_offset"] <= r["last_offset"] for r in offsets)

    # the late rows are counted in the (long closed) windows they belonged to
    late_per_window = late["window_start"].value_counts()
    got = stats[stats["feature"] == "amount"].set_index("window_start")["late_rows"]
    for window, count in late_per_window.items():
        assert got.get(window, 0) == count
    assert got.sum() == LATE
    watermark = valid["event_time"].max() - timedelta(minutes=10)
    expected_final = stats["window_end"] <= watermark
    assert (stats["is_final"] == expected_final).all()
    assert 0 < expected_final.sum() < len(stats)

    # Delta's own Spark reader reads the dead letters Spark wrote and the driver committed
    seen = spark_delta_read(config.path(config.warehouse_dir), ["dead_letters", "feature_stats"],
                            "select _partition, _offset, reason from {dead_letters} order by 1, 2")  # fmt: skip
    assert seen["counts"] == {"dead_letters": len(letters), "feature_stats": len(stats)}
    assert seen["rows"] == sorted(
        [letter.partition, letter.offset, letter.reason.value] for letter in letters
    )
    assert "MERGE" in seen["operations"]["feature_stats"]


def _check_metrics(exporter, summary, records, frame_kinds, violating) -> None:
    """The scraped exporter agrees with the tables: counts by outcome and reason, rules, freshness."""
    ids = {"pipeline": "demo", "source": "payments"}
    got = scrape(exporter.url)
    value = lambda name, **labels: sample(got, name, **ids, **labels)  # noqa: E731
    assert value("driftline_records_read_total") == N + LATE
    assert value("driftline_records_total", outcome="valid") == summary.valid
    assert value("driftline_records_total", outcome="dead_lettered") == summary.dead_lettered
    assert value("driftline_records_total", outcome="late") == LATE
    assert value("driftline_records_unreconciled") == 0
    for reason, count in {**summary.by_reason, "LATE_DATA": LATE}.items():
        assert value("driftline_dead_letters_total", reason=reason) == count, reason
    assert value("driftline_batches_total") == summary.batches
    # row rules ran on every decoded row (late ones included); the one violated rule is named
    decoded = N + LATE - len(frame_kinds)
    assert value("driftline_expectation_rows_total", suite="payments", outcome="failure") == len(violating)
    assert value("driftline_expectation_rows_total", suite="payments", outcome="success") == decoded - len(
        violating
    )
    failures = {
        dict(ls)["expectation"]: v
        for (n, ls), v in got.items()
        if n == "driftline_expectation_failures_total"
    }
    assert failures == {"amount:between": len(violating)}
    newest = max(
        r["event_time"] for i, r in enumerate(records) if i not in frame_kinds and i not in violating
    )
    assert value("driftline_last_event_timestamp_seconds") == newest.timestamp()
    assert value("driftline_watermark_timestamp_seconds") == newest.timestamp() - 600
    # the listener's events arrive asynchronously: one progress event per batch, then termination
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got = scrape(exporter.url)
        if (
            value("driftline_batch_duration_seconds_count") == summary.batches
            and value("driftline_query_up") == 0
        ):
            break
        time.sleep(0.2)
    assert value("driftline_batch_duration_seconds_count") == summary.batches
    assert value("driftline_batch_duration_seconds_sum") > 0
    assert value("driftline_query_up") == 0 and value("driftline_query_failures_total") == 0
    assert value("driftline_processed_records_per_second") > 0


def test_a_missing_topic_stops_the_run_before_any_query_starts(
    spark, kafka_bootstrap, topic_prefix, tmp_path
):
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    produce_frames(kafka_bootstrap, config.topic("sensors"), [b"x"], [None], partitions=1)
    metrics = PipelineMetrics(config.name)
    with pytest.raises(JobError) as failure:
        run(spark, config, sources=["payments", "sensors", "clickstream"], metrics=metrics)
    message = str(failure.value)
    assert (
        f"'payments' ('{topic_prefix}signals.payments'), 'clickstream' ('{topic_prefix}signals.clickstream')"
        in message
    )
    assert "'sensors' (" not in message and message.endswith("to run the others alone: --source sensors")
    assert spark.streams.active == [] and metrics.registry.get_sample_value(
        "driftline_query_up", {"pipeline": "demo", "source": "sensors"}
    ) is None, "no query was started"  # fmt: skip


def test_a_failing_query_is_reported_in_the_metrics(spark, kafka_bootstrap, topic_prefix, tmp_path):
    """Records deleted before the query read them fail it: run() raises, the metrics say why."""
    from confluent_kafka import TopicPartition

    from driftline.errors import DataLossError
    from driftline.kafka.clients import make_admin

    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    topic = config.topic("payments")
    records = [r.value for r in SignalGenerator("payments", seed=3).records(60)]
    produce_frames(
        kafka_bootstrap, topic, encode_mix("payments", records[:30], {}), [None] * 30, partitions=1
    )
    run(spark, config, sources=["payments"])
    produce_frames(
        kafka_bootstrap, topic, encode_mix("payments", records[30:], {}), [None] * 30, partitions=1
    )
    admin = make_admin(kafka_bootstrap)  # kept alive until its futures are done
    for future in admin.delete_records([TopicPartition(topic, 0, 45)]).values():
        future.result(30)
    metrics = PipelineMetrics(config.name)
    with pytest.raises(DataLossError, match=rf"topic-partition {topic}-0"):
        run(spark, config, sources=["payments"], metrics=metrics)
    ids = {"pipeline": "demo", "source": "payments"}
    assert metrics.registry.get_sample_value("driftline_query_up", ids) == 0
    assert metrics.registry.get_sample_value("driftline_query_failures_total", ids) == 1
