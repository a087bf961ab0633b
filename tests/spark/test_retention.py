"""Retention of the quality tables: old partitions leave the Delta table, then the
disk; recent ones and other sources' stay; one sweep per table serves every source."""

from __future__ import annotations

import os
import time
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from driftline.spark import delta, retention
from driftline.spark.retention import TableRetention, expired
from tests.spark.helpers import read_delta

pytestmark = pytest.mark.spark

DAY_MS = 86_400_000
SCHEMA = pa.schema([("reason", pa.string()), ("_offset", pa.int64()), ("source", pa.string()),
                    ("batch_id", pa.int64())])  # fmt: skip


def test_expired_takes_a_partitions_newest_file_and_each_sources_own_retention() -> None:
    now = 100 * DAY_MS
    files = [
        ("a", "10", now - 31 * DAY_MS),
        ("a", "9", now - 40 * DAY_MS),
        ("a", "11", now - 29 * DAY_MS),
        ("a", "12", now - 45 * DAY_MS),
        ("a", "12", now - 1 * DAY_MS),  # a partition written again lately is kept whole
        ("b", "10", now - 31 * DAY_MS),  # b keeps 60 days
        ("c", "1", now - 99 * DAY_MS),  # c is not registered here
    ]
    keep = {"a": timedelta(days=30), "b": timedelta(days=60)}
    assert expired(files, keep, now) == {"a": ["9", "10"]}  # oldest first
    assert expired(files, {"a": timedelta(days=50)}, now) == {}


def _batch(spark, table, source: str, batch: int, age_days: float) -> None:
    """One batch of dead letters as Spark's write leaves it (a Parquet file in the batch's
    folder, written ``age_days`` ago), committed to the Delta table the way the job does."""
    folder = table / f"source={source}" / f"batch_id={batch}"
    folder.mkdir(parents=True)
    rows = pa.table({"reason": ["NOT_FRAMED", "LATE_DATA"], "_offset": pa.array([2 * batch, 2 * batch + 1])})
    pq.write_table(rows, folder / "part-00000.snappy.parquet")
    then = time.time() - age_days * 86400
    os.utime(folder / "part-00000.snappy.parquet", (then, then))  # the add action's modificationTime
    added = delta.add_files(spark, str(table), str(folder), SCHEMA, {"source": source, "batch_id": str(batch)},
                            app=delta.app_id(source, "run"), version=batch)  # fmt: skip
    assert added == 1


def test_a_sweep_deletes_expired_batches_from_the_table_then_the_disk(spark, tmp_path) -> None:
    table = tmp_path / "dead_letters"
    ages_days = {0: 45, 1: 31, 2: 29, 3: 0}
    for batch, age in ages_days.items():
        _batch(spark, table, "payments", batch, age)
    _batch(spark, table, "sensors", 0, 90)
    _batch(spark, table, "orders", 0, 90)

    # with the table's own retention of removed files (1 hour), rows go now, files later
    clock = [time.time()]
    sweep = TableRetention(f"file://{table}", "batch_id", clock=lambda: clock[0])
    sweep.keep("payments", timedelta(days=30)).keep("sensors", timedelta(days=100))
    assert sweep.every == 3600  # min(30 days / 10, 1 hour)
    clock[0] += 59
    assert sweep(spark) == {}  # not in the driver's first minute
    clock[0] += 1
    assert sweep(spark) == {"payments": ["0", "1"]}
    left = read_delta(table)
    assert sorted(zip(left["source"], left["batch_id"], strict=True)) == [
        ("orders", 0),
        ("orders", 0),
        ("payments", 2),
        ("payments", 2),
        ("payments", 3),
        ("payments", 3),
        ("sensors", 0),
        ("sensors", 0),
    ]  # sensors keeps 100 days; orders is no source of this driver
    assert (table / "source=payments" / "batch_id=0" / "part-00000.snappy.parquet").exists()
    assert DeltaTable(str(table)).vacuum(dry_run=True) == []  # removed under an hour ago

    # it reads the log at most once per interval, not after every batch
    clock[0] += 60
    sweep.keep("payments", timedelta(days=10))
    assert sweep(spark) == {}
    assert sorted(set(read_delta(table, source="payments")["batch_id"])) == [2, 3]

    # once due, the shorter retention expires batch 2; with a VACUUM that may delete at
    # once (as one an hour later does) the files and the emptied folders go too
    clock[0] += 3600
    sweep.vacuum_hours = 0
    assert sweep(spark) == {"payments": ["2"]}
    assert sorted(set(read_delta(table, source="payments")["batch_id"])) == [3]
    assert sorted(p.name for p in (table / "source=payments").iterdir()) == ["batch_id=3"]
    assert (table / "source=sensors" / "batch_id=0" / "part-00000.snappy.parquet").exists()
    assert (table / "source=orders" / "batch_id=0" / "part-00000.snappy.parquet").exists()


