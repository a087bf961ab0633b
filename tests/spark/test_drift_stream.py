"""Streaming drift end to end: a reference built with ``driftline baseline``, a stream with
drift injected into three features from a known window, the job scoring closed windows.

The injected features must fire (first alert within ``persistence_n`` windows of the
injection), the untouched ones must stay quiet, the Spark-side counts must score
exactly as the notebook API scores the same rows, and the alerts topic must carry
exactly the alerts table's events.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import Drift, SignalGenerator, write_records
from driftline.kafka.reading import read_topic
from driftline.metrics import PipelineMetrics
from driftline.reference import baseline_from_file, find_profile
from driftline.spark.job import run
from driftline.stats import AlertPolicy, ReferenceProfile
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N = 6000  # one record per second: 20 five-minute windows of ~300 rows
WINDOW = 300
INJECTED_AT = 3000  # record index = window 10 (08:50)
DRIFTED = {"amount", "country", "risk_score"}
QUIET = {"installments", "merchant_category", "is_online"}


def _stream():
    drifts = (
        Drift("mean_shift", "amount", INJECTED_AT, 1.0),
        Drift("new_category", "country", INJECTED_AT, 0.2, "BR"),
        Drift("null_rate", "risk_score", INJECTED_AT, 0.35),
    )
    return SignalGenerator("payments", seed=23, interval=timedelta(seconds=1), drifts=drifts).records(N)


@pytest.fixture(scope="module")
def drift_run(spark, kafka_bootstrap, tmp_path_factory):
    """One job run shared by the module's tests (they only read its outputs)."""
    tmp_path = tmp_path_factory.mktemp("drift")
    prefix = f"t{uuid.uuid4().hex[:10]}."
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=prefix))
    training = SignalGenerator("payments", seed=99, interval=timedelta(seconds=1)).records(8000)
    names = [*training[0].value]
    baseline = baseline_from_file(
        config, "payments", write_records(tmp_path / "train.parquet", training, names)
    )
    records = [r.value for r in _stream()]
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}),
                   [str(i).encode() for i in range(N)])  # fmt: skip
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=2500, metrics=metrics)
    summary = summary.sources["payments"]
    warehouse = config.path(config.warehouse_dir)
    scores = pd.read_parquet(warehouse / "drift_scores")
    alerts = pd.read_parquet(warehouse / "alerts")
    return config, baseline, records, summary, scores, alerts, metrics


def test_injected_drift_fires_and_untouched_features_stay_quiet(drift_run):
    config, baseline, _, summary, scores, alerts, _ = drift_run
    assert baseline.used == 8000 and not baseline.rejected
    assert summary.read == N and summary.reconciles and summary.batches >= 3
    assert summary.reference_version == baseline.version

    injected_window = pd.Timestamp("2026-01-05T08:00:00Z") + pd.Timedelta(seconds=INJECTED_AT)
    fired = alerts[alerts["event"] == "fired"]
    assert set(fired["feature"]) == DRIFTED, fired[["feature", "method", "window_start"]]
    assert not set(scores[scores["drifted"]]["feature"]) & QUIET
    policy = config.drift
    for feature in DRIFTED:
        first = fired[fired["feature"] == feature]
        # fired once per (feature, method), at most persistence_n windows after the injection
        assert first["alert_id"].is_unique
        assert (first["first_flagged_window"] >= injected_window).all()
        lag = (first["window_start"].min() - injected_window) / pd.Timedelta(seconds=WINDOW)
        assert 0 <= lag < policy.persistence_n, (feature, lag)
    assert summary.drifted.keys() == DRIFTED
    # the nulls' move is seen by the null rate itself, and only on the feature whose nulls moved
    assert set(fired[fired["method"] == "null_rate"]["feature"]) == {"risk_score"}
    assert summary.alerts_fired == len(fired)

    # every closed window scored once for every feature and applicable method; nothing before it drifts
    per_window = scores.groupby("window_start").size()
    # 3 numeric x (psi, ks, null_rate) + 3 categorical x (psi, chi2, null_rate)
    assert (per_window == 18).all()
    assert summary.scored_windows == len(per_window) >= 15
    assert not scores[(scores["window_start"] < injected_window) & scores["drifted"]].shape[0]
    # the evidence names the bin that moved: the new category, the null slot
    new_category = scores[(scores["feature"] == "country") & (scores["window_start"] >= injected_window)]
    assert all(row[0]["bin"] == "__OOV__" for row in new_category["top_shifted"])
    nulls = scores[(scores["feature"] == "risk_score") & (scores["method"] == "psi")]
    assert all(
        row[0]["bin"] == "__NULL__" for row in nulls[nulls["window_start"] >= injected_window]["top_shifted"]
    )


