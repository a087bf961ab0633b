"""``spark-submit jobs/quality_stream.py`` on a local Spark standalone cluster gives the
same tables as a local run.

A master and two one-core workers run on 127.0.0.1, started with pyspark's own
``spark-class``; the job is submitted to it with the project's jars, its state and
warehouse given as ``file://`` URIs (every read and write of the job's own files goes
through Hadoop's FileSystem, none through the driver's local disk). The same records
are then run locally in the test's session; counts, window statistics and dead letters
must agree row by row.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import Corruption, generator_for, write_records
from driftline.ingest.run import ingest_file
from driftline.kafka.broker import free_port
from driftline.spark.job import run
from tests.conftest import REPO, pipeline_copy
from tests.spark.helpers import read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]

EXACT = ["window_start", "feature", "rows", "nulls", "n", "mean", "min", "max", "distinct_count", "is_final"]


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _wait_for(condition, timeout: float, what: str, logs: list[Path]):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := condition():
            return result
        time.sleep(0.2)
    tails = "\n".join(p.read_text(errors="replace")[-2000:] for p in logs if p.exists())
    raise TimeoutError(f"gave up after {timeout}s waiting for {what}:\n{tails}")


@pytest.fixture
def standalone_cluster(tmp_path):
    """(``spark://127.0.0.1:<port>``, the master's JSON status URL) with two ALIVE one-core
    workers; stopped afterwards."""
    home = _spark_home()
    env = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PYSPARK_PYTHON": sys.executable,
    }
    port, ui = free_port(), free_port()
    master_url = f"spark://127.0.0.1:{port}"
    spark_class = str(home / "bin" / "spark-class")
    processes, logs = [], []

    def start(name: str, *argv: str) -> None:
        log = tmp_path / f"{name}.log"
        logs.append(log)
        with log.open("w") as out:
            processes.append(subprocess.Popen([spark_class, *argv], stdout=out, stderr=subprocess.STDOUT, env=env,
                                              stdin=subprocess.DEVNULL, start_new_session=True))  # fmt: skip

    def alive_workers() -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{ui}/json/", timeout=2) as response:
                return sum(w["state"] == "ALIVE" for w in json.load(response)["workers"])
        except OSError:
            return 0

    try:
        start("master", "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
              "--webui-port", str(ui))  # fmt: skip
        for index in range(2):
            work = tmp_path / f"worker-{index}"
            start(f"worker-{index}", "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1",
                  "--cores", "1", "--memory", "2g", "--webui-port", str(free_port()), "--work-dir", str(work),
                  master_url)  # fmt: skip
        _wait_for(lambda: alive_workers() == 2, 120, "two ALIVE workers", logs)
        yield master_url, f"http://127.0.0.1:{ui}/json/"
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def test_the_job_on_a_standalone_cluster_writes_the_tables_a_local_run_writes(
    spark, kafka_bootstrap, topic_prefix, tmp_path, standalone_cluster
) -> None:
    master, status = standalone_cluster
    cluster_root = tmp_path / "cluster"
    pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, name="cluster")
    text = pipeline.read_text()
    plain = load_pipeline(pipeline)
    for key in ("state_dir", "warehouse_dir"):  # URIs, as on shared storage
        local = plain.path(getattr(plain, key))
        text = text.replace(f'{key} = "{local}"', f'{key} = "file://{local}"')
    pipeline.write_text(text)
    config = load_pipeline(pipeline)
    assert config.warehouse_dir.startswith("file://") and config.state_dir.startswith("file://")
    generator, names = generator_for(config, "payments", seed=12, corruption=Corruption(0.05))
    records = generator.records(3000)
    for record in records[::50]:  # valid Avro, but the suite's amount:between rule fails in the job
        if record.kind == "valid":
            record.value["amount"] = -5.0
    ingested = ingest_file(config, "payments", write_records(tmp_path / "p.jsonl", records, names))
    from driftline.jvm import spark_jars

    submit = Path(sys.executable).parent / "spark-submit"
    env = {
        **os.environ,
        "PYSPARK_PYTHON": sys.executable,
        "PYTHONPATH": str(REPO),
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    submitted = subprocess.run(
        [str(submit), "--properties-file", str(REPO / "spark-conf" / "spark-defaults.conf"),
         "--master", master, "--deploy-mode", "client", "--total-executor-cores", "2",
         "--executor-cores", "1", "--executor-memory", "1g", "--jars", spark_jars(),
         str(REPO / "jobs" / "quality_stream.py"), "--pipeline", str(pipeline), "--until-idle",
         "--source", "payments", "--max-records-per-batch", "1000"],
        capture_output=True, text=True, timeout=900, cwd=REPO, env=env,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stdout[-2000:] + submitted.stderr[-4000:]
    with urllib.request.urlopen(status, timeout=5) as response:  # it ran there, on both workers
        master_state = json.load(response)
    apps = master_state["completedapps"] + master_state["activeapps"]
    assert [(a["name"], a["cores"]) for a in apps] == [(f"driftline-{config.name}", 2)], master_state
    [line] = [text for text in submitted.stdout.splitlines() if text.startswith('{"pipeline"')]
    on_cluster = json.loads(line)["sources"]["payments"]

    # the same records, run locally in this session with its own state and warehouse
    local_pipeline = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, name="local")
    local_config = load_pipeline(local_pipeline)
    local = run(spark, local_config, sources=["payments"], max_records_per_batch=1000).sources["payments"]

    assert on_cluster["read"] == ingested.valid > 2500  # ingest dead-lettered the corrupt ones
    for key in ("read", "valid", "dead_lettered", "late", "windows", "batches", "by_reason"):
        assert on_cluster[key] == getattr(local, key), key
    assert on_cluster["reconciles"] and local.reconciles

    warehouse = Path(config.warehouse_dir.removeprefix("file://"))
    local_warehouse = local_config.path(local_config.warehouse_dir)
    assert cluster_root.exists() and warehouse.is_relative_to(cluster_root)

    def stats(root: Path) -> pd.DataFrame:
        frame = read_delta(root / "feature_stats", columns=EXACT)
        return frame.sort_values(["window_start", "feature"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(stats(warehouse), stats(local_warehouse), check_exact=False, rtol=1e-12)

    def letters(root: Path) -> pd.DataFrame:
        frame = read_delta(
            root / "dead_letters", columns=["reason", "stage", "_partition", "_offset", "_raw"]
        )
        return frame.sort_values(["_partition", "_offset"]).reset_index(drop=True)

    pd.testing.assert_frame_equal(letters(warehouse), letters(local_warehouse))
    assert len(letters(warehouse)) == on_cluster["dead_lettered"] + on_cluster["late"] >= 50
    assert set(letters(warehouse)["reason"]) == {"RULE_FAILED"}
    # the state went through Hadoop FS to the URI: the last two versions, committed
    versions = sorted(int(p.name) for p in (warehouse / "_state" / "open" / "payments").iterdir())
    last = on_cluster["batches"] - 1
    assert (
        versions == [last - 1, last]
        and (warehouse / "_state" / "open" / "payments" / str(last) / "_commit.json").exists()
    )
