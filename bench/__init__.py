"""driftline benchmarks: ``make bench`` (``python -m bench``). Ratios, measured side by side."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


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
