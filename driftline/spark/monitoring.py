"""Feeding :class:`~driftline.metrics.PipelineMetrics` from Spark: a query listener and a lag monitor.

Both run on the driver, outside the micro-batches:

* :class:`MetricsListener` is a ``StreamingQueryListener``. Spark calls it
  asynchronously on its listener-bus thread (through Py4J) when a query starts,
  after every micro-batch (``onQueryProgress``: batch duration and rates), when it
  goes idle and when it terminates (``query_up`` 0, a failure counted).
* :class:`LagMonitor` is a daemon thread that, every ``[metrics] lag_interval``,
  measures each topic's end offsets and subtracts the position the query has
  committed: ``lag(topic) = Σ_partitions (end − processed)``. It measures even while
  a long batch runs, which is when lag grows.

Counts of records and drift come from the batch processor itself
(:meth:`~driftline.metrics.PipelineMetrics.batch_committed`), not from here.
"""

from __future__ import annotations

import ast
import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql.streaming import StreamingQueryListener

from driftline.kafka.end_offsets import EndOffsetProbe
from driftline.metrics import PipelineMetrics
from driftline.spark import fs
from driftline.spark.offsets import from_offset, last_checkpointed_end

logger = logging.getLogger(__name__)


class MetricsListener(StreamingQueryListener):
    """Query lifecycle and progress into metrics; queries are matched by id, then by name.

    A query of several sources (``[sources.<name>] query``) reports its progress for each
    of them: the batch duration and the rates are the shared query's."""

    def __init__(self, metrics: PipelineMetrics, sources_by_query: Mapping[str, str | Sequence[str]]) -> None:
        self.metrics = metrics
        # query name or id -> its sources
        self.sources_by_query = {
            key: (value,) if isinstance(value, str) else tuple(value)
            for key, value in sources_by_query.items()
        }
        self.processed: dict[str, dict[tuple[str, int], int]] = {}  # source -> end offsets of last batch

    def _sources(self, query_id, name: str | None = None) -> tuple[str, ...]:
        return self.sources_by_query.get(str(query_id)) or (name and self.sources_by_query.get(name)) or ()

    def onQueryStarted(self, event) -> None:  # noqa: N802 - Spark's name
        sources = self._sources(event.id, event.name)
        if sources:
            self.sources_by_query[str(event.id)] = sources
        for source in sources:
            self.metrics.query_started(source)

    def onQueryProgress(self, event) -> None:  # noqa: N802
        progress = event.progress
        ends = [_offset(s.endOffset) for s in progress.sources]
        for source in self._sources(progress.id, progress.name):
            self.metrics.batch_progress(
                source,
                seconds=progress.batchDuration / 1000 if progress.batchDuration is not None else None,
                input_rate=progress.inputRowsPerSecond,
                processed_rate=progress.processedRowsPerSecond,
            )
            for end in ends:
                if end:
                    self.processed[source] = from_offset(end)

    def onQueryIdle(self, event) -> None:  # noqa: N802
        pass  # nothing new: rates and lag stay as measured

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        for source in self._sources(event.id):
            self.metrics.query_terminated(source, failed=event.exception is not None)


def _offset(text) -> dict | None:
    """A source progress offset: JSON from the JVM (classic), a dict's repr (Spark Connect)."""
    if not text or text in ("null", "None"):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


@dataclass
class LaggingSource:
    """What the lag monitor needs to know about one source's query."""

    source: str
    topics: tuple[str, ...]
    checkpoint: str  # before the first progress event, the position comes from here


class LagMonitor:
    """Measures consumer lag per (source, topic) every ``interval`` seconds (driver thread)."""

    def __init__(
        self,
        spark,
        metrics: PipelineMetrics,
        listener: MetricsListener,
        sources: list[LaggingSource],
        make_consumer: Callable[..., object],
        *,
        bootstrap: str,
        interval: float,
    ) -> None:
        self.spark = spark  # reads checkpoints through Hadoop's FileSystem
        self.metrics, self.listener, self.sources = metrics, listener, sources
        self.interval = interval
        self._probe = EndOffsetProbe(make_consumer, bootstrap=bootstrap)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="driftline-lag", daemon=True)

    def start(self) -> LagMonitor:
        self._thread.start()
        return self

    def measure(self) -> dict[tuple[str, str], int]:
        """One measurement of every source's lag; returns and exports ``{(source, topic): lag}``."""
        out: dict[tuple[str, str], int] = {}
        for lagging in self.sources:
            processed = self.listener.processed.get(lagging.source)
            if processed is None:
                checkpointed = last_checkpointed_end(
                    lambda path: fs.list_names(self.spark, path),
                    lambda path: fs.read_text(self.spark, path),
                    lagging.checkpoint,
                )
                processed = from_offset(checkpointed)
            partitions = self._probe.partitions(lagging.topics)
            ends = self._probe.ends(partitions, {tp: processed.get(tp, 0) for tp in partitions})
            for topic in lagging.topics:
                lag = sum(max(0, end - processed.get(tp, 0)) for tp, end in ends.items() if tp[0] == topic)
                out[(lagging.source, topic)] = lag
                self.metrics.consumer_lag(lagging.source, topic, lag)
        return out

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    self.measure()
                except Exception as error:  # a broker hiccup must not kill the job
                    logger.warning("lag_measure_failed error=%s", error)
                self._stop.wait(self.interval)
        finally:
            self._probe.close()  # on this thread: never while a measurement uses the consumer

    def stop(self) -> None:
        """Ask the thread to stop and wait for it (a measurement in flight may take up to a minute)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=65)
        elif not self._thread.ident:  # never started: the probe is ours to close
            self._probe.close()


__all__ = ["LagMonitor", "LaggingSource", "MetricsListener"]
