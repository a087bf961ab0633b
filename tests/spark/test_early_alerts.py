"""Early alerts (``[drift] early_alerts``): a track one drifted window short of firing
fires on a still-open window whose rows so far score drifted.

Two runs. The first:

One payments partition, one record a second: 5-minute windows of 300 rows, a 1-minute
watermark, batches of 230 records, drift injected from window 2 (08:10). Window 2
closes in batch 4 (records 920-1149; the record of 08:16 is index 960), which leaves
window 3 with its first 250 rows (900-1149) and still open (the watermark is
08:18:09). So a track whose window 2 drifted can fire on window 3 there, one batch
before window 3 closes (batch 5). Every expectation is recomputed from the records
with the notebook API (``ReferenceProfile.compare``).

The second: a 4-minute watermark, batches of 240 records, drift from window 3 (08:15).
Batch 5 (records 1200-1439) passes window 3's end, so its 300 rows are all in, but the
watermark (08:19:59) keeps it open; window 4 has its first 240 rows. Window 3, open but
passed, counts as it scores: a track drifted there is one short, and fires on window 4
in batch 5, a batch before window 3 closes (without passed windows counting, window 4
would fire in batch 6 at the earliest).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import Drift, SignalGenerator, write_records
from driftline.metrics import PipelineMetrics
from driftline.reference import baseline_from_file, find_profile
from driftline.spark.job import run
from driftline.stats import AlertPolicy, ReferenceProfile
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N, BATCH, INJECTED_AT = 1400, 230, 600
START = pd.Timestamp("2026-01-05T08:00:00Z")
WINDOW = pd.Timedelta(minutes=5)


def _records(n: int = N, injected_at: int = INJECTED_AT):
    drifts = (
        Drift("mean_shift", "amount", injected_at, 1.0),
        Drift("new_category", "country", injected_at, 0.2, "BR"),
        Drift("null_rate", "risk_score", injected_at, 0.35),
    )
    generator = SignalGenerator("payments", seed=31, interval=timedelta(seconds=1), drifts=drifts)
    return [r.value for r in generator.records(n)]


def _early_job(spark, kafka_bootstrap, tmp_path, *, watermark: str, n: int, batch: int, injected_at: int):
    """The payments pipeline with early alerts and ``watermark``, over ``n`` records with
    drift from record ``injected_at``, in batches of ``batch`` records."""
    prefix = f"e{uuid.uuid4().hex[:10]}."
    replace = {'watermark = "10 minutes"': f'watermark = "{watermark}"',
               "persistence_n = 3": "persistence_n = 3\nearly_alerts = true"}  # fmt: skip
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=prefix, replace=replace))
    assert config.drift.early_alerts
    training = SignalGenerator("payments", seed=98, interval=timedelta(seconds=1)).records(4000)
    baseline_from_file(config, "payments", write_records(tmp_path / "train.parquet", training,
                                                         [*training[0].value]))  # fmt: skip
    records = _records(n, injected_at)
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}),
                   [str(i).encode() for i in range(n)], partitions=1)  # fmt: skip
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=batch, metrics=metrics)
    warehouse = config.path(config.warehouse_dir)
    scores = read_delta(warehouse / "drift_scores")
    alerts = read_delta(warehouse / "alerts")
    alerts["batch_id"] = alerts["batch_id"].astype(int)
    return config, records, summary.sources["payments"], scores, alerts, metrics


@pytest.fixture(scope="module")
def early_run(spark, kafka_bootstrap, tmp_path_factory):
    run_ = _early_job(spark, kafka_bootstrap, tmp_path_factory.mktemp("early"), watermark="1 minute", n=N,
                      batch=BATCH, injected_at=INJECTED_AT)  # fmt: skip
    assert run_[0].windows.watermark.seconds == 60
    return run_


def _compare(config, rows: list[dict]) -> pd.DataFrame:
    profile = ReferenceProfile.load(find_profile(config, "payments"))
    return profile.compare(pd.DataFrame(rows), methods=config.drift.methods,
                           policy=AlertPolicy.from_settings(config.drift))  # fmt: skip


def test_a_track_one_window_short_fires_on_the_open_windows_rows_so_far(early_run):
    config, records, summary, scores, alerts, metrics = early_run
    assert summary.read == N and summary.reconciles and summary.batches == N // BATCH + 1
    window = lambda i: START + i * WINDOW  # noqa: E731
    # window 2, closed in batch 4: the job's scores of it are the notebook API's
    closed = _compare(config, records[600:900]).set_index(["feature", "method"])
    mine = scores[scores["window_start"] == window(2)].set_index(["feature", "method"])
    assert (mine["drifted"] == closed["drifted"].reindex(mine.index)).all()
    # window 3 as batch 4 left it: its first 250 rows, records 900..1149
    so_far = _compare(config, records[900:1150]).set_index(["feature", "method"])
    assert not scores[(scores["window_start"] < window(2)) & scores["drifted"]].shape[0]
    one_short = set(closed.index[closed["drifted"]])  # 1 of 2 judged windows drifted: one short of 2-of-3
    expected = one_short & set(so_far.index[so_far["drifted"]])
    assert {("amount", "ks"), ("risk_score", "null_rate")} <= expected  # the stream really drifts

    fired = alerts[alerts["event"] == "fired"].set_index(["feature", "method"])
    early = fired[fired["early"]]
    assert set(early.index) == expected
    assert (early["batch_id"] == 4).all() and (early["window_start"] == window(3)).all()
    assert (early["first_flagged_window"] == window(2)).all()
    for key, row in early.iterrows():  # the open window's score and n, as far as it had come
        assert row["n"] == so_far.loc[key, "n"] < 300 and abs(row["score"] - so_far.loc[key, "score"]) < 1e-9
        partition = {r["partition"]: (r["first_offset"], r["last_offset"]) for r in row["offset_ranges"]}
        assert partition == {0: (900, 1149)}
        assert [(r["first_offset"], r["last_offset"]) for r in row["episode_offset_ranges"]] == [(600, 1149)]
    # the others fire when window 3 closes (batch 5), judged on all of its rows: not early
    late = fired[~fired["early"] & (fired["first_flagged_window"] == window(2))]
    full = _compare(config, records[900:1200]).set_index(["feature", "method"])
    assert set(late.index) == (one_short - expected) & set(full.index[full["drifted"]])
    assert (late["batch_id"] == 5).all() and (late["window_start"] == window(3)).all()
    # an early alert is one episode: window 3 closes into the history without a second "fired"
    assert fired.index.is_unique
    window3 = scores[scores["window_start"] == window(3)]
    assert (window3["n"][window3["method"] == "psi"] == 300).all()
    for feature, method in expected:  # the exporter shows them firing
        value = metrics.registry.get_sample_value(
            "driftline_drift_alert_active",
            {"pipeline": config.name, "source": "payments", "feature": feature, "method": method},
        )
        assert value == 1.0, (feature, method)


def test_an_open_window_the_stream_has_passed_counts_as_it_scores(spark, kafka_bootstrap, tmp_path):
    n, batch, injected_at = 1700, 240, 900
    config, records, summary, scores, alerts, _ = _early_job(
        spark, kafka_bootstrap, tmp_path, watermark="4 minutes", n=n, batch=batch, injected_at=injected_at
    )
    assert summary.read == n and summary.reconciles
    window = lambda i: START + i * WINDOW  # noqa: E731
    assert not scores[(scores["window_start"] < window(3)) & scores["drifted"]].shape[0]
    # batch 5 (records 1200-1439): window 3 all in and passed, still open; window 4 so far
    passed = _compare(config, records[900:1200]).set_index(["feature", "method"])
    so_far = _compare(config, records[1200:1440]).set_index(["feature", "method"])
    expected = set(passed.index[passed["drifted"]]) & set(so_far.index[so_far["drifted"]])
    assert {("amount", "ks"), ("risk_score", "null_rate")} <= expected  # the stream really drifts

    fired = alerts[alerts["event"] == "fired"].set_index(["feature", "method"])
    early = fired[fired["early"] & (fired["batch_id"] == 5)]
    assert set(early.index) == expected
    assert (early["window_start"] == window(4)).all() and (early["first_flagged_window"] == window(3)).all()
    for key, row in early.iterrows():
        assert row["n"] == so_far.loc[key, "n"] <= 240 and abs(row["score"] - so_far.loc[key, "score"]) < 1e-9
        assert [(r["first_offset"], r["last_offset"]) for r in row["offset_ranges"]] == [(1200, 1439)]
        assert [(r["first_offset"], r["last_offset"]) for r in row["episode_offset_ranges"]] == [(900, 1439)]
    # window 3 is judged when it closes (batch 6) as it scored while passed: all its rows were in
    closed = scores[scores["window_start"] == window(3)].set_index(["feature", "method"])
    assert (closed["drifted"] == passed["drifted"].reindex(closed.index)).all()
    assert fired.index.is_unique  # one episode each: no second "fired" when the windows close
