"""Schema drift seen in the stream: new writer schema ids, all-null fields, unseen categories.

One payments partition, 1,800 records one second apart (six five-minute windows, a
one-minute watermark, so windows 0-4 close), read in batches of 600:

- batch 0 (windows 0-1) is written with the reader schema (v2) only;
- in window 2, an old producer writes 50 records with v1 and a broken one 10 frames
  naming schema id 0x7FFFFFF0, which no registry has;
- in window 3 every record has ``risk_score`` null (an upstream model went dark);
- ``channel`` (not a feature) is null in windows 0-1, filled from window 2, and null
  again in window 4: only window 4 is an event (a field nobody has filled yet is not);
- in window 4, 50 records carry countries the training data never had.

Every expected event is computed here from the records themselves; then a second run
from the same checkpoint, with more v1 records and unregistered frames, must not report
v1 again (the registered ids met are kept with the job's state) but must report the
unregistered id again (its records are still being refused).
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
from driftline.spark.schema import nullable_fields
from tests.conftest import pipeline_copy
from tests.spark.helpers import REGISTRY, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N, WINDOW, UNREGISTERED = 1800, 300, 0x7FFFFFF0
START = pd.Timestamp("2026-01-05T08:00:00Z")
V1_AT = set(range(620, 870, 5))  # window 2: 50 records from an old producer
UNKNOWN_AT = set(range(603, 900, 30))  # window 2: 10 frames with an unregistered id
NEW_COUNTRY = {i: ("MX" if n % 5 == 0 else "BR") for n, i in enumerate(range(1210, 1460, 5))}  # 40 BR, 10 MX


def _frames(records, first: int = 0):
    v1, v2 = REGISTRY.get("payments", 1), REGISTRY.get("payments")
    old, new = AvroEncoder(v1), AvroEncoder(v2)
    out = []
    for i, record in enumerate(records, start=first):
        if 3 * WINDOW <= i < 4 * WINDOW:
            record = {**record, "risk_score": None}
        if i < 2 * WINDOW or 4 * WINDOW <= i < 5 * WINDOW:
            record = {**record, "channel": None}
        if i in NEW_COUNTRY:
            record = {**record, "country": NEW_COUNTRY[i]}
        if i in V1_AT:
            value = old.encode({k: v for k, v in record.items() if k != "channel"})
        elif i in UNKNOWN_AT:
            value = b"\x00" + UNREGISTERED.to_bytes(4, "big") + new.encode(record)[5:]
        else:
            value = new.encode(record)
        out.append((value, record))
    return out, v1.schema_id, v2.schema_id


def _produce(bootstrap: str, topic: str, frames) -> list[int]:
    producer, offsets = make_producer(bootstrap), []
    for value, record in frames:
        millis = int(record["event_time"].timestamp() * 1000)
        produce(producer, topic, value=value, timestamp=millis,
                on_delivery=lambda err, msg: offsets.append(msg.offset()))  # fmt: skip
    assert producer.flush(60) == 0
    return offsets


@pytest.fixture(scope="module")
def watched(spark, kafka_bootstrap, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("schema_events")
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:10]}.",
                             replace={'watermark = "10 minutes"': 'watermark = "1 minute"'})  # fmt: skip
    config = load_pipeline(pipeline)
    training = SignalGenerator("payments", seed=99, interval=timedelta(seconds=1)).records(5000)
    baseline_from_file(
        config, "payments", write_records(tmp_path / "train.parquet", training, [*training[0].value])
    )
    vocabulary = {r.value["country"] for r in training}
    records = [r.value for r in SignalGenerator("payments", seed=8, interval=timedelta(seconds=1)).records(N)]
    frames, v1_id, v2_id = _frames(records)
    topic = config.topic("payments")
    ensure_topics(make_admin(kafka_bootstrap), [TopicSpec(topic, 1)])
    assert _produce(kafka_bootstrap, topic, frames) == list(range(N))
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=600, metrics=metrics)
    events = read_delta(config.path(config.warehouse_dir) / "schema_events")
    return config, summary.sources["payments"], events, metrics, records, vocabulary, (v1_id, v2_id)


def _window(index: int) -> pd.Timestamp:
    return START + pd.Timedelta(seconds=WINDOW * index)


def test_new_writer_schema_ids_are_events_once_with_counts_and_offsets(watched):
    config, summary, events, *_, (v1_id, v2_id) = watched
    assert summary.read == N and summary.reconciles
    assert summary.by_reason == {"UNKNOWN_SCHEMA": len(UNKNOWN_AT)}
    new = events[events["kind"] == "new_writer_schema"].set_index("schema_id")
    assert sorted(new.index) == sorted([v1_id, UNREGISTERED])  # the reader's own id (v2) is no event
    assert v2_id not in set(new.index)
    for schema_id, at, registered in ((v1_id, V1_AT, True), (UNREGISTERED, UNKNOWN_AT, False)):
        row = new.loc[schema_id]
        assert row["count"] == len(at) and bool(row["registered"]) is registered
        assert row["batch_id"] == 1  # offsets 600-1199: the second batch
        (where,) = row["offset_ranges"]
        assert (where["partition"], where["first_offset"], where["last_offset"]) == (0, min(at), max(at))
        assert pd.isna(row["window_start"]) and row["field"] is None
    assert "UNKNOWN_SCHEMA" in new.loc[UNREGISTERED, "detail"]


def test_a_field_null_in_every_row_of_a_closed_window_is_an_event(watched):
    config, summary, events, _, records, *_ = watched
    fields = [f for f in nullable_fields(REGISTRY.get("payments")) if f != "event_time"]
    frame = pd.DataFrame(records)
    frame["window"] = (frame.index // WINDOW).astype(int)
    # independent: per closed window (0-4), the nullable fields null in every valid row
    dead = UNKNOWN_AT  # dead letters are not valid rows; v1 rows read channel as null
    valid = frame[~frame.index.isin(dead)].copy()
    valid.loc[valid.index.isin(V1_AT), "channel"] = None
    valid.loc[(valid.index >= 3 * WINDOW) & (valid.index < 4 * WINDOW), "risk_score"] = None
    valid.loc[(valid.index < 2 * WINDOW) | ((valid.index >= 4 * WINDOW) & (valid.index < 5 * WINDOW)),
              "channel"] = None  # fmt: skip
    # an event needs a field known to carry values: a feature (the training data has values
    # in each) or a field an earlier closed window had a value in
    known, expected = set(config.source("payments").features), []
    for w, rows in valid[valid["window"] <= 4].groupby("window"):
        expected += [(w, f) for f in fields if rows[f].isna().all() and f in known]
        known |= {f for f in fields if rows[f].notna().any()}
    assert expected == [(3, "risk_score"), (4, "channel")]  # the data as built, before the job's answer
    got = events[events["kind"] == "field_all_null"]
    assert sorted(zip(((got["window_start"] - START).dt.total_seconds() // WINDOW).astype(int), got["field"],
                      strict=True)) == expected  # fmt: skip
    assert got.iloc[0]["count"] == WINDOW and got.iloc[0]["share"] == 1.0


def test_categories_outside_the_reference_vocabulary_are_events(watched):
    config, summary, events, _, records, vocabulary, _ = watched
    # independent: per closed window, the countries the training data never had
    countries = pd.Series([NEW_COUNTRY.get(i, r["country"]) for i, r in enumerate(records)])
    window = pd.Series(range(N)) // WINDOW
    outside = countries[~countries.isin(vocabulary) & (window <= 4)]
    expected = outside.groupby(window[outside.index]).value_counts()
    assert list(expected.index) == [(4, "BR"), (4, "MX")]  # the data as built
    got = events[events["kind"] == "unseen_categories"]
    assert list(got["field"]) == ["country"] and got.iloc[0]["window_start"] == _window(4)
    row = got.iloc[0]
    assert list(row["values"]) == [v for _, v in expected.index]  # most frequent first
    assert row["count"] == expected.sum() and row["share"] == pytest.approx(expected.sum() / WINDOW)


def test_schema_events_show_in_metrics_and_the_summary(watched):
    config, summary, events, metrics, *_, (v1_id, _) = watched
    ids = {"pipeline": config.name, "source": "payments"}

    def count(kind: str, field: str = "") -> float | None:
        return metrics.registry.get_sample_value("driftline_schema_events_total",
                                                 ids | {"kind": kind, "field": field})  # fmt: skip

    assert count("new_writer_schema") == 2
    assert count("field_all_null", "risk_score") == count("field_all_null", "channel") == 1
    assert count("unseen_categories", "country") == 1
    assert count("unseen_categories", "merchant_category") == 0  # the series exists before any event
    assert count("field_all_null", "transaction_id") is None  # not nullable: no series
    kinds = {(e["kind"], e["field"], e["schema_id"]): e["events"] for e in summary.schema_events}
    assert kinds == {("new_writer_schema", None, v1_id): 1, ("new_writer_schema", None, UNREGISTERED): 1,
                     ("field_all_null", "risk_score", None): 1, ("field_all_null", "channel", None): 1,
                     ("unseen_categories", "country", None): 1}  # fmt: skip


def test_a_restarted_job_remembers_the_schema_ids_it_met(watched, spark, kafka_bootstrap):
    config, _, before, *_ = watched
    generator = SignalGenerator("payments", seed=8, interval=timedelta(seconds=1))
    more = [r.value for r in generator.records(300, first_index=N)]
    old = AvroEncoder(REGISTRY.get("payments", 1))
    new = AvroEncoder(REGISTRY.get("payments"))
    frames = [(old.encode({k: v for k, v in r.items() if k != "channel"}), r) for r in more[:100]]
    frames += [(b"\x00" + UNREGISTERED.to_bytes(4, "big") + new.encode(r)[5:], r) for r in more[100:105]]
    frames += [(new.encode(r), r) for r in more[105:]]
    _produce(kafka_bootstrap, config.topic("payments"), frames)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=600)
    assert summary.sources["payments"].read == N + 300
    after = read_delta(config.path(config.warehouse_dir) / "schema_events")
    ids = lambda events: sorted(events[events["kind"] == "new_writer_schema"]["schema_id"])  # noqa: E731
    v1_id = watched[-1][0]
    assert ids(before) == sorted([v1_id, UNREGISTERED])
    assert ids(after) == sorted([v1_id, UNREGISTERED, UNREGISTERED])  # v1 once; the unregistered id again
    again = after[(after["schema_id"] == UNREGISTERED) & (after["batch_id"].astype(int) > 1)]
    assert list(again["count"]) == [5] and not again["registered"].any()
