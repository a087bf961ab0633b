"""Point 1 of bounded state, proved by counting: a batch after 2,000 earlier batches reads
exactly what the same batch reads after 20.

Building 2,000 batches by running them would take hours, so the history is written
directly: two real batches (ids N-2 and N-1, through the job's own ``BatchProcessor``
and decoder on Spark's Kafka rows read in batch mode) leave a real state version, progress
row, dead letters and ``feature_stats`` partitions; the earlier N-2 batches' folders are
copies of those (progress, dead letters, unpruned state versions, and the partitions of
N-2 long-closed windows); the copies of the Delta tables' files are committed to their
logs, with a checkpoint, as a long-running table has. The source has a reference profile, so the windows batch N
closes are scored from its bins. Then batch N runs on the same Kafka rows in both histories
while every Parquet read is recorded (``DataFrameReader.parquet`` wrapped to note the
files each read opens, and the rows each Delta table read returns). The files, and the
rows in them (Parquet footers), must be the same for N = 20 and N = 2,000, and pruning
must leave two state versions.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable
from deltalake.transaction import AddAction
from pyspark.sql import DataFrameReader

from driftline.avro.registry import open_registry
from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.spark import delta, fs
from driftline.spark.batch import BatchProcessor
from driftline.spark.decode import FrameDecoder
from driftline.spark.feature_stats import window_key
from driftline.spark.job import source_plan
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

SLICE = 300  # records per batch, 3 s apart: 15 minutes of event time, three 5-minute windows


@pytest.fixture(scope="module")
def topic(kafka_bootstrap) -> str:
    name = f"history.{datetime.now(UTC):%H%M%S%f}.payments"
    records = [
        r.value for r in SignalGenerator("payments", seed=5, interval=timedelta(seconds=3)).records(3 * SLICE)
    ]
    damaged = {i: "not_framed" for i in range(7, 3 * SLICE, 50)}  # every batch has dead letters
    produce_frames(kafka_bootstrap, name, encode_mix("payments", records, damaged), [None] * len(records),
                   partitions=1)  # fmt: skip
    return name


def _kafka_rows(spark, bootstrap: str, topic: str, first: int):
    offsets = lambda at: json.dumps({topic: {"0": at}})  # noqa: E731
    return (
        spark.read.format("kafka").option("kafka.bootstrap.servers", bootstrap).option("subscribe", topic)
        .option("startingOffsets", offsets(first)).option("endingOffsets", offsets(first + SLICE))
        .option("kafka.isolation.level", "read_committed").load()
    )  # fmt: skip


def _copy_history(warehouse: Path, model: int, upto: int) -> None:
    """Folders of batches 0 .. upto-1, copied from batch ``model``'s, and as many old windows."""
    state = warehouse / "_state" / "open" / "payments"
    progress = warehouse / "_state" / "progress" / "source=payments"
    dead = warehouse / "dead_letters" / "source=payments"
    windows = warehouse / "feature_stats" / "source=payments"
    some_window = Path(DeltaTable(str(warehouse / "feature_stats")).file_uris()[0])  # a live file
    first = datetime(2020, 1, 1, tzinfo=UTC)
    copies: dict[str, list[tuple[Path, dict]]] = {"dead_letters": [], "feature_stats": []}
    for batch in range(upto):
        shutil.copytree(state / str(model), state / str(batch))
        shutil.copytree(progress / f"batch_id={model}", progress / f"batch_id={batch}")
        shutil.copytree(dead / f"batch_id={model}", dead / f"batch_id={batch}")
        copies["dead_letters"] += [(f, {"source": "payments", "batch_id": str(batch)})
                                   for f in (dead / f"batch_id={batch}").glob("part-*.parquet")]  # fmt: skip
        key = window_key(first + timedelta(minutes=5 * batch))
        (windows / f"window_key={key}").mkdir()
        copy = windows / f"window_key={key}" / some_window.name
        shutil.copyfile(some_window, copy)
        copies["feature_stats"].append((copy, {"source": "payments", "window_key": key}))
    for name, files in copies.items():
        _commit(warehouse / name, files)


def _commit(table: Path, files: list[tuple[Path, dict]]) -> None:
    """Add ``files`` (with their partition values) to the Delta table at ``table`` in one
    commit, then checkpoint it."""
    log = DeltaTable(str(table))
    actions = [
        AddAction(path=str(f.relative_to(table)), size=f.stat().st_size, partition_values=values,
                  modification_time=int(f.stat().st_mtime * 1000), data_change=True, stats="{}")
        for f, values in files
    ]  # fmt: skip
    log.create_write_transaction(actions, mode="append", schema=log.schema(),
                                 partition_by=log.metadata().partition_columns)  # fmt: skip
    log.create_checkpoint()


