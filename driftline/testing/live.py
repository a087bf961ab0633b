"""A live stream for the alerting test, the demo's alert delivery and the latency benchmark.

:class:`LiveProducer` sends a source's records to Kafka in real time (event time = now)
at a fixed rate from a background thread; :meth:`LiveProducer.start_drift` switches it
to drifted records and remembers the wall-clock time the first drifted record was
produced. :class:`StreamingJob` runs the quality job (``until_idle=False``) in a
background thread of the same process and stops its queries on exit.

Event-to-alert latency with these pieces is, in order::

    wait for the window holding the first drifted record to close
        (window size + watermark delay, in event time = wall time here)
    + k-of-n persistence (persistence_k windows must be judged drifted)
    + micro-batch time (the window closes in the batch after the watermark passes it)
    + Prometheus scrape interval + rule evaluation interval
    + Alertmanager group_wait

:func:`live_config` shrinks the windows (seconds, not minutes) so a test sees it all
in about a minute; production settings give minutes for the same path.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from driftline.config import PipelineConfig, parse_duration
from driftline.demo.generator import Drift

logger = logging.getLogger(__name__)


def live_config(
    config: PipelineConfig,
    *,
    window: str = "10 seconds",
    watermark: str = "4 seconds",
    trigger: str = "1 second",
    min_rows: int = 200,
) -> PipelineConfig:
    """``config`` with short event-time windows for a stream whose event time is now."""
    windows = config.windows.model_copy(
        update={"size": parse_duration(window), "watermark": parse_duration(watermark),
                "trigger": parse_duration(trigger), "slide": None}
    )  # fmt: skip
    drift = config.drift.model_copy(update={"min_rows": min_rows})
    return config.model_copy(update={"windows": windows, "drift": drift})


class LiveProducer:
    """Produces ``rate`` records per second of ``source`` with event time = now (background thread)."""

    def __init__(
        self, config: PipelineConfig, source: str, *, rate: int, drifts: tuple[Drift, ...], seed: int = 7
    ) -> None:
        from driftline.avro.codec import AvroEncoder
        from driftline.avro.registry import FileSchemaRegistry
        from driftline.demo import generator_for
        from driftline.kafka.clients import make_producer

        self.config, self.source, self.rate = config, source, rate
        self.clean, _ = generator_for(config, source, seed=seed)
        self.drifted, _ = generator_for(config, source, seed=seed + 1,
                                        drifts=tuple(replace(d, start=0) for d in drifts))  # fmt: skip
        spec = config.source(source)
        writer = FileSchemaRegistry(config.path(config.schemas_dir)).get(spec.subject, spec.schema_version)
        self.encoder = AvroEncoder(writer)
        self.producer = make_producer(config.kafka.bootstrap_servers, config.kafka.librdkafka("producer"))
        self.produced = 0
        self.first_drifted_at: float | None = None  # wall clock (time.time()) of the first drifted record
        self._drifting = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"live-{source}", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> LiveProducer:
        from driftline.kafka.clients import TopicSpec, ensure_topics, make_admin

        spec = self.config.source(self.source)
        admin = make_admin(self.config.kafka.bootstrap_servers)
        ensure_topics(admin, [TopicSpec(self.config.topic(self.source), spec.partitions)])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start_drift(self) -> None:
        self._drifting.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)
        self.producer.flush(30)
        if self._error is not None:
            raise RuntimeError(f"live producer for {self.source} failed") from self._error

    def _loop(self) -> None:
        tick, started, index = 0.1, time.monotonic(), 0
        topic = self.config.topic(self.source)
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - started) * self.rate) - self.produced
                if due > 0:
                    drifting = self._drifting.is_set()
                    generator = self.drifted if drifting else self.clean
                    if drifting and self.first_drifted_at is None:
                        self.first_drifted_at = time.time()
                    for record in generator.records(due, first_index=index):
                        value = {**record.value, "event_time": datetime.now(UTC)}
                        self.producer.produce(topic, value=self.encoder.encode(value), key=str(record.index))
                    index += due
                    self.produced += due
                    self.producer.poll(0)
                self._stop.wait(tick)
        except BaseException as error:  # reported by stop()
            self._error = error
            logger.exception("live producer failed")


class StreamingJob:
    """The quality job on ``sources`` in a background thread until the context exits."""

    def __init__(self, spark, config: PipelineConfig, sources: list[str], metrics) -> None:
        self.spark, self.config, self.sources, self.metrics = spark, config, sources, metrics
        self.summary = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="driftline-job", daemon=True)

    def _run(self) -> None:
        from driftline.spark.job import run

        try:
            self.summary = run(self.spark, self.config, until_idle=False, sources=self.sources,
                               metrics=self.metrics)  # fmt: skip
        except BaseException as error:  # reported on exit
            self._error = error

    def __enter__(self) -> StreamingJob:
        self._thread.start()
        return self

    def check(self) -> None:
        """Raise if the job has stopped on its own (it runs until the context exits)."""
        if not self._thread.is_alive():
            raise RuntimeError(f"the streaming job stopped early: {self._error!r}") from self._error

    def scored_until(self, source: str | None = None) -> float | None:
        """End of the newest window scored for ``source`` (default: the first), from the metrics."""
        labels = {"pipeline": self.config.name, "source": source or self.sources[0]}
        return self.metrics.registry.get_sample_value("driftline_drift_window_end_timestamp_seconds", labels)

    def wait_for_windows(self, count: int, *, after: float | None, timeout: float) -> float:
        """Wait until ``count`` windows more than ``after`` (a window end; None: any) were scored."""
        size = self.config.windows.size.seconds

        def scored() -> float | None:
            self.check()
            newest = self.scored_until()
            return (
                newest if newest is not None and (after is None or newest >= after + count * size) else None
            )

        return wait_until(scored, timeout, f"{count} windows scored after {after}")

    def __exit__(self, *exc) -> None:
        names = {f"{self.config.name}.{s}" for s in self.sources}
        deadline = time.monotonic() + 120
        while self._thread.is_alive() and time.monotonic() < deadline:
            for query in self.spark.streams.active:
                if query.name in names:
                    query.stop()
            self._thread.join(timeout=1)
        if self._error is not None and exc[0] is None:
            raise RuntimeError("the streaming job failed") from self._error


def wait_until(condition, timeout: float, what: str, *, poll: float = 0.25):
    """Poll ``condition`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"waited {timeout:.0f}s for {what}")


class LogWatch(logging.Handler):
    """Watches ``logger`` (and its children) for a record whose message contains ``text``:
    :attr:`seen` is set from then on. A condition to wait on instead of a guessed time
    (e.g. librdkafka's line that a transaction failed). Use it as a context manager.

    >>> with LogWatch("driftline.example", "failed") as watch:
    ...     logging.getLogger("driftline.example.child").warning("the commit failed")
    >>> watch.seen.is_set()
    True
    """

    def __init__(self, logger: str, text: str) -> None:
        super().__init__(level=logging.NOTSET)
        self.logger, self.text, self.seen = logging.getLogger(logger), text, threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    def __enter__(self) -> LogWatch:
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


def build_reference(config: PipelineConfig, source: str, folder: Path, *, records: int = 10_000, seed=99):
    """A reference profile for ``source`` from clean generated training data (``driftline baseline``)."""
    from driftline.demo import generator_for, write_records
    from driftline.reference import baseline_from_file

    generator, names = generator_for(config, source, seed=seed)
    path = write_records(folder / f"{source}-reference.parquet", generator.records(records), names)
    return baseline_from_file(config, source, path)


__all__ = ["LiveProducer", "StreamingJob", "build_reference", "live_config", "wait_until"]
