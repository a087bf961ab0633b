"""Trickle run: a live stream at a steady rate, the job in continuous mode, batch by batch.

A producer thread writes ``rate`` payments records per second (event time = now) to the
embedded broker; the quality job runs in streaming mode with the demo's 5-second trigger,
ten-second windows, a four-second watermark and a reference profile (so every closing
window is scored), until ``batches`` micro-batches have committed. Measured from the
job's own log lines and folders:

- batch duration (``batch_seconds``: wall time of the batch body; one source never
  waits at the driver-wide gate of :mod:`driftline.spark.batch`) against
  batch id: p50 / p95 overall and per tenth of the run, and the median of the last 50
  batches against the median of batches 25-75 (a cost that grew with uptime shows here);
- the open-window state version's size (bytes, files), the job's internal disk use
  (``_state``: state versions and progress rows; the checkpoint) and the tables' size
  (the output, which grows by design) against batch id, sampled when each batch commits;
- window close -> ``drift_scores`` row: a window can close once a record with event time
  >= its end + watermark has arrived, i.e. at wall time ``end + watermark`` (event time
  is now); the row exists when the batch that wrote it (its ``batch_id`` folder) has
  committed. Latency = that commit's wall time - (window end + watermark).

Event -> alert latency through Prometheus and Alertmanager is measured separately
(:mod:`bench.alert_latency`), on the same windows and persistence.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from datetime import UTC
from pathlib import Path

from bench import BATCH_SECONDS, batch_log, disk_usage, percentile
from bench.alert_latency import _config as latency_config
from driftline.metrics import PipelineMetrics
from driftline.testing.live import LiveProducer, StreamingJob, live_config, wait_until


class _Batches(logging.Handler):
    """Per committed batch: duration, commit wall time, state size, disk use."""

    def __init__(self, state: Path, internal: list[Path], tables: Path) -> None:
        super().__init__(logging.INFO)
        self.state, self.internal, self.tables = state, internal, tables
        self.rows: dict[int, dict] = {}
        self.guard = threading.Lock()  # not "lock": logging.Handler holds its own

    def emit(self, record: logging.LogRecord) -> None:
        match = BATCH_SECONDS.match(record.getMessage())
        if match is None:
            return
        batch = int(match[2])
        state_bytes, state_files = disk_usage(self.state / str(batch))
        internal = [disk_usage(root) for root in self.internal]
        tables = disk_usage(self.tables)
        with self.guard:
            self.rows[batch] = {
                "seconds": float(match[3]), "committed_at": record.created,
                "state_bytes": state_bytes, "state_files": state_files,
                "internal_bytes": sum(d[0] for d in internal), "internal_files": sum(d[1] for d in internal),
                "table_bytes": tables[0] - sum(d[0] for d in internal[:1]),
            }  # fmt: skip


def measure(spark, bootstrap: str, scratch: Path, *, batches: int = 300, rate: int = 1000) -> dict:
    """Run the trickle (see the module docstring) and return its figures."""
    config = live_config(latency_config(scratch / "trickle", bootstrap, 0), trigger="5 seconds")
    warehouse = Path(config.path(config.warehouse_dir))
    state = warehouse / "_state" / "open" / "payments"
    internal = [warehouse / "_state", Path(config.path(config.state_dir))]  # state, progress; checkpoints
    handler = _Batches(state, internal, warehouse)
    started = time.time()
    with (
        batch_log(handler),
        LiveProducer(config, "payments", rate=rate, drifts=(), seed=11) as producer,
        StreamingJob(spark, config, ["payments"], PipelineMetrics(config.name)) as job,
    ):

        def done() -> bool:
            job.check()
            with handler.guard:
                return len(handler.rows) >= batches

        wait_until(done, timeout=batches * 60, what=f"{batches} trickle batches", poll=1)
        produced = producer.produced
    elapsed = time.time() - started
    with handler.guard:
        rows = dict(handler.rows)
    close = _close_to_row(spark, warehouse, rows, config.windows.watermark.seconds)
    return {"rate": rate, "produced": produced, "elapsed_s": elapsed, "batches": rows, "close_to_row": close}


def _close_to_row(spark, warehouse: Path, rows: dict[int, dict], watermark: float) -> list[float]:
    """Per scored window: its drift_scores row's commit time - (window end + watermark)."""
    from driftline.spark.tables import read_table

    scores = read_table(spark, str(warehouse / "drift_scores"), "payments")
    if scores is None:
        return []
    frame = scores.select("window_end", "batch_id").distinct().collect()
    out = []
    for row in frame:
        batch = int(row["batch_id"])
        if batch in rows:
            end = row["window_end"]
            end = end.astimezone(UTC) if end.tzinfo else end.astimezone().astimezone(UTC)
            out.append(rows[batch]["committed_at"] - (end.timestamp() + watermark))
    return out


