"""What a batch's table write costs: the Delta commits the job makes, next to the plain
Parquet partition write it made before (side by side, one session, one run).

Each of ``batches`` rounds writes 20 ``feature_stats`` rows (one window x 20 features,
the rows a trickle batch finishes) four ways, in rotation so machine noise hits all
alike:

1. ``parquet``: pyarrow through Hadoop's FileSystem into the window's partition folder,
   replacing its file (:func:`driftline.spark.arrow_files.replace_folder`);
2. ``delta append``: one delta-rs commit with the batch's ``txn`` (the per-batch tables);
3. ``delta merge``: one delta-rs MERGE keyed by (source, window, feature) into
   ``feature_stats``, the window provisional for three batches, then final, as the job
   does;
4. ``delta replay``: the append of a batch already committed (read the log, skip).

Runs on the driver with the bench's SparkSession; no Spark job is involved.
"""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa

from driftline.spark import arrow_files, delta
from driftline.spark.feature_stats import SCHEMA, merge_windows, window_key
from driftline.spark.tables import Warehouse

FEATURES = 20
APPENDED = SCHEMA.remove(SCHEMA.get_field_index("batch_id"))  # append_batch adds the batch id


def _rows(start: datetime, batch: int, final: bool) -> list[dict]:
    return [
        {"window_start": start, "window_end": start + timedelta(seconds=10), "feature": f"f{i}",
         "kind": "numeric", "rows": 100 + batch, "nulls": 0, "n": 100 + batch, "mean": float(i + batch),
         "stddev": 1.0, "min": 0.0, "max": 9.0, "late_rows": 0, "is_final": final, "pipeline": "bench",
         "batch_id": batch}
        for i in range(FEATURES)
    ]  # fmt: skip


def measure(spark, scratch: Path, batches: int = 60) -> dict[str, list[float]]:
    """Seconds of each way's write per batch."""
    root = scratch / "table_writes"
    warehouse = Warehouse(f"file://{root}", run="bench")
    first = datetime(2026, 1, 1, tzinfo=UTC)
    times: dict[str, list[float]] = {"parquet": [], "delta append": [], "delta merge": [], "delta replay": []}
    for batch in range(batches):
        start = first + timedelta(seconds=10 * (batch // 4))
        rows = _rows(start, batch, final=batch % 4 == 3)
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
        folder = f"file://{root}/parquet/source=payments/window_key={window_key(start)}"
        began = time.perf_counter()
        arrow_files.replace_folder(spark, folder, table, success=False)
        times["parquet"].append(time.perf_counter() - began)
        began = time.perf_counter()
        warehouse.append_batch(spark, "appended", "payments", batch, rows, APPENDED)
        times["delta append"].append(time.perf_counter() - began)
        began = time.perf_counter()
        merge_windows(spark, warehouse, "payments", batch, rows)
        times["delta merge"].append(time.perf_counter() - began)
        began = time.perf_counter()
        written = warehouse.append_batch(spark, "appended", "payments", batch, rows, APPENDED)
        times["delta replay"].append(time.perf_counter() - began)
        assert not written, "a replayed batch's commit is already there"
    merged = delta.read(spark, warehouse.table("feature_stats"))
    assert merged.num_rows == FEATURES * ((batches + 3) // 4), "one row per (window, feature)"
    return times


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def report(times: dict[str, list[float]]) -> str:
    """One line per way: median and p95 in ms, and the median against the Parquet write."""
    base = statistics.median(times["parquet"])
    lines = []
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"{name:<14} median {median * 1000:7.1f} ms  p95 {_p95(values) * 1000:7.1f} ms  "
                     f"{median / base:5.2f}x parquet  ({len(values)} batches)")  # fmt: skip
    return "\n".join(lines)


def summary(times: dict[str, list[float]]) -> dict[str, dict[str, float]]:
    return {
        name: {"median_ms": round(statistics.median(v) * 1000, 1), "p95_ms": round(_p95(v) * 1000, 1)}
        for name, v in times.items()
    }


def main() -> None:
    import tempfile

    from driftline.spark.session import build_session

    spark = build_session("driftline-bench-table-writes")
    with tempfile.TemporaryDirectory() as scratch:
        times = measure(spark, Path(scratch))
    print(report(times))


if __name__ == "__main__":
    main()
