"""Early alerts (``[drift] early_alerts``): a track one drifted window short of firing
fires on a still-open window whose rows so far score drifted.

One payments partition, one record a second: 5-minute windows of 300 rows, a 1-minute
watermark, batches of 230 records, drift injected from window 2 (08:10). Window 2
closes in batch 4 (records 920-1149; the record of 08:16 is index 960), which leaves
window 3 with its first 250 rows (900-1149) and still open (the watermark is
08:18:09). So a track whose window 2 drifted can fire on window 3 there, one batch
before window 3 closes (batch 5). Every expectation is recomputed from the records
with the notebook API (``ReferenceProfile.compare``).
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


def _records():
    drifts = (
        Drift("mean_shift", "amount", INJECTED_AT, 1.0),
        Drift("new_category", "country", INJECTED_AT, 0.2, "BR"),
        Drift("null_rate", "risk_score", INJECTED_AT, 0.35),
    )
    generator = SignalGenerator("payments", seed=31, interval=timedelta(seconds=1), drifts=drifts)
    return [r.value for r in generator.records(N)]


@pytest.fixture(scope="module")
def early_run(spark, kafka_bootstrap, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("early")
    prefix = f"e{uuid.uuid4().hex[:10]}."
    replace = {'watermark = "10 minutes"': 'watermark = "1 minute"',
               "persistence_n = 3": "persistence_n = 3\nearly_alerts = true"}  # fmt: skip
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=prefix, replace=replace))
    assert config.drift.early_alerts and config.windows.watermark.seconds == 60
    training = SignalGenerator("payments", seed=98, interval=timedelta(seconds=1)).records(4000)
    baseline_from_file(config, "payments", write_records(tmp_path / "train.parquet", training,
                                                         [*training[0].value]))  # fmt: skip
    records = _records()
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}),
                   [str(i).encode() for i in range(N)], partitions=1)  # fmt: skip
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=BATCH, metrics=metrics)
    warehouse = config.path(config.warehouse_dir)
    scores = read_delta(warehouse / "drift_scores")
    alerts = read_delta(warehouse / "alerts")
    alerts["batch_id"] = alerts["batch_id"].astype(int)
    return config, records, summary.sources["payments"], scores, alerts, metrics


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