def test_spark_window_counts_score_like_the_notebook_api(drift_run):
    """Spark-side grid bins and category counts must give the scores the pure path gives."""
    config, baseline, records, _, scores, _, _ = drift_run
    profile = ReferenceProfile.load(find_profile(config, "payments"))
    frame = pd.DataFrame(records)
    frame["window_start"] = frame["event_time"].dt.floor("5min")  # UTC instants, as in the tables
    policy = AlertPolicy.from_settings(config.drift)
    checked = 0
    for window_start, rows in frame.groupby("window_start"):
        mine = scores[scores["window_start"] == window_start]
        if mine.empty:
            continue  # still open at the end of the stream
        theirs = profile.compare(rows, methods=config.drift.methods, policy=policy)
        merged = mine.merge(theirs, on=["feature", "method"], suffixes=("", "_api"))
        assert len(merged) == 18
        assert (merged["n"] == merged["n_api"]).all()
        assert (merged["score"] - merged["score_api"]).abs().max() < 1e-9
        assert (merged["drifted"] == merged["drifted_api"]).all()
        checked += 1
    assert checked >= 15


def test_alerts_topic_carries_exactly_the_alerts_table(drift_run, kafka_bootstrap):
    config, _, _, _, _, alerts, _ = drift_run
    topic = config.kafka.topic_prefix + config.drift.alerts_topic
    events = [json.loads(m.value()) for m in read_topic(kafka_bootstrap, topic)]
    assert len(events) == len(alerts) > 0
    seen = {(e["alert_id"], e["event"], e["window_start"][:19]) for e in events}
    table = {(r.alert_id, r.event, r.window_start.isoformat()[:19]) for r in alerts.itertuples()}
    assert seen == table
    fired = next(e for e in events if e["event"] == "fired")
    assert fired["score"] >= fired["threshold"] and fired["n"] >= config.drift.min_rows
    assert fired["source"] == "payments" and fired["top_shifted"] and fired["offset_ranges"]


def test_drift_metrics_show_the_newest_window_and_the_firing_alerts(drift_run):
    """What Prometheus would scrape agrees with the tables: the newest closed window's score,
    threshold and flag per (feature, method), the policy's firing alerts and since when."""
    _, _, _, _, scores, alerts, metrics = drift_run
    registry = metrics.registry
    newest = scores[scores["window_start"] == scores["window_start"].max()]
    assert len(newest) == 12
    firing = set()
    for key, events in alerts.sort_values("window_start").groupby(["feature", "method"]):
        if events.iloc[-1]["event"] == "fired":
            firing.add(key)
    assert {feature for feature, _ in firing} == DRIFTED  # the drift lasts to the end of the stream
    for row in newest.itertuples():
        labels = {"pipeline": "demo", "source": "payments", "feature": row.feature, "method": row.method}
        value = lambda name, labels=labels: registry.get_sample_value(name, labels)  # noqa: E731
        assert value("driftline_drift_score") == pytest.approx(row.score, rel=1e-12)
        assert value("driftline_drift_effect") == pytest.approx(row.effect, rel=1e-12)
        assert value("driftline_drift_threshold") == row.threshold
        assert value("driftline_drift_detected") == int(row.drifted)
        active = (row.feature, row.method) in firing
        assert value("driftline_drift_alert_active") == int(active), labels
        fired = alerts[(alerts["feature"] == row.feature) & (alerts["method"] == row.method)]
        assert value("driftline_drift_alerts_total") is None  # that series has an event label
        for event in ("fired", "resolved"):
            count = registry.get_sample_value("driftline_drift_alerts_total", {**labels, "event": event})
            assert (count or 0) == (fired["event"] == event).sum()
        if active:
            since = fired[fired["event"] == "fired"]["first_flagged_window"].max()
            assert value("driftline_drift_first_flagged_timestamp_seconds") == since.timestamp()
    window_end = registry.get_sample_value(
        "driftline_drift_window_end_timestamp_seconds", {"pipeline": "demo", "source": "payments"}
    )
    assert window_end == newest["window_end"].iloc[0].timestamp()


def test_a_restarted_job_shows_the_saved_alerts_before_its_next_window(drift_run, spark):
    """The policy state on disk, not an empty registry, decides what is firing after a restart."""
    config, _, _, _, _, alerts, metrics = drift_run
    from driftline.spark.job import drift_scorer
    from driftline.spark.tables import Warehouse

    restarted = PipelineMetrics(config.name)
    scorer = drift_scorer(config, "payments", Warehouse(config.location(config.warehouse_dir)))
    scorer.metrics = restarted
    scorer.export_saved_state(spark)
    for family in metrics.registry.collect():
        if family.name != "driftline_drift_alert_active":
            continue
        for s in family.samples:  # the same firing set as the run that wrote the state
            assert restarted.registry.get_sample_value(s.name, s.labels) == s.value, s.labels
    firing = [s for f in restarted.registry.collect() if f.name == "driftline_drift_alert_active"
              for s in f.samples if s.value == 1]  # fmt: skip
    assert {s.labels["feature"] for s in firing} == DRIFTED
