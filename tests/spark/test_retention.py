"""The dead_letters table's retention: old batches leave the Delta table, then the disk;
recent ones and other sources' stay."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from driftline.spark import delta
from driftline.spark.retention import RetentionSweeper, expired
from tests.spark.helpers import read_delta

pytestmark = pytest.mark.spark

DAY_MS = 86_400_000
SCHEMA = pa.schema([("reason", pa.string()), ("_offset", pa.int64()), ("source", pa.string()),
                    ("batch_id", pa.int64())])  # fmt: skip


def test_expired_picks_batches_older_than_the_retention_oldest_first() -> None:
    now = 100 * DAY_MS
    entries = [("batch_id=10", now - 31 * DAY_MS), ("batch_id=9", now - 40 * DAY_MS),
               ("batch_id=11", now - 29 * DAY_MS), ("_SUCCESS", 0), ("batch_id=12", now)]  # fmt: skip
    assert expired(entries, timedelta(days=30), now) == ["batch_id=9", "batch_id=10"]
    assert expired(entries, timedelta(days=50), now) == []


def _batch(spark, table, source: str, batch: int) -> None:
    """One batch of dead letters as Spark's write leaves it (a Parquet file in the batch's
    folder), committed to the Delta table the way the job does."""
    folder = table / f"source={source}" / f"batch_id={batch}"
    folder.mkdir(parents=True)
    rows = pa.table({"reason": ["NOT_FRAMED", "LATE_DATA"], "_offset": pa.array([2 * batch, 2 * batch + 1])})
    pq.write_table(rows, folder / "part-00000.snappy.parquet")
    added = delta.add_files(spark, str(table), str(folder), SCHEMA, {"source": source, "batch_id": str(batch)},
                            app=delta.app_id(source, "run"), version=batch)  # fmt: skip
    assert added == 1


def test_the_sweeper_deletes_expired_batches_from_the_table_then_the_disk(spark, tmp_path) -> None:
    table = tmp_path / "dead_letters"
    ages_days = {0: 45, 1: 31, 2: 29, 3: 0}
    now = time.time()
    for batch in ages_days:
        _batch(spark, table, "payments", batch)
    _batch(spark, table, "sensors", 0)
    for batch, age in ages_days.items():
        os.utime(table / "source=payments" / f"batch_id={batch}", (now - age * 86400, now - age * 86400))
    os.utime(table / "source=sensors" / "batch_id=0", (now - 90 * 86400, now - 90 * 86400))

    # with the table's own retention of removed files (1 hour), rows go now, files later
    clock = [now]
    sweeper = RetentionSweeper(f"file://{table}", "payments", timedelta(days=30), clock=lambda: clock[0])
    assert sweeper(spark) == ["batch_id=0", "batch_id=1"]
    left = read_delta(table)
    assert sorted(zip(left["source"], left["batch_id"], strict=True)) == [
        ("payments", 2),
        ("payments", 2),
        ("payments", 3),
        ("payments", 3),
        ("sensors", 0),
        ("sensors", 0),
    ]  # another source's batches are its own sweeper's business
    assert (table / "source=payments" / "batch_id=0" / "part-00000.snappy.parquet").exists()
    assert DeltaTable(str(table)).vacuum(dry_run=True) == []  # removed under an hour ago

    # it lists at most once per min(retention / 10, 1 h), not after every batch
    os.utime(table / "source=payments" / "batch_id=2", (now - 40 * 86400, now - 40 * 86400))
    clock[0] = now + 60
    assert sweeper(spark) == []
    assert sorted(set(read_delta(table, source="payments")["batch_id"])) == [2, 3]

    # a sweep whose VACUUM may delete at once (as one an hour later does) empties the disk too
    eager = RetentionSweeper(f"file://{table}", "payments", timedelta(days=30), clock=lambda: clock[0],
                             vacuum_hours=0)  # fmt: skip
    assert eager(spark) == ["batch_id=0", "batch_id=2", "batch_id=1"]  # oldest first
    assert sorted(set(read_delta(table, source="payments")["batch_id"])) == [3]
    assert sorted(p.name for p in (table / "source=payments").iterdir()) == ["batch_id=3"]
    assert (table / "source=sensors" / "batch_id=0" / "part-00000.snappy.parquet").exists()
