"""The warehouse disk fills up mid-run: a clear failure, no corrupt table, a clean resume.

The warehouse of one run lives on a tmpfs of half the size a clean run needs, so the
job fails part-way, wherever the disk ran out (a Spark task's Parquet file, the
driver's state files). ``driftline run`` must stop with a message naming the full
disk and an exit code, no traceback. After the tmpfs is grown (``mount -o remount``),
the same command resumes from the checkpoint, and every table equals a clean run's.
Mounting needs root (CAP_SYS_ADMIN); without it the test is skipped and says why.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from driftline.demo import SignalGenerator
from tests.conftest import NO_LINGER, pipeline_copy
from tests.spark.helpers import driftline_run, encode_mix, produce_frames, read_delta

pytestmark = [pytest.mark.spark, pytest.mark.kafka, pytest.mark.e2e]
N = 3000


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _mount(folder: Path, size: int, *options: str) -> subprocess.CompletedProcess:
    opts = ",".join([*options, f"size={max(size // 4096, 16) * 4096}"])
    return subprocess.run(
        ["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True
    )


def _tables(warehouse: Path) -> dict[str, pd.DataFrame]:
    stats = read_delta(warehouse / "feature_stats")
    stats = stats[["window_start", "feature", "rows", "nulls", "n", "mean", "min", "max", "is_final"]]
    dead = read_delta(warehouse / "dead_letters", columns=["reason", "_partition", "_offset"])
    return {
        "feature_stats": stats.sort_values(["window_start", "feature"]).reset_index(drop=True),
        "dead_letters": dead.sort_values(["_partition", "_offset"]).reset_index(drop=True),
    }


def test_a_full_warehouse_disk_fails_clearly_and_resumes_cleanly(
    kafka_bootstrap, topic_prefix, tmp_path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for the warehouse needs root")
    records = [r.value for r in SignalGenerator("payments", seed=8).records(N)]
    frames = encode_mix("payments", records, {i: "not_framed" for i in range(5, N, 61)})
    produce_frames(kafka_bootstrap, topic_prefix + "signals.payments", frames, [None] * N)
    args = ("--source", "payments", "--max-records-per-batch", "1000")  # three batches a run

    clean = pipeline_copy(tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, name="clean")
    done = driftline_run(clean, *args)
    assert done.returncode == 0, done.stderr[-3000:]
    needed = _size(tmp_path / "clean" / "warehouse")
    assert needed > 100_000

    # the failed run exits at once (NO_LINGER)
    full = pipeline_copy(
        tmp_path, bootstrap=kafka_bootstrap, prefix=topic_prefix, name="full", replace=NO_LINGER
    )
    warehouse = tmp_path / "full" / "warehouse"
    warehouse.mkdir(parents=True)
    mounted = _mount(warehouse, needed // 2)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        failed = driftline_run(full, *args)
        assert failed.returncode == 6, failed.stderr[-3000:]
        assert "No space left on device" in failed.stderr and "Traceback" not in failed.stderr, failed.stderr[
            -3000:
        ]
        assert "the disk under the warehouse or the checkpoints is full" in failed.stderr

        grown = _mount(warehouse, needed * 4, "remount")
        assert grown.returncode == 0, grown.stderr
        resumed = driftline_run(full, *args)
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        summary = json.loads(resumed.stdout.strip().splitlines()[-1])["sources"]["payments"]
        assert summary["reconciles"] and summary["read"] == N
        ours, theirs = _tables(warehouse), _tables(tmp_path / "clean" / "warehouse")
        for name in ours:
            pd.testing.assert_frame_equal(ours[name], theirs[name], check_exact=False, rtol=1e-12, obj=name)
    finally:
        subprocess.run(["umount", "-l", str(warehouse)], capture_output=True)
