"""The Delta commits the job makes (driftline.spark.delta), read back with the deltalake
package: a batch is written once whatever the replays, a MERGE upgrades a window's rows
in place, files a crashed attempt left are never part of the table, and a newer column
is added to an older table."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from driftline.spark import delta

pytestmark = pytest.mark.spark

APP = delta.app_id("payments", "query-1")


def _rows(batch: int, values: list[float], **extra) -> pa.Table:
    columns = {"feature": [f"f{i}" for i in range(len(values))], "value": values,
               "source": ["payments"] * len(values), "batch_id": [batch] * len(values), **extra}  # fmt: skip
    return pa.table(columns)


def test_a_replayed_batch_is_not_written_again_and_a_new_run_starts_over(spark, tmp_path) -> None:
    path = str(tmp_path / "drift_scores")
    assert delta.append(
        spark, path, _rows(0, [1.0, 2.0]), partition_by=("source", "batch_id"), app=APP, version=0
    )
    assert delta.append(spark, path, _rows(1, [3.0]), partition_by=("source", "batch_id"), app=APP, version=1)
    # batch 1 again (a replay after a crash before Spark committed it): nothing written
    assert not delta.append(
        spark, path, _rows(1, [9.0]), partition_by=("source", "batch_id"), app=APP, version=1
    )
    table = DeltaTable(path)
    assert table.transaction_version(APP) == 1 and table.version() == 1
    assert sorted(table.to_pandas()["value"]) == [1.0, 2.0, 3.0]
    # a new checkpoint is a new query id: its batch 0 is written
    other = delta.app_id("payments", "query-2")
    assert delta.append(
        spark, path, _rows(0, [4.0]), partition_by=("source", "batch_id"), app=other, version=0
    )
    assert sorted(DeltaTable(path).to_pandas()["value"]) == [1.0, 2.0, 3.0, 4.0]


def test_merge_upgrades_a_windows_provisional_rows_in_place(spark, tmp_path) -> None:
    path = str(tmp_path / "feature_stats")
    keys, parts = ("source", "window_key", "feature"), ("source", "window_key")

    def window(key: str, batch: int, n: int, final: bool) -> pa.Table:
        return pa.table({"source": ["payments"] * 2, "window_key": [key] * 2, "feature": ["a", "b"],
                         "n": [n, n + 1], "is_final": [final] * 2, "batch_id": [batch] * 2})  # fmt: skip

    delta.merge(spark, path, window("w1", 0, 10, False), keys=keys, partition_by=parts, app=APP, version=0)
    delta.merge(spark, path, window("w2", 1, 5, False), keys=keys, partition_by=parts, app=APP, version=1)
    delta.merge(spark, path, window("w1", 2, 30, True), keys=keys, partition_by=parts, app=APP, version=2)
    assert not delta.merge(spark, path, window("w1", 2, 99, True), keys=keys, partition_by=parts, app=APP,
                           version=2)  # fmt: skip
    rows = DeltaTable(path).to_pandas().sort_values(["window_key", "feature"])
    assert rows[["window_key", "feature", "n", "is_final", "batch_id"]].values.tolist() == [
        ["w1", "a", 30, True, 2], ["w1", "b", 31, True, 2], ["w2", "a", 5, False, 1], ["w2", "b", 6, False, 1],
    ]  # fmt: skip
    operations = [entry["operation"] for entry in DeltaTable(path).history()]
    assert operations.count("MERGE") == 2  # the first write created the table
    # the merge rewrote w1's file only: w2's file is the one batch 1 wrote
    live = DeltaTable(path).file_uris()
    assert len(live) == 2 and sum("window_key=w2" in f for f in live) == 1
    assert (
        len(list((tmp_path / "feature_stats" / "source=payments" / "window_key=w1").glob("*.parquet"))) == 2
    )
    assert delta.vacuum(spark, path, retention_hours=0) and len(
        list((tmp_path / "feature_stats" / "source=payments" / "window_key=w1").glob("*.parquet"))
    ) == 1  # fmt: skip


def test_only_committed_files_are_in_the_table(spark, tmp_path) -> None:
    """Spark's dead-letter files become part of the table only with their commit; a
    crashed attempt's files in the folder are not read, and the commit is made once."""
    table = tmp_path / "dead_letters"
    folder = table / "source=payments" / "batch_id=0"
    folder.mkdir(parents=True)
    pq.write_table(
        pa.table({"reason": ["NOT_FRAMED"], "_offset": [7]}), folder / "part-00000-a.snappy.parquet"
    )
    schema = pa.schema([("reason", pa.string()), ("_offset", pa.int64()), ("source", pa.string()),
                        ("batch_id", pa.int64())])  # fmt: skip
    partition = {"source": "payments", "batch_id": "0"}
    assert delta.add_files(spark, str(table), str(folder), schema, partition, app=APP, version=0) == 1
    assert delta.add_files(spark, str(table), str(folder), schema, partition, app=APP, version=0) == 0
    # a later batch's attempt that crashed before its commit
    crashed = table / "source=payments" / "batch_id=1"
    crashed.mkdir()
    pq.write_table(
        pa.table({"reason": ["LATE_DATA"], "_offset": [8]}), crashed / "part-00000-b.snappy.parquet"
    )
    rows = DeltaTable(str(table)).to_pandas()
    assert rows[["reason", "_offset", "source", "batch_id"]].values.tolist() == [
        ["NOT_FRAMED", 7, "payments", 0]
    ]


