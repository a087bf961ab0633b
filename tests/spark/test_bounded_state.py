"""The cost of a micro-batch does not grow with the job's history (counted, not timed).

1,200 records three seconds apart (twelve five-minute windows, in event-time order) run
as twelve batches of 100: windows open, fill over several batches, close and roll
over. Every batch must read the same number of state files (one per kind of partial,
whatever the batch number), the disk must hold only the last two state versions, the
newest version must hold exactly the windows still open before it plus those it
added rows to (recomputed here from the records and the progress table), and the
table must still equal a pandas computation over all records.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import timedelta

import pandas as pd
import pytest

from driftline.config import load_pipeline
from driftline.demo import SignalGenerator
from driftline.spark.job import run
from driftline.spark.window_state import RETAINED
from tests.conftest import pipeline_copy
from tests.spark.helpers import encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka]

N, PER_BATCH = 1200, 100
DELAY = timedelta(minutes=10)  # the demo pipeline's [windows] watermark


class _Compilations(logging.Handler):
    """Classes Janino compiled (Spark's ``CodegenMetrics``) per batch, read when the
    batch logs its ``batch_seconds`` line."""

    def __init__(self, spark) -> None:
        super().__init__(logging.INFO)
        self.timer = spark._jvm.org.apache.spark.metrics.source.CodegenMetrics.METRIC_COMPILATION_TIME()
        self.last = self.timer.getCount()
        self.per_batch: dict[int, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if match := re.match(r"batch_seconds source=payments batch=(\d+)", record.getMessage()):
            count = self.timer.getCount()
            self.per_batch[int(match[1])], self.last = count - self.last, count


def test_each_batch_reads_only_the_open_windows(spark, kafka_bootstrap, tmp_path, caplog) -> None:
    config = load_pipeline(
        pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=f"t{uuid.uuid4().hex[:10]}.")
    )
    generator = SignalGenerator("payments", seed=8, interval=timedelta(seconds=3))
    records = [r.value for r in generator.records(N)]
    produce_frames(kafka_bootstrap, config.topic("payments"), encode_mix("payments", records, {}), [None] * N,
                   partitions=1)  # fmt: skip
    compiled = _Compilations(spark)
    logging.getLogger("driftline.spark.batch").addHandler(compiled)
    try:
        with caplog.at_level(logging.INFO, logger="driftline.spark.batch"):
            summary = run(spark, config, sources=["payments"], max_records_per_batch=PER_BATCH).sources[
                "payments"
            ]
    finally:
        logging.getLogger("driftline.spark.batch").removeHandler(compiled)
    assert summary.read == N and summary.reconciles and summary.batches == N // PER_BATCH

    # and the same generated code: once warm, a batch compiles only the few classes that hold
    # its watermark (the cached split), not every aggregation again (20 a batch here when each
    # aggregation compared with the watermark as a literal)
    assert sorted(compiled.per_batch) == list(range(summary.batches))
    assert sum(compiled.per_batch.values()) > 0  # the counter counts
    steady = {b: n for b, n in compiled.per_batch.items() if b >= 4}
    assert max(steady.values()) <= 8, compiled.per_batch

    # work per batch: the files of the previous state version, the same for batch 1 and batch 11
    reads = {int(m[1]): int(m[2]) for m in re.finditer(r"state_read source=payments batch=(\d+) files=(\d+)",
                                                        caplog.text)}  # fmt: skip
    assert sorted(reads) == list(range(summary.batches))
    assert reads[0] == 0  # nothing before the first batch
    # numeric, categorical, windows, dead (dead letters per window, for the circuit breaker;
    # written even when empty) and nulls (per nullable field, for schema drift); no
    # reference here, so no bins
    kinds = 5
    assert {reads[b] for b in range(1, summary.batches)} == {kinds}, reads

    warehouse = config.path(config.warehouse_dir)
    state = warehouse / "_state" / "open" / "payments"
    versions = sorted(int(p.name) for p in state.iterdir() if p.name.isdigit())
    last = summary.batches - 1
    assert versions == list(range(last - RETAINED + 1, last + 1))

    # the newest version holds the windows open before it and those it added rows to
    frame = pd.DataFrame(records)
    frame["event_time"] = pd.to_datetime(frame["event_time"], utc=True)
    frame["window_start"] = frame["event_time"].dt.floor("5min")
    progress = pd.read_parquet(warehouse / "_state" / "progress" / "source=payments")
    progress["batch_id"] = progress["batch_id"].astype(int)
    newest = pd.to_datetime(progress[progress["batch_id"] < last]["max_event_time"], utc=True).max()
    watermark_before = newest - DELAY
    seen = frame.iloc[: last * PER_BATCH]
    last_batch = frame.iloc[last * PER_BATCH :]
    open_before = {w for w in seen["window_start"] if w + timedelta(minutes=5) > watermark_before}
    expected = open_before | set(last_batch["window_start"])
    numeric = pd.read_parquet(state / str(last) / "numeric.parquet")
    assert set(numeric["window_start"]) == expected
    assert len(expected) < frame["window_start"].nunique() / 2  # bounded: far fewer than all windows
    per_window = frame.groupby("window_start").size()
    amount = numeric[numeric["feature"] == "amount"].set_index("window_start")["rows"]
    assert {w: amount[w] for w in expected} == {w: per_window[w] for w in expected}

    # and the table is still right over every window, merged across batches
    stats = read_delta(warehouse / "feature_stats").drop(columns=["sketch"])
    stats = stats[stats["feature"] == "amount"].set_index("window_start")
    assert stats["rows"].to_dict() == per_window.to_dict()
    means = frame.groupby("window_start")["amount"].mean()
    for window, mean in means.items():
        assert stats.loc[window, "mean"] == pytest.approx(mean, rel=1e-9)
    final = stats["window_end"] <= frame["event_time"].max() - DELAY
    assert (stats["is_final"] == final).all() and final.sum() >= 8


def test_open_windows_from_the_commit_record_or_from_an_older_commits_partials(spark, tmp_path) -> None:
    """A commit lists its version's windows; one written before commits did (an upgraded
    job's state, its partials in Spark's folder layout) gets them from its ``windows``
    partials. Either way only windows ending
    after the watermark are open."""
    from datetime import UTC, datetime

    from driftline.spark.window_state import Commit, WindowState, open_windows

    t = lambda minute: datetime(2026, 1, 1, 0, minute, tzinfo=UTC)  # noqa: E731
    windows = ((t(0), t(5)), (t(5), t(10)), (t(10), t(15)))
    state = WindowState(spark, str(tmp_path), "s")
    partials = spark.createDataFrame(
        [("s", start, end, "t", 0, 1, 0, 0, 3) for start, end in windows],
        "source STRING, window_start TIMESTAMP, window_end TIMESTAMP, _topic STRING, _partition INT, "
        "rows BIGINT, first_offset BIGINT, last_offset BIGINT, _batch BIGINT",
    )
    # the layout before this one: a folder of Spark part files per kind
    partials.coalesce(1).write.parquet(f"{state.base}/3/windows")
    old = Commit(3, watermark=t(5), max_event_time=t(15))  # no window list
    assert Commit.from_json(old.to_json()).windows is None
    state.commit(old)
    assert open_windows(state.previous(4), t(5)) == set(windows[1:])
    listed = Commit(4, watermark=t(10), max_event_time=t(20), windows=windows)
    assert Commit.from_json(listed.to_json()) == listed
    state.commit(listed)
    assert open_windows(state.previous(5), t(10)) == {windows[2]}  # version 4 has no partials: the list
