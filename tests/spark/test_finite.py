"""Infinite feature values are dead letters (NOT_FINITE, stage decode), never statistics.

Records written by any producer (not through ``driftline ingest``, which refuses them)
carry +-Infinity in a numeric feature, a NaN amount (which the payments suite's
``between`` rule refuses: RULE_FAILED), and one record that is both infinite and far in
the future (its first reason, the event time, wins). Every window's statistics must
stay finite and every count must reconcile.
"""

from __future__ import annotations

import math

import pytest

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.kafka.dead_letter import DeadLetter
from driftline.kafka.reading import read_topic
from driftline.quality.reasons import ReasonCode
from driftline.spark.job import run
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

INFINITE = {20: ("amount", math.inf), 40: ("amount", -math.inf), 60: ("risk_score", math.inf)}
NAN = 80  # amount = NaN: not infinite, so it passes this check; amount:between refuses it
BOTH = 100  # amount = inf and event time 9999-12-31: EVENT_TIME_OUT_OF_RANGE, the first check's reason


def test_infinite_features_are_dead_letters_and_statistics_stay_finite(spark, kafka_bootstrap, topic_prefix,
                                                                       tmp_path):  # fmt: skip
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix))
    records = [r.value for r in SignalGenerator("payments", seed=11).records(200)]
    for index, (field, value) in INFINITE.items():
        records[index] = {**records[index], field: value}
    records[NAN] = {**records[NAN], "amount": math.nan}
    records[BOTH] = {**records[BOTH], "amount": math.inf, "event_time": 253_402_214_400_000}
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}), [None] * 200,
                   partitions=1)  # fmt: skip

    summary = run(spark, config, sources=["payments"], max_records_per_batch=100).as_dict()["sources"][
        "payments"
    ]
    assert summary["read"] == 200 and summary["reconciles"] is True
    assert summary["by_reason"] == {"NOT_FINITE": 3, "EVENT_TIME_OUT_OF_RANGE": 1, "RULE_FAILED": 1}
    assert summary["valid"] + summary["late"] == 195

    letters = {
        letter.offset: letter
        for letter in (DeadLetter.from_message(m.value(), m.headers())
                       for m in read_topic(kafka_bootstrap, config.dead_letter_topic("payments")))
    }  # fmt: skip
    assert sorted(letters) == sorted([*INFINITE, BOTH, NAN])
    assert letters[BOTH].reason is ReasonCode.EVENT_TIME_OUT_OF_RANGE
    assert letters[NAN].reason is ReasonCode.RULE_FAILED and "amount:between" in letters[NAN].message
    for offset, (field, value) in INFINITE.items():
        assert letters[offset].reason is ReasonCode.NOT_FINITE and letters[offset].reason.stage == "decode"
        assert (
            f"numeric feature {field} = {'-' if value < 0 else ''}Infinity is not finite"
            in letters[offset].message
        )

    stats = read_delta(config.path(config.warehouse_dir) / "feature_stats")
    numeric = stats[stats["kind"] == "numeric"]
    assert numeric[["mean", "stddev", "min", "max"]].notna().all().all()
    assert numeric[["mean", "stddev", "min", "max"]].map(math.isfinite).all().all()
    amount = numeric[numeric["feature"] == "amount"]
    assert amount["rows"].sum() == summary["valid"]
    kept = [r["amount"] for i, r in enumerate(records) if i not in (*INFINITE, BOTH, NAN)]
    assert amount["max"].max() == max(kept) and amount["min"].min() == min(kept)