def _window(key: str, source: str, mean: float) -> pa.Table:
    return pa.table({"feature": ["amount", "score"], "mean": [mean, -mean], "source": [source] * 2,
                     "window_key": [key] * 2})  # fmt: skip


def test_one_sweep_per_table_serves_every_source_of_the_driver(spark, tmp_path) -> None:
    path = str(tmp_path / "feature_stats")
    keys, parts = ("source", "window_key", "feature"), ("source", "window_key")
    version = 0
    for source in ("a", "b"):
        for key in ("20261201T000000Z", "20261201T000010Z"):
            delta.merge(spark, path, _window(key, source, 1.0), keys=keys, partition_by=parts,
                        app=delta.app_id(source, "run"), version=version)  # fmt: skip
            version += 1
    # each source's BatchProcessor asks for the table's sweeper: they get the same one
    shared = retention.for_table(path, "window_key").keep("a", timedelta(days=10))
    assert retention.for_table(path, "window_key").keep("b", timedelta(days=60)) is shared
    assert shared.retention == {"a": timedelta(days=10), "b": timedelta(days=60)}

    shared.clock = lambda: time.time() + 30 * 86400  # a month on: a's windows are past 10 days
    commits = len(DeltaTable(path).history())
    retention.sweep_unswept(spark)  # as at the end of a run until idle: the driver's tables
    assert len(DeltaTable(path).history()) == commits + 1  # one DELETE commit
    assert shared(spark) == {}  # a second source's batch right after: not due
    left = read_delta(path)
    assert sorted(set(zip(left["source"], left["window_key"], strict=True))) == [
        ("b", "20261201T000000Z"),
        ("b", "20261201T000010Z"),
    ]


def test_a_failed_sweep_is_logged_and_tried_again_later(spark, tmp_path, caplog) -> None:
    table = tmp_path / "dead_letters"
    _batch(spark, table, "payments", 0, 45)
    log = table / "_delta_log" / "00000000000000000000.json"
    good = log.read_bytes()
    log.write_bytes(b"{not json")  # the table cannot be read
    clock = [time.time()]
    sweep = TableRetention(str(table), "batch_id", clock=lambda: clock[0]).keep(
        "payments", timedelta(days=30)
    )
    clock[0] += 60
    assert sweep(spark) == {}
    assert any("retention_failed" in r.getMessage() and str(table) in r.getMessage() for r in caplog.records)

    log.write_bytes(good)
    assert sweep(spark) == {}  # not due yet: the failed sweep counted
    clock[0] += 3600
    assert sweep(spark) == {"payments": ["0"]}


def test_a_run_until_idle_sweeps_at_its_end_and_spares_folders_in_use(spark, tmp_path) -> None:
    table = tmp_path / "dead_letters"
    for batch in (0, 1):
        _batch(spark, table, "payments", batch, 45)
    clock = [time.time()]
    sweep = TableRetention(str(table), "batch_id", clock=lambda: clock[0], vacuum_hours=0)
    sweep.keep("payments", timedelta(days=30))
    # a new checkpoint's batch 1 is being written by Spark into batch 1's folder
    in_flight = table / "source=payments" / "batch_id=1" / "_temporary"
    in_flight.mkdir()
    assert sweep(spark) == {}  # the first minute
    assert sweep(spark, at_end=True) == {"payments": ["0", "1"]}  # the run ends: sweep now
    assert sweep(spark, at_end=True) == {}  # once
    assert read_delta(table, source="payments").empty
    # VACUUM deleted both batches' files; batch 0's empty folder goes, batch 1's stays
    assert sorted(p.name for p in (table / "source=payments").iterdir()) == ["batch_id=1"]
    assert in_flight.exists()

    # that write finishes and commits: the next sweep leaves the live partition's folder alone
    in_flight.rmdir()
    rows = pa.table({"reason": ["LATE_DATA"], "_offset": pa.array([7])})
    pq.write_table(rows, table / "source=payments" / "batch_id=1" / "part-00001.snappy.parquet")
    delta.add_files(spark, str(table), str(table / "source=payments" / "batch_id=1"), SCHEMA,
                    {"source": "payments", "batch_id": "1"}, app=delta.app_id("payments", "run2"),
                    version=1)  # fmt: skip
    clock[0] += 3600
    assert sweep(spark) == {}
    assert list(read_delta(table, source="payments")["_offset"]) == [7]
    assert (table / "source=payments" / "batch_id=1" / "part-00001.snappy.parquet").exists()
