"""Window expectations in the streaming job, judged as Great Expectations judges the same rows.

A payments stream of 3,000 records (one per second: ten five-minute windows) with a suite
of window expectations only: uniqueness of ``transaction_id`` (duplicates injected into
two windows), the mean, stddev, min, max and sum of ``amount``, the non-null share of
``risk_score`` (its nulls rise from 5% to 40% halfway), the row count, the distinct
``card_id`` values and their share. Every closed window's ``quality_results`` row must
agree with GX 1.x validating that window's rows (pandas engine), the metrics must show the
newest window, and the value hashes of long-closed windows must be gone.
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import Drift, SignalGenerator
from driftline.metrics import PipelineMetrics
from driftline.spark.job import run
from tests.conftest import DEMO_PIPELINE, pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N, WINDOW = 3000, 300
START = pd.Timestamp("2026-01-05T08:00:00Z")
DUPLICATED = {2: 7, 5: 1}  # window index -> how many of its transaction ids appear twice in it
SUITE = [
    ("expect_column_values_to_be_unique", {"column": "transaction_id"}),
    ("expect_column_mean_to_be_between", {"column": "amount", "min_value": 20, "max_value": 60}),
    ("expect_column_stdev_to_be_between", {"column": "amount", "max_value": 40}),
    ("expect_column_min_to_be_between", {"column": "amount", "min_value": 1}),
    ("expect_column_max_to_be_between", {"column": "amount", "max_value": 400}),
    ("expect_column_sum_to_be_between", {"column": "amount", "min_value": 6000, "max_value": 18000}),
    ("expect_column_proportion_of_non_null_values_to_be_between", {"column": "risk_score", "min_value": 0.9}),
    ("expect_table_row_count_to_be_between", {"min_value": 300, "max_value": 300}),
    ("expect_column_unique_value_count_to_be_between", {"column": "card_id", "min_value": 280}),
    ("expect_column_proportion_of_unique_values_to_be_between", {"column": "card_id", "min_value": 0.95}),
]


def _records() -> list[dict]:
    drifts = (Drift("null_rate", "risk_score", N // 2, 0.4),)
    records = [r.value for r in SignalGenerator("payments", seed=5, interval=timedelta(seconds=1),
                                                drifts=drifts).records(N)]  # fmt: skip
    for window, copies in DUPLICATED.items():  # ids of the window's first records reappear in it
        for k in range(copies):
            first = window * WINDOW + k
            records[first + 100]["transaction_id"] = records[first]["transaction_id"]
    return records


@pytest.fixture(scope="module")
def judged(spark, kafka_bootstrap, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("window_checks")
    suite = tmp_path / "payments_windows.json"
    expectations = [{"type": kind, "kwargs": kwargs} for kind, kwargs in SUITE]
    suite.write_text(json.dumps({"name": "payments_windows", "expectations": expectations}))
    prefix = f"t{uuid.uuid4().hex[:10]}."
    demo_suite = f'expectations = "{DEMO_PIPELINE.parent}/expectations/payments.json"'
    path = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=prefix,
                         replace={demo_suite: f'expectations = "{suite}"'})  # fmt: skip
    config = load_pipeline(path)
    records = _records()
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}),
                   [str(i).encode() for i in range(N)])  # fmt: skip
    metrics = PipelineMetrics(config.name)
    summary = run(spark, config, sources=["payments"], max_records_per_batch=700, metrics=metrics)
    warehouse = config.path(config.warehouse_dir)
    results = read_delta(warehouse / "quality_results")
    return config, records, summary.sources["payments"], results, metrics, warehouse


@pytest.fixture(scope="module")
def gx_validate():
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    whole = (
        context.data_sources.add_pandas("w")
        .add_dataframe_asset("w")
        .add_batch_definition_whole_dataframe("w")
    )

    def validate(frame: pd.DataFrame, kind: str, kwargs: dict):
        name = "".join(part.capitalize() for part in kind.split("_"))
        return whole.get_batch(batch_parameters={"dataframe": frame}).validate(
            getattr(gx.expectations, name)(**kwargs)
        )

    return validate


def test_every_closed_window_is_judged_once_per_expectation(judged):
    _, _, summary, results, _, _ = judged
    assert summary.read == N and summary.reconciles and summary.dead_lettered == 0
    windows = sorted(results["window_start"].unique())
    # the newest event is at 08:49:59 and the watermark 10 minutes behind it: the seven
    # windows ending by 08:35 closed, the three after stay open
    assert len(windows) == 7
    assert windows == [START + pd.Timedelta(seconds=WINDOW * i) for i in range(len(windows))]
    per_window = results.groupby("window_start")["expectation_type"].agg(sorted)
    assert all(kinds == sorted(kind for kind, _ in SUITE) for kinds in per_window)
    assert len(results) == len(windows) * len(SUITE)
    assert sorted(results["expectation"].unique()) == sorted(summary.expectations)
    assert {name: stats["windows"] for name, stats in summary.expectations.items()} == {
        name: len(windows) for name in results["expectation"].unique()
    }


def test_each_result_agrees_with_great_expectations_on_the_windows_rows(judged, gx_validate):
    _, records, _, results, _, _ = judged
    frame = pd.DataFrame(records)
    frame["window_start"] = frame["event_time"].dt.floor(f"{WINDOW}s")
    by_type = {kind: kwargs for kind, kwargs in SUITE}
    checked = 0
    for (start, kind), row in results.set_index(["window_start", "expectation_type"]).iterrows():
        rows = frame[frame["window_start"] == start].drop(columns=["window_start"]).reset_index(drop=True)
        theirs = gx_validate(rows, kind, by_type[kind])
        assert row["success"] == theirs.success, (start, kind, row.to_dict(), theirs.result)
        if kind == "expect_column_values_to_be_unique":
            assert row["unexpected_count"] == theirs.result["unexpected_count"]
        else:
            assert row["observed_value"] == pytest.approx(float(theirs.result["observed_value"]), rel=1e-9)
        checked += 1
    assert checked == len(results)


def test_the_injected_faults_are_what_fails(judged):
    _, _, summary, results, metrics, _ = judged
    failed = results[~results["success"]]
    unique = failed[failed["expectation"] == "transaction_id:unique"]
    # GX's unexpected rows: both rows of each repeated id
    assert dict(zip(unique["window_start"], unique["unexpected_count"], strict=True)) == {
        START + pd.Timedelta(seconds=WINDOW * w): 2 * copies for w, copies in DUPLICATED.items()
    }
    nulls = results[results["expectation"] == "risk_score:proportion_of_non_null_values_between"]
    late = nulls[nulls["window_start"] >= START + pd.Timedelta(seconds=N // 2)]
    early = nulls[nulls["window_end"] <= START + pd.Timedelta(seconds=N // 2)]
    assert not late["success"].any() and early["success"].all()
    assert (late["observed_value"] < 0.75).all() and (early["observed_value"] > 0.9).all()
    first = summary.expectations["risk_score:proportion_of_non_null_values_between"]["first_failed"]
    assert pd.Timestamp(first) == late["window_start"].min()
    # every row carries the offsets its window was computed from
    assert all(len(r) >= 1 and r[0]["topic"].endswith("payments") for r in results["offset_ranges"])
    ids = {"pipeline": "demo", "source": "payments", "suite": "payments_windows"}
    newest = nulls.sort_values("window_end").iloc[-1]
    sample = metrics.registry.get_sample_value
    violation = sample("driftline_window_expectation_violation_detected",
                       {**ids, "expectation": "risk_score:proportion_of_non_null_values_between"})  # fmt: skip
    assert violation == int(not newest["success"])
    failures = sample("driftline_window_expectation_windows_total",
                      {**ids, "expectation": "transaction_id:unique", "outcome": "failure"})  # fmt: skip
    assert failures == len(unique)


def test_value_hashes_are_kept_for_open_and_just_closed_windows_only(judged):
    """One folder per batch, named by the newest window end it holds; deleted once every
    window in it has closed before a later batch started."""
    _, _, summary, results, _, warehouse = judged
    root = warehouse / "_state" / "unique" / "source=payments"
    kept = {int(p.name.split("=")[1]): [b.name for b in p.glob("batch_id=*")] for p in root.glob("until=*")}
    judged_windows = results["window_start"].nunique()
    total_windows = N // WINDOW
    assert 1 <= len(kept) <= total_windows - judged_windows + 2, kept
    # the newest folder holds the stream's last window, written by (among others) the last batch
    assert max(kept) == int((START + pd.Timedelta(seconds=WINDOW * total_windows)).timestamp())
    assert f"batch_id={summary.batches - 1}" in kept[max(kept)]
    # every kept folder still holds a window that was open when the last batch started:
    # none ends before the oldest window the last batch judged
    last_judged = results[results["batch_id"].astype(int) == results["batch_id"].astype(int).max()]
    oldest_judged_end = int(last_judged["window_end"].min().timestamp())
    assert min(kept) >= oldest_judged_end, (sorted(kept), oldest_judged_end)
    batches = [b for folders in kept.values() for b in folders]
    assert len(batches) == len(set(batches)) < summary.batches  # one folder per batch, the old ones gone