def report(result: dict) -> str:
    """The figures as printed lines."""
    rows = result["batches"]
    ids = sorted(rows)
    seconds = [rows[b]["seconds"] for b in ids]
    lines = [
        f"{len(ids)} batches in {result['elapsed_s']:.0f} s, {result['produced']:,} records produced at "
        f"{result['rate']:,}/s (5 s trigger, 10 s windows, 4 s watermark, reference)",
        f"batch duration p50 {percentile(seconds, 0.5):.2f} s, p95 {percentile(seconds, 0.95):.2f} s, "
        f"max {max(seconds):.2f} s",
    ]
    if len(ids) >= 100:
        early = statistics.median(rows[b]["seconds"] for b in ids[25:75])
        late = statistics.median(rows[b]["seconds"] for b in ids[-50:])
        lines.append(
            f"median of the last 50 batches {late:.2f} s = {late / early:.2f} x batches 25-75 ({early:.2f} s)"
        )
    lines.append(
        "batch ids      duration p50 / p95   state version (bytes, files)   "
        "internal disk (bytes, files)   tables (bytes)"
    )
    tenth = max(1, len(ids) // 10)
    for first in range(0, len(ids), tenth):
        part = ids[first : first + tenth]
        durations = [rows[b]["seconds"] for b in part]
        last = rows[part[-1]]
        p50, p95 = percentile(durations, 0.5), percentile(durations, 0.95)
        lines.append(
            f"{part[0]:>4}-{part[-1]:<4}     {p50:5.2f} / {p95:5.2f} s"
            f"     {last['state_bytes']:>12,} {last['state_files']:>5}     "
            f"{last['internal_bytes']:>13,} {last['internal_files']:>6}     {last['table_bytes']:>13,}"
        )
    close = result["close_to_row"]
    if close:
        lines.append(
            f"window close -> drift_scores row: p50 {percentile(close, 0.5):.1f} s, "
            f"p95 {percentile(close, 0.95):.1f} s over {len(close)} windows"
        )
    return "\n".join(lines)


def summary(result: dict) -> dict:
    """The figures for the bench's JSON line."""
    rows = result["batches"]
    seconds = [rows[b]["seconds"] for b in sorted(rows)]
    close = result["close_to_row"] or [float("nan")]
    newest = rows[max(rows)]
    return {
        "batches": len(rows), "batch_p50_s": round(percentile(seconds, 0.5), 2),
        "batch_p95_s": round(percentile(seconds, 0.95), 2),
        "close_to_row_p50_s": round(percentile(close, 0.5), 1),
        "close_to_row_p95_s": round(percentile(close, 0.95), 1),
        "state_bytes_last": newest["state_bytes"], "internal_bytes_last": newest["internal_bytes"],
        "table_bytes_last": newest["table_bytes"],
    }  # fmt: skip


def main() -> None:
    """``python -m bench.trickle [--batches N] [--rate R]``: the trickle run alone."""
    import argparse

    from bench import broker_and_session

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--rate", type=int, default=1000)
    args = parser.parse_args()
    with broker_and_session("driftline-trickle") as (spark, bootstrap, scratch):
        result = measure(spark, bootstrap, scratch, batches=args.batches, rate=args.rate)
    print("trickle run:")
    print("\n".join(f"  {line}" for line in report(result).splitlines()))


if __name__ == "__main__":
    main()
