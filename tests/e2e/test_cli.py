"""The CLI as a new user runs it: generate a file, ingest it, read the summary."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEMO_PIPELINE, REPO, SCHEMAS, pipeline_copy
from tests.spark.helpers import read_delta

pytestmark = [pytest.mark.kafka, pytest.mark.e2e]


def driftline(*args, bootstrap=None, timeout=300):
    env = {**os.environ, **({"DRIFTLINE_BOOTSTRAP_SERVERS": bootstrap} if bootstrap else {})}
    return subprocess.run(
        [sys.executable, "-m", "driftline.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=REPO,
    )


def test_generate_then_ingest_prints_a_reconciling_summary(kafka_bootstrap, tmp_path, topic_prefix) -> None:
    pipeline = pipeline_copy(tmp_path, prefix=topic_prefix)
    out = tmp_path / "sensors.csv"
    generated = driftline(
        "generate", "-p", str(pipeline), "-s", "sensors", "-n", "5000", "-o", str(out), "--seed", "3",
        "--corrupt-rate", "0.05", "--drift", "mean_shift:temperature_c:2500:2", "--late-rate", "0.01",
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    assert json.loads(generated.stdout) == {"source": "sensors", "records": 5000, "out": str(out)}
    assert len(out.read_text().splitlines()) == 5001

    ingested = driftline(
        "ingest", "-p", str(pipeline), "-s", "sensors", "-i", str(out), bootstrap=kafka_bootstrap
    )
    assert ingested.returncode == 0, ingested.stderr
    [line] = ingested.stdout.strip().splitlines()
    summary = json.loads(line)
    assert summary["read"] == 5000 == summary["valid"] + summary["dead_lettered"]
    assert summary["dead_lettered"] == sum(summary["by_reason"].values())
    assert set(summary["by_reason"]) == {"NOT_PARSEABLE", "MISSING_FIELD", "TYPE_MISMATCH", "OUT_OF_RANGE"}
    assert 180 < summary["dead_lettered"] < 320  # 5% of 5000, seeded
    again = driftline("generate", "-p", str(pipeline), "-s", "sensors", "-n", "5000", "-o", str(tmp_path / "b.csv"),
                      "--seed", "3", "--corrupt-rate", "0.05", "--drift", "mean_shift:temperature_c:2500:2",
                      "--late-rate", "0.01")  # fmt: skip
    assert again.returncode == 0 and (tmp_path / "b.csv").read_bytes() == out.read_bytes()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ingest", "-p", str(DEMO_PIPELINE), "-s", "weather", "-i", "x.jsonl"],
         "pipeline 'demo' has no source 'weather'; valid sources: clickstream, payments, sensors"),
        (["ingest", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-i", "missing.jsonl"],
         "--input: missing.jsonl does not exist or is not a file"),
        (["ingest", "-p", "nowhere.toml", "-s", "sensors", "-i", "x.jsonl"], "pipeline definition nowhere.toml does not exist"),
        (["generate", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-n", "10", "-o", "x.parquet", "--corrupt-rate", "0.5",
          "--corrupt-kind", "wrong_type"], "Parquet cannot hold corrupt records of kind ['wrong_type']"),
        (["generate", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-n", "10", "-o", "x.csv", "--drift", "melt:rpm:1"],
         "drift kind 'melt' is not one of ('mean_shift', 'variance_change', 'new_category', 'null_rate')"),
        (["generate", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-n", "10", "-o", "x.csv", "--corrupt-rate", "0.1",
          "--corrupt-kind", "gibberish"], "valid: not_parseable, missing_field, wrong_type, out_of_range"),
        (["baseline", "-p", str(DEMO_PIPELINE), "-s", "sensors"], "give exactly one of --input FILE or --from-topic"),
        (["baseline", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-i", "x.csv", "--from-topic"],
         "give exactly one of --input FILE or --from-topic"),
        (["baseline", "-p", str(DEMO_PIPELINE), "-s", "sensors", "--from-topic", "--start-time", "yesterday"],
         "--start-time: 'yesterday' is not an ISO-8601 time (e.g. 2026-01-05T08:00:00Z)"),
        (["baseline", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-i", "missing.csv"], "--input: missing.csv does not exist"),
        (["baseline", "-p", str(DEMO_PIPELINE), "-s", "weather", "-i", "x.csv"], "valid sources: clickstream, payments, sensors"),
        (["baseline", "-p", str(DEMO_PIPELINE), "-s", "sensors", "-i", "x.csv", "--version", "../../escape"],
         "--version: '../../escape' must start with a letter or digit"),
    ],
)  # fmt: skip
def test_bad_input_stops_with_exit_2_and_names_what_is_wrong(args, message, tmp_path) -> None:
    run = driftline(*args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr
    assert not (REPO / "x.parquet").exists()


def test_a_pinned_reference_that_does_not_exist_stops_the_job_before_spark(tmp_path) -> None:
    pipeline = pipeline_copy(tmp_path, replace={"[reference]": '[reference]\nversion = "v9"'})
    run = driftline("run", "-p", str(pipeline), "--until-idle", timeout=120)
    assert run.returncode == 2, run.stderr
    assert "reference.version: no profile 'v9' for source 'payments'" in run.stderr
    assert "available: (none: run driftline baseline)" in run.stderr


def test_baseline_from_a_file_and_from_the_topic(kafka_bootstrap, tmp_path, topic_prefix) -> None:
    from datetime import UTC, datetime

    import numpy as np
    import pandas as pd

    from driftline.avro.codec import AvroDecoder
    from driftline.avro.registry import FileSchemaRegistry
    from driftline.config import load_pipeline
    from driftline.kafka.reading import read_topic
    from driftline.reference import find_profile
    from driftline.stats import ReferenceProfile

    pipeline = pipeline_copy(tmp_path, prefix=topic_prefix)
    data = tmp_path / "sensors.csv"
    made = driftline("generate", "-p", str(pipeline), "-s", "sensors", "-n", "3000", "-o", str(data),
                     "--seed", "5", "--corrupt-rate", "0.02")  # fmt: skip
    assert made.returncode == 0, made.stderr
    from_file = driftline(
        "baseline", "-p", str(pipeline), "-s", "sensors", "-i", str(data), "--version", "train-1"
    )
    assert from_file.returncode == 0, from_file.stderr
    summary = json.loads(from_file.stdout)
    assert summary["read"] == 3000 == summary["used"] + sum(summary["rejected"].values())
    assert 20 < sum(summary["rejected"].values()) < 110  # ~2% corrupt, seeded
    config = load_pipeline(pipeline)
    assert find_profile(config, "sensors").name == "train-1.json"
    profile = ReferenceProfile.load(summary["path"])
    # the profile counts exactly the rows ingest would accept, binned on their own quantiles
    frame = pd.read_csv(data, dtype=str, keep_default_na=False)
    temperature = pd.to_numeric(frame["temperature_c"], errors="coerce").dropna()
    feature = profile.features["temperature_c"]
    assert feature.counts.sum() == summary["used"]
    assert abs(feature.moments.mean - temperature.mean()) < 0.05
    edges = np.asarray(feature.binning.edges)
    assert abs(np.searchsorted(edges, temperature.median()) - len(edges) / 2) <= 0.02 * len(edges)
    assert set(profile.features["status"].binning.vocabulary) == {"OK", "WARN", "FAULT"}

    ingested = driftline(
        "ingest", "-p", str(pipeline), "-s", "sensors", "-i", str(data), bootstrap=kafka_bootstrap
    )
    assert ingested.returncode == 0, ingested.stderr
    messages = read_topic(kafka_bootstrap, config.topic("sensors"))
    by_partition = pd.Series([m.partition() for m in messages]).value_counts()
    ranged = driftline("baseline", "-p", str(pipeline), "-s", "sensors", "--from-topic", "--start-offset", "100",
                       "--end-offset", "300", "--version", "topic-1", bootstrap=kafka_bootstrap)  # fmt: skip
    assert ranged.returncode == 0, ranged.stderr
    expected = sum(max(0, min(300, n) - 100) for n in by_partition)
    assert json.loads(ranged.stdout)["used"] == expected > 0
    timed = driftline("baseline", "-p", str(pipeline), "-s", "sensors", "--from-topic", "--start-time",
                      "2026-01-05T08:01:00Z", "--end-time", "2026-01-05T08:03:00", "--version", "topic-2",
                      bootstrap=kafka_bootstrap)  # fmt: skip
    assert timed.returncode == 0, timed.stderr
    decoder = AvroDecoder(FileSchemaRegistry(SCHEMAS))
    start, end = datetime(2026, 1, 5, 8, 1, tzinfo=UTC), datetime(2026, 1, 5, 8, 3, tzinfo=UTC)
    in_range = sum(start <= decoder.decode(m.value()).value["event_time"] < end for m in messages)
    assert json.loads(timed.stdout)["used"] == in_range > 0


def test_unreachable_broker_exits_4(tmp_path) -> None:
    from driftline.kafka.broker import free_port

    data = tmp_path / "in.jsonl"
    data.write_text("{}\n")
    pipeline = pipeline_copy(tmp_path, extra='\n[kafka.client]\n"socket.timeout.ms" = 2000\n')
    run = driftline("ingest", "-p", str(pipeline), "-s", "sensors", "-i", str(data),
                    bootstrap=f"127.0.0.1:{free_port()}", timeout=120)  # fmt: skip
    assert run.returncode == 4, run.stderr
    assert "cannot list topics" in run.stderr


def test_demo_runs_and_every_source_reconciles(tmp_path) -> None:
    from driftline.demo.run import BYPASS_RECORDS, LEGACY_RECORDS

    run = driftline("demo", "--records", "3000", "--output-dir", str(tmp_path / "out"), timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(summary["ingest"]) == sorted(summary["job"]) == ["clickstream", "payments", "sensors"]
    for name, ingest in summary["ingest"].items():
        assert ingest["read"] == 3000 == ingest["valid"] + ingest["dead_lettered"]
        assert ingest["reconciles"] and ingest["undelivered"] == 0 and ingest["dead_lettered"] > 0
        job = summary["job"][name]
        assert job["read"] == ingest["valid"] + BYPASS_RECORDS + LEGACY_RECORDS.get(name, 0)
        assert job["read"] == job["valid"] + job["dead_lettered"] + job["late"] and job["reconciles"]
        half = BYPASS_RECORDS // 2
        assert job["by_reason"] == {
            "RULE_FAILED": half, "UNKNOWN_SCHEMA": half // 3, "DECODE_FAILED": half // 3, "NOT_FRAMED": half // 3
        }  # fmt: skip
        assert job["windows"] >= 1
    assert "pipeline demo: ingest" in run.stdout and "pipeline demo: quality stream job" in run.stdout
    # nothing from Spark's own logs a user cannot act on (its console log is WARN and up)
    spark_lines = [
        line for line in run.stderr.splitlines() if re.match(r"\d\d/\d\d/\d\d [\d:]{8} [A-Z]+ ", line)
    ]
    assert spark_lines == [], spark_lines[:5]
    # everything of the demo's own lives under <state_dir>/demo, apart from a user's own runs
    demo_root = REPO / ".driftline" / "demo"
    assert {Path(p).parent for p in summary["tables"].values()} == {demo_root / "warehouse"}
    assert (demo_root / "checkpoints" / "demo" / "payments" / "offsets").is_dir()
    assert "payments.amount per 5-minute window" in run.stdout

    # drift against the truth: every injected feature found after the injection, the rest quiet
    from driftline.demo.run import demo_drifts

    injected = {(source, d.feature) for source, drifts in demo_drifts(3000).items() for d in drifts}
    assert len(injected) == 7
    for source, features in summary["drift"].items():
        assert summary["references"][source]["used"] > 0
        assert summary["job"][source]["reference_version"] == summary["references"][source]["version"]
        for feature, verdict in features.items():
            if (source, feature) in injected:
                assert verdict["verdict"] == "found", (source, feature, verdict)
                assert verdict["first_flagged_window"] >= verdict["injected"]["from"][:16]
                assert summary["job"][source]["drifted"][feature] == verdict["first_flagged_window"]
            else:
                assert verdict["verdict"] == "quiet", (source, feature, verdict)
    assert "injected truth vs. what the job flagged" in run.stdout

    # the alerts went through the real Prometheus and Alertmanager (make test installs them)
    alerting = summary["alerting"]
    assert alerting["prometheus"] and alerting["alertmanager"], alerting["unavailable"]
    assert f"alerts delivered by Alertmanager {alerting['alertmanager']}" in run.stdout
    for source, features in summary["drift"].items():
        for feature, verdict in features.items():
            if (source, feature) in injected:  # the retraining hook gets every drift alert
                assert "webhook" in verdict["delivered_to"], (source, feature, verdict)
            else:
                assert verdict["delivered_to"] == [], (source, feature, verdict)
        delivered = {(d["alertname"], d["feature"], d["method"]) for d in alerting["delivered"]
                     if d["source"] == source}  # fmt: skip
        assert summary["job"][source]["alerts_delivered"] == len(delivered) > 0
    # window expectations: every demo suite has one, judged on each closed window
    failing = set()
    for source, job in summary["job"].items():
        assert job["expectations"], source
        for name, result in job["expectations"].items():
            assert result["windows"] == job["scored_windows"] or result["windows"] >= 1, (
                source,
                name,
                result,
            )
            if result["failed"]:
                failing.add(name)
    assert "window expectations (quality_results)" in run.stdout
    # the retraining webhook gets each drift alert's key and its episode's Kafka offsets,
    # the same as the fired event in the alerts table (first flagged window to the alert's)

    from driftline.spark.drift import offsets_label

    fired = read_delta(summary["tables"]["alerts"]).query("event == 'fired'").set_index("alert_id")
    to_webhook = [d for d in alerting["delivered"] if d["receiver"] == "webhook" and d["status"] == "firing"]
    assert to_webhook
    for d in to_webhook:
        episode = list(fired.loc[d["alert_id"], "episode_offset_ranges"])
        assert d["offsets"] == offsets_label(episode) != "", d
        window = {(r["topic"], r["partition"]): r for r in fired.loc[d["alert_id"], "offset_ranges"]}
        for r in episode:  # the episode covers the window the alert fired in
            assert r["first_offset"] <= window[(r["topic"], r["partition"])]["first_offset"]
    # schema drift: the old producer's v1 and the unregistered id, the all-null referrer, the new country
    from driftline.avro.registry import FileSchemaRegistry

    v1 = FileSchemaRegistry(REPO / "schemas").get("payments", 1).schema_id
    events = {(s, e["kind"], e["field"] or e["schema_id"]): e for s, job in summary["job"].items()
              for e in job["schema_events"]}  # fmt: skip
    assert events[("payments", "new_writer_schema", v1)]["events"] == 1
    assert events[("payments", "new_writer_schema", 0x7FFFFFFF)]["events"] >= 1  # each batch that has it
    assert "UNKNOWN_SCHEMA" in events[("payments", "new_writer_schema", 0x7FFFFFFF)]["detail"]
    assert events[("payments", "unseen_categories", "country")]["events"] >= 1
    assert "BR" in events[("payments", "unseen_categories", "country")]["detail"]
    referrer = events[("clickstream", "field_all_null", "referrer")]
    assert referrer["first_window"] >= summary["drift"]["clickstream"]["referrer"]["injected"]["from"][:16]
    assert {k[1] for k in events} == {"new_writer_schema", "unseen_categories", "field_all_null"}
    assert "schema drift (schema_events)" in run.stdout
    # circuit breakers: the demo's few dead letters per window (2% corrupt) never open one
    for source, job in summary["job"].items():
        assert job["breaker"] == {"open": False, "since": None, "degraded_windows": 0}, source
    allowed = {"DriftlineFeatureDrift", "DriftlineFeatureDriftSevere", "DriftlineSchemaChanged"}
    assert {d["alertname"] for d in alerting["delivered"]} <= allowed | (
        {"DriftlineWindowExpectationFailed"} if failing else set()
    )
    # the drift report, written at the end
    report = Path(summary["report"])
    assert report.is_file() and report.stat().st_size > 20_000
    assert f"drift report written to {report}" in " ".join(run.stdout.split())
    assert all(d["runbook_url"].endswith(d["alertname"].lower()) for d in alerting["delivered"])
