"""driftline benchmarks: ``make bench`` (``python -m bench``). Ratios, measured side by side."""

from __future__ import annotations

import argparse
import logging
import os
import re
import tempfile
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# the job's wall time per micro-batch (driftline.spark.batch logs it after each batch)
BATCH_SECONDS = re.compile(r"batch_seconds source=(\S+) batch=(\d+) seconds=([0-9.]+)")


class StepTimes(logging.Handler):
    """Sums the job's ``batch_step ... step=S seconds=X`` log lines per step."""

    PATTERN = re.compile(r"step=(\S+) seconds=([0-9.]+)")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seconds: dict[str, float] = defaultdict(float)
        self.batches: set[int] = set()

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        # "wait" is time at the driver-wide gate, outside the batch body: not the job's work
        if text.startswith("batch_step") and (match := self.PATTERN.search(text)) and match[1] != "wait":
            self.seconds[match.group(1)] += float(match.group(2))
            self.batches.add(int(re.search(r"batch=(\d+)", text).group(1)))


def sources_arguments(description: str) -> argparse.Namespace:
    """``--sources`` and ``--records`` of the many-sources benches' own ``main``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--sources", type=int, default=50, help="generated sources (x 20 features)")
    parser.add_argument("--records", type=int, default=2_000, help="records per source")
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0 < q <= 1) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, -(-round(q * 100) * len(ordered) // 100) - 1)]


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes and files under ``path`` (0, 0 when it does not exist)."""
    size = files = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                size += os.path.getsize(os.path.join(folder, name))
                files += 1
            except OSError:  # removed while walking (pruning)
                pass
    return size, files


@contextmanager
def batch_log(handler: logging.Handler) -> Iterator[None]:
    """``handler`` receives the job's per-batch log lines (``driftline.spark.batch`` and
    ``driftline.spark.shared_query``, INFO)."""
    loggers = [logging.getLogger(name) for name in ("driftline.spark.batch", "driftline.spark.shared_query")]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@contextmanager
def broker_and_session(name: str) -> Iterator[tuple[object, str, Path]]:
    """A scratch folder, the embedded Apache Kafka broker in it and a SparkSession:
    ``(spark, bootstrap, scratch)``, all stopped and removed on exit (a bench's ``main``)."""
    from driftline.kafka.broker import EmbeddedBroker, free_port
    from driftline.spark.session import build_session

    with tempfile.TemporaryDirectory() as scratch:
        broker = EmbeddedBroker(Path(scratch) / "broker", port=free_port())
        state = broker.start()
        spark = build_session(name)
        try:
            yield spark, state.bootstrap, Path(scratch)
        finally:
            spark.stop()
            broker.stop(force=True)
