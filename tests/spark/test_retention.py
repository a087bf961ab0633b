"""The dead_letters table's retention: old batch partitions go, recent ones and others stay."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pytest

from driftline.spark.retention import RetentionSweeper, expired

pytestmark = pytest.mark.spark

DAY_MS = 86_400_000


def test_expired_picks_batches_older_than_the_retention_oldest_first() -> None:
    now = 100 * DAY_MS
    entries = [("batch_id=10", now - 31 * DAY_MS), ("batch_id=9", now - 40 * DAY_MS),
               ("batch_id=11", now - 29 * DAY_MS), ("_SUCCESS", 0), ("batch_id=12", now)]  # fmt: skip
    assert expired(entries, timedelta(days=30), now) == ["batch_id=9", "batch_id=10"]
    assert expired(entries, timedelta(days=50), now) == []


def test_the_sweeper_deletes_expired_partitions_through_hadoop_fs(spark, tmp_path) -> None:
    table = tmp_path / "dead_letters"
    ages_days = {0: 45, 1: 31, 2: 29, 3: 0}
    now = time.time()
    for batch, age in ages_days.items():
        folder = table / "source=payments" / f"batch_id={batch}"
        folder.mkdir(parents=True)
        (folder / "part-0.parquet").write_bytes(b"x")
        os.utime(folder, (now - age * 86400, now - age * 86400))
    other = table / "source=sensors" / "batch_id=0"
    other.mkdir(parents=True)
    os.utime(other, (now - 90 * 86400, now - 90 * 86400))

    clock = [now]
    sweeper = RetentionSweeper(f"file://{table}", "payments", timedelta(days=30), clock=lambda: clock[0])
    assert sweeper(spark) == ["batch_id=0", "batch_id=1"]
    left = sorted(p.name for p in (table / "source=payments").iterdir())
    assert left == ["batch_id=2", "batch_id=3"]
    assert other.exists()  # another source's partitions are its own sweeper's business

    # it lists at most once per min(retention / 10, 1 h), not after every batch
    os.utime(table / "source=payments" / "batch_id=2", (now - 40 * 86400, now - 40 * 86400))
    clock[0] = now + 60
    assert sweeper(spark) == []
    assert (table / "source=payments" / "batch_id=2").exists()
    clock[0] = now + 3601
    assert sweeper(spark) == ["batch_id=2"]