def test_a_newer_column_is_added_to_an_older_table(spark, tmp_path) -> None:
    path = str(tmp_path / "alerts")
    delta.append(spark, path, _rows(0, [1.0]), partition_by=("source", "batch_id"), app=APP, version=0)
    delta.append(spark, path, _rows(1, [2.0], early=[True]), partition_by=("source", "batch_id"), app=APP,
                 version=1)  # fmt: skip
    rows = DeltaTable(path).to_pandas().sort_values("batch_id")
    assert rows["early"].tolist()[0] is None and rows["early"].tolist()[1] is True


def _source_rows(source: str, batch: int, value: float, key: str = "w1") -> pa.Table:
    return pa.table({"feature": ["amount"], "value": [value], "source": [source], "batch_id": [batch],
                     "window_key": [key]})  # fmt: skip


def test_a_shared_batch_commits_each_table_once_with_every_sources_txn(spark, tmp_path) -> None:
    scores, stats = str(tmp_path / "drift_scores"), str(tmp_path / "feature_stats")
    batch, window = ("source", "batch_id"), ("source", "window_key")
    keys = ("source", "window_key", "feature")
    apps = {s: delta.app_id(s, "q") for s in ("a", "b", "c")}
    # source a's batch 0 reached the tables alone before a crash
    delta.append(spark, scores, _source_rows("a", 0, 1.0), partition_by=batch, app=apps["a"], version=0)
    delta.merge(spark, stats, _source_rows("a", 0, 1.0), keys=keys, partition_by=window, app=apps["a"],
                version=0)  # fmt: skip
    before = {path: DeltaTable(path).version() for path in (scores, stats)}

    def batch_zero(values: dict[str, float]) -> None:
        start = DeltaTable(scores).version()
        with delta.one_commit_per_table() as commit:
            for source, value in values.items():
                assert delta.append(spark, scores, _source_rows(source, 0, value), partition_by=batch,
                                    app=apps[source], version=0)  # fmt: skip
                assert delta.merge(spark, stats, _source_rows(source, 0, value), keys=keys,
                                   partition_by=window, app=apps[source], version=0)  # fmt: skip
            assert DeltaTable(scores).version() == start  # staged, not committed yet
            commit()

    batch_zero({"a": 9.0, "b": 2.0, "c": 3.0})  # the replay of batch 0, all three sources
    for path in (scores, stats):
        table = DeltaTable(path)
        assert table.version() == before[path] + 1  # one commit for b and c
        assert [table.transaction_version(apps[s]) for s in "abc"] == [0, 0, 0]
        frame = table.to_pandas()
        assert sorted(zip(frame["source"], frame["value"], strict=True)) == [
            ("a", 1.0),
            ("b", 2.0),
            ("c", 3.0),
        ]
    batch_zero({"a": 9.0, "b": 9.0, "c": 9.0})  # replayed again: every source's commit is there
    assert DeltaTable(scores).version() == before[scores] + 1

    # a batch that fails commits nothing it staged
    with pytest.raises(RuntimeError), delta.one_commit_per_table():
        delta.append(spark, scores, _source_rows("b", 1, 5.0), partition_by=batch, app=apps["b"], version=1)
        raise RuntimeError("a later source's step failed")
    assert DeltaTable(scores).transaction_version(apps["b"]) == 0
    # outside a block, writes commit at once again
    assert delta.append(
        spark, scores, _source_rows("b", 1, 5.0), partition_by=batch, app=apps["b"], version=1
    )
    assert DeltaTable(scores).transaction_version(apps["b"]) == 1
