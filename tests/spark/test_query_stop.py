"""A query stopped while its foreachBatch runs a Spark job stops cleanly: Spark recognises
the stop in the Python traceback (a regex that recurses per character) without a
StackOverflowError, and the query reports no failure."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.spark

# a foreachBatch 30 Python frames deep (driftline's own batches are about that deep) running a
# long Spark job; the query is stopped once that job runs (a condition, not a sleep)
SCRIPT = textwrap.dedent("""
    import threading, time
    from driftline.spark.session import build_session

    spark = build_session("query-stop")
    tracker = spark.sparkContext.statusTracker()
    entered = threading.Event()

    def deep(n):
        if n == 0:
            entered.set()
            return spark.range(10**12).selectExpr("sum(id * 7 % 13)").collect()
        return deep(n - 1)

    query = (spark.readStream.format("rate").option("rowsPerSecond", 1).load()
             .writeStream.foreachBatch(lambda df, batch_id: deep(30)).start())
    assert entered.wait(300)
    def running_tasks():
        stages = (tracker.getStageInfo(s) for s in tracker.getActiveStageIds())
        return sum(stage.numActiveTasks for stage in stages if stage is not None)

    deadline = time.monotonic() + 300
    while running_tasks() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert running_tasks() > 0, "the batch's Spark job never ran"
    query.stop()
    print("EXCEPTION:", query.exception(), flush=True)
    spark.stop()
""")


@pytest.mark.timeout(600)
def test_a_query_stopped_mid_batch_stops_without_a_stack_overflow() -> None:
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=600, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "StackOverflowError" not in run.stderr, run.stderr[:3000]
    assert "EXCEPTION: None" in run.stdout
