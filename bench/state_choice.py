"""Spark's own state store against driftline's versioned window state, side by side.

The same input (``--batches`` Parquet files of ``--rows`` rows, six numeric features,
event time advancing one five-minute window per file, so windows open, fill and roll
over) is read by two streaming queries in one SparkSession, one file per micro-batch:

A. Spark's stateful aggregation: ``withWatermark`` (10 min) + ``groupBy(window)`` with
   count, nulls, mean, M2 (as variance), min, max and a KLL sketch per feature, in
   the RocksDB state store, update mode into a Parquet sink via ``foreachBatch``;
B. driftline's way (:mod:`driftline.spark.window_state`): per-batch partials collected
   to the driver, combined with the previous state version there, a new version
   written, the touched windows' statistics finished and written.

Printed: the median trigger time of each (from ``recentProgress``) over the second
half of the batches, their ratio, and each one's growth (mean of the last quarter over
the mean of the second quarter: 1.0 means the cost does not grow with history).

    .venv/bin/python -m bench.state_choice [--batches 24] [--rows 20000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

FEATURES = [f"x{i}" for i in range(6)]
ROCKSDB = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
START = datetime(2026, 1, 5, tzinfo=UTC)


def _input(folder: Path, batches: int, rows: int) -> None:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(1)
    for b in range(batches):
        seconds = rng.uniform(0, 300, rows) + b * 300
        times = [START + timedelta(seconds=float(s)) for s in seconds]
        columns = {"event_time": pa.array(times, pa.timestamp("us", tz="UTC"))}
        columns |= {f: pa.array(rng.normal(size=rows)) for f in FEATURES}
        pq.write_table(pa.table(columns), folder / f"part-{b:05d}.parquet")


def _spark_state_store(spark, source, out: Path):
    from pyspark.sql import functions as F

    aggregates = []
    for f in FEATURES:
        aggregates += [
            F.count(F.col(f)).alias(f"{f}_n"), F.count_if(F.col(f).isNull()).alias(f"{f}_nulls"),
            F.avg(f).alias(f"{f}_mean"), F.var_pop(f).alias(f"{f}_var"), F.min(f).alias(f"{f}_min"),
            F.max(f).alias(f"{f}_max"), F.kll_sketch_agg_double(F.col(f), 200).alias(f"{f}_sketch"),
        ]  # fmt: skip
    windows = source.withWatermark("event_time", "10 minutes").groupBy(F.window("event_time", "5 minutes"))
    return (
        windows.agg(F.count(F.lit(1)).alias("rows"), *aggregates)
        .writeStream.outputMode("update")
        .foreachBatch(lambda frame, _: frame.write.mode("append").parquet(str(out / "tables")))
        .option("checkpointLocation", str(out / "checkpoint"))
        .start()
    )


def _versioned(spark, source, out: Path):
    import pyarrow as pa
    from pyspark.sql import functions as F

    from driftline.spark import arrow_files
    from driftline.spark import window_stats as ws
    from driftline.spark.window_state import Commit, WindowState, collect, to_pandas
    from driftline.stats.partials import finish_numeric

    state = WindowState(spark, str(out / "warehouse"), "bench")

    def batch(frame, batch_id: int) -> None:
        previous = state.previous(batch_id)
        before = previous.commit or Commit(batch_id - 1)
        rows = frame.withColumn("source", F.lit("bench")).withColumn("_topic", F.lit("t"))
        rows = rows.withColumn("_partition", F.lit(0)).withColumn("_offset", F.monotonically_increasing_id())
        windowed = ws.with_window(rows, "event_time", "5 minutes")
        if before.watermark is not None:
            windowed = windowed.where(F.col("window_end") > F.lit(before.watermark))
        windowed = windowed.cache()
        frames = {"numeric": ws.numeric_partials(windowed, FEATURES), "windows": ws.window_partials(windowed)}
        partials = {kind: to_pandas(table, kind) for kind, table in collect(frames).items()}
        current = state.advance(batch_id, previous, partials)
        newest = windowed.agg(F.max("event_time")).first()[0]
        windowed.unpersist()
        touched = set(partials["windows"]["window_start"])
        numeric = current.frame("numeric")
        stats = finish_numeric(numeric[numeric["window_start"].isin(touched)])
        for row in stats:
            row.pop("sketch")
        arrow_files.write_file(
            spark, str(out / "tables" / f"part-{batch_id:05d}.parquet"), pa.Table.from_pylist(stats)
        )
        newest = max(t for t in (before.max_event_time, newest.astimezone(UTC)) if t is not None)
        state.commit(Commit(batch_id, newest - timedelta(minutes=10), newest, None))

    writer = source.writeStream.foreachBatch(batch)
    return writer.option("checkpointLocation", str(out / "checkpoint")).start()


def _trigger_seconds(query) -> list[float]:
    return [p["durationMs"]["triggerExecution"] / 1000 for p in query.recentProgress if p["numInputRows"]]


def measure(spark, batches: int, rows: int) -> dict[str, dict[str, float]]:
    """Both queries over the same files; their per-batch trigger times summarised."""
    with tempfile.TemporaryDirectory(prefix="driftline-state-") as tmp:
        folder = Path(tmp) / "input"
        folder.mkdir()
        _input(folder, batches, rows)
        schema = spark.read.parquet(str(folder)).schema
        out = {}
        for name, start in (("spark_state_store", _spark_state_store), ("versioned_table", _versioned)):
            source = spark.readStream.schema(schema).option("maxFilesPerTrigger", 1).parquet(str(folder))
            query = start(spark, source, Path(tmp) / name)
            query.processAllAvailable()
            query.stop()
            seconds = _trigger_seconds(query)
            quarter = max(1, len(seconds) // 4)
            second, last = seconds[quarter : 2 * quarter], seconds[-quarter:]
            out[name] = {
                "batches": len(seconds),
                "median_s": statistics.median(seconds[len(seconds) // 2 :]),
                "growth": statistics.mean(last) / statistics.mean(second),
            }
    return out


def report(result: dict[str, dict[str, float]]) -> str:
    a, b = result["spark_state_store"], result["versioned_table"]
    lines = [f"{'state':<20}{'batches':>8}{'median s/batch':>16}{'growth':>8}"]
    for name, r in result.items():
        lines.append(f"{name:<20}{r['batches']:>8}{r['median_s']:>16.2f}{r['growth']:>8.2f}")
    lines.append(f"versioned / state store, median batch time: {b['median_s'] / a['median_s']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=24)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    from driftline.spark.session import build_session

    spark = build_session("driftline-bench-state")
    spark.conf.set("spark.sql.streaming.stateStore.providerClass", ROCKSDB)
    print(report(measure(spark, args.batches, args.rows)))


if __name__ == "__main__":
    main()