def _reference(config):
    """A reference profile, so closing windows are scored (their bins read) in batch N."""
    from driftline.stats import ReferenceProfile

    spec = config.source("payments")
    rows = [r.value for r in SignalGenerator("payments", seed=99, exclude_fields=("channel",)).records(2000)]
    kinds = {k: [f for f, c in spec.features.items() if c.kind == k] for k in ("numeric", "categorical")}
    return ReferenceProfile.fit({f: [r[f] for r in rows] for f in spec.features}, version="r1",
                                numeric=kinds["numeric"], categorical=kinds["categorical"])  # fmt: skip


def _reads_of_batch(spark, bootstrap, topic, tmp_path: Path, history: int, monkeypatch) -> tuple[list, int]:
    config = load_pipeline(pipeline_copy(tmp_path, bootstrap=bootstrap, name=f"h{history}"))
    _reference(config).save(Path(config.path(config.reference.path)) / "payments" / "r1.json")
    plan = source_plan(config, "payments")
    registry = open_registry(config.path(config.schemas_dir))
    processor = BatchProcessor(plan, None, decoder=FrameDecoder(registry, registry.get("payments")))
    processor(_kafka_rows(spark, bootstrap, topic, 0), history - 2)
    processor(_kafka_rows(spark, bootstrap, topic, SLICE), history - 1)
    warehouse = Path(config.path(config.warehouse_dir))
    _copy_history(warehouse, history - 2, history - 2)

    opened: list[str] = []
    original = DataFrameReader.parquet

    def recording(reader, *paths, **options):
        frame = original(reader, *paths, **options)
        opened.extend(frame.inputFiles())
        return frame

    read_bytes = fs.read_bytes

    def recording_bytes(session, path):
        data = read_bytes(session, path)
        if data is not None:
            opened.append(path)
        return data

    delta_read = delta.read
    delta_rows: list[int] = []

    def recording_delta(session, path, filters=None):
        table = delta_read(session, path, filters)
        delta_rows.append(0 if table is None else table.num_rows)
        return table

    with monkeypatch.context() as patch:
        patch.setattr(DataFrameReader, "parquet", recording)
        patch.setattr(fs, "read_bytes", recording_bytes)
        patch.setattr(delta, "read", recording_delta)
        processor(_kafka_rows(spark, bootstrap, topic, 2 * SLICE), history)
    versions = sorted(int(p.name) for p in (warehouse / "_state" / "open" / "payments").iterdir())
    assert versions == [history - 1, history], "pruning leaves the newest version and the one before"
    local = [f.removeprefix("file://") for f in opened]
    rows = sum(pq.read_metadata(f).num_rows for f in local if f.endswith(".parquet")) + sum(delta_rows)
    scores = read_delta(warehouse / "drift_scores", source="payments")
    assert (scores["batch_id"] == history).sum() > 0, "batch N scores the windows it closes (from its bins)"
    assert len(DeltaTable(str(warehouse / "dead_letters")).file_uris()) >= history, (
        "the history is in the log"
    )
    # the same batch in another warehouse: compare the files by their place in it
    relative = [str(Path(f).relative_to(warehouse)) for f in local]
    for number, name in ((history - 1, "PREVIOUS"), (history, "CURRENT")):
        relative = [f.replace(f"/{number}/", f"/{name}/") for f in relative]
    # the value hashes of a window (uniqueness expectations) are kept per batch that wrote them
    for number, name in ((history - 2, "EARLIER"), (history - 1, "PREVIOUS"), (history, "CURRENT")):
        relative = [f.replace(f"/batch_id={number}/", f"/batch_id={name}/") for f in relative]
    return sorted(relative), rows


def test_a_batch_after_2000_batches_reads_what_it_reads_after_20(spark, kafka_bootstrap, topic, tmp_path,
                                                                  monkeypatch) -> None:  # fmt: skip
    files_20, rows_20 = _reads_of_batch(spark, kafka_bootstrap, topic, tmp_path, 20, monkeypatch)
    files_2000, rows_2000 = _reads_of_batch(spark, kafka_bootstrap, topic, tmp_path, 2000, monkeypatch)
    assert any("/PREVIOUS/" in f for f in files_20), files_20  # it does read the previous state version
    assert rows_20 > 0
    assert any(f.startswith("_state/open/payments/PREVIOUS/bins") for f in files_20), files_20
    assert [_anonymous(f) for f in files_2000] == [_anonymous(f) for f in files_20]
    assert rows_2000 == rows_20


def _anonymous(path: str) -> str:
    """A file's folder in the warehouse (Parquet part-file names carry a random id)."""
    return str(Path(path).parent)
