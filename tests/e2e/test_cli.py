"""The CLI as a new user runs it: generate a file, ingest it, read the summary."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DEMO_PIPELINE, REPO, pipeline_copy

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
    ],
)  # fmt: skip
def test_bad_input_stops_with_exit_2_and_names_what_is_wrong(args, message, tmp_path) -> None:
    run = driftline(*args)
    assert run.returncode == 2, run.stdout + run.stderr
    assert message in run.stderr
    assert not (REPO / "x.parquet").exists()


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
    from driftline.demo import BYPASS_RECORDS

    run = driftline("demo", "--records", "3000", "--output-dir", str(tmp_path / "out"), timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert sorted(summary["ingest"]) == sorted(summary["job"]) == ["clickstream", "payments", "sensors"]
    for name, ingest in summary["ingest"].items():
        assert ingest["read"] == 3000 == ingest["valid"] + ingest["dead_lettered"]
        assert ingest["reconciles"] and ingest["undelivered"] == 0 and ingest["dead_lettered"] > 0
        job = summary["job"][name]
        assert job["read"] == ingest["valid"] + BYPASS_RECORDS
        assert job["read"] == job["valid"] + job["dead_lettered"] + job["late"] and job["reconciles"]
        half = BYPASS_RECORDS // 2
        assert job["by_reason"] == {
            "RULE_FAILED": half, "UNKNOWN_SCHEMA": half // 3, "DECODE_FAILED": half // 3, "NOT_FRAMED": half // 3
        }  # fmt: skip
        assert job["windows"] >= 1
    assert "pipeline demo: ingest" in run.stdout and "pipeline demo: quality stream job" in run.stdout
    assert "payments.amount per 5-minute window" in run.stdout
