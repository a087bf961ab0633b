"""``spark-submit jobs/quality_stream.py`` with ``spark-conf/`` runs the same job as ``driftline run``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import Corruption, generator_for, write_records
from driftline.ingest.run import ingest_file
from tests.conftest import REPO, pipeline_copy

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]


def test_spark_submit_runs_the_job_until_idle(kafka_bootstrap, topic_prefix, tmp_path) -> None:
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix)
    config = load_pipeline(pipeline)
    generator, names = generator_for(config, "clickstream", seed=4, corruption=Corruption(0.05))
    records = generator.records(4000)
    ingested = ingest_file(config, "clickstream", write_records(tmp_path / "c.jsonl", records, names))
    from driftline.jvm import spark_jars

    submit = Path(sys.executable).parent / "spark-submit"
    run = subprocess.run(
        [str(submit), "--properties-file", str(REPO / "spark-conf" / "spark-defaults.conf"), "--master", "local[2]",
         "--jars", spark_jars(),
         str(REPO / "jobs" / "quality_stream.py"), "--pipeline", str(pipeline), "--until-idle", "--source", "clickstream"],
        capture_output=True, text=True, timeout=600, cwd=REPO, env={**os.environ, "PYSPARK_PYTHON": sys.executable, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    [line] = [text for text in run.stdout.splitlines() if text.startswith('{"pipeline"')]
    summary = json.loads(line)["sources"]["clickstream"]
    assert summary["read"] == ingested.valid == summary["valid"] and summary["reconciles"]
    valid_times = pd.Series([r.value["event_time"] for r in records if r.kind == "valid"])
    assert summary["windows"] == valid_times.dt.floor("5min").nunique() > 0
    assert (Path(config.path(config.warehouse_dir)) / "feature_stats" / "source=clickstream").is_dir()
