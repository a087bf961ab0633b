"""The query listener on pyspark's own event objects (built from the JSON Spark emits)."""

from __future__ import annotations

import uuid

import pytest
from pyspark.sql.streaming.listener import QueryProgressEvent, QueryStartedEvent, QueryTerminatedEvent

from driftline.metrics import PipelineMetrics
from driftline.spark.monitoring import MetricsListener

QUERY = str(uuid.uuid4())


def _progress(end_offset, *, batch_ms=4200, rows=3000):
    source = {"description": "KafkaV2[Subscribe[signals.payments]]", "startOffset": None, "endOffset": end_offset,
              "latestOffset": None, "numInputRows": rows, "inputRowsPerSecond": 150.0,
              "processedRowsPerSecond": 714.3}  # fmt: skip
    return QueryProgressEvent.fromJson({"progress": {
        "id": QUERY, "runId": str(uuid.uuid4()), "name": "demo.payments", "timestamp": "2026-11-22T08:00:00.000Z",
        "batchId": 3, "batchDuration": batch_ms, "durationMs": {"triggerExecution": batch_ms},
        "stateOperators": [], "sources": [source], "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
        "numInputRows": rows, "inputRowsPerSecond": 150.0, "processedRowsPerSecond": 714.3,
    }})  # fmt: skip


@pytest.mark.parametrize(
    "end", ['{"signals.payments":{"0":70,"1":12}}', {"signals.payments": {"0": 70, "1": 12}}]
)
def test_listener_turns_events_into_metrics(end):
    metrics = PipelineMetrics("demo")
    listener = MetricsListener(metrics, {"demo.payments": "payments"})
    ids = {"pipeline": "demo", "source": "payments"}
    value = lambda name: metrics.registry.get_sample_value(name, ids)  # noqa: E731
    listener.onQueryStarted(QueryStartedEvent.fromJson(
        {"id": QUERY, "runId": str(uuid.uuid4()), "name": "demo.payments", "timestamp": "2026-11-22T08:00:00.000Z"}
    ))  # fmt: skip
    assert value("driftline_query_up") == 1
    listener.onQueryProgress(_progress(end))
    assert value("driftline_batch_duration_seconds_sum") == 4.2
    assert value("driftline_input_records_per_second") == 150.0
    assert value("driftline_processed_records_per_second") == 714.3
    # the position the lag monitor subtracts from the topic's end
    assert listener.processed["payments"] == {("signals.payments", 0): 70, ("signals.payments", 1): 12}
    # matched by id (terminated events carry no name), a failure counted
    listener.onQueryTerminated(QueryTerminatedEvent.fromJson(
        {"id": QUERY, "runId": str(uuid.uuid4()), "exception": "boom", "errorClassOnException": None}
    ))  # fmt: skip
    assert value("driftline_query_up") == 0 and value("driftline_query_failures_total") == 1


def test_events_of_other_queries_are_ignored():
    metrics = PipelineMetrics("demo")
    listener = MetricsListener(metrics, {"demo.payments": "payments"})
    listener.onQueryProgress(_progress('{"t":{"0":1}}'))  # same id, but the id was never started or mapped
    assert listener.processed == {"payments": {("t", 0): 1}}  # matched by name
    other = QueryTerminatedEvent.fromJson({"id": str(uuid.uuid4()), "runId": str(uuid.uuid4()),
                                           "exception": None, "errorClassOnException": None})  # fmt: skip
    listener.onQueryTerminated(other)
    assert (
        metrics.registry.get_sample_value("driftline_query_up", {"pipeline": "demo", "source": "payments"})
        is None
    )


def test_a_shared_query_reports_for_each_of_its_sources():
    """A query of several sources (``[sources.<name>] query``): its lifecycle and progress
    go to every one of them; a source of another query hears nothing."""
    metrics = PipelineMetrics("demo")
    listener = MetricsListener(metrics, {"demo.payments": ["payments", "cards"], "demo.sensors": "sensors"})
    value = lambda name, source: metrics.registry.get_sample_value(  # noqa: E731
        name, {"pipeline": "demo", "source": source}
    )
    listener.onQueryStarted(QueryStartedEvent.fromJson(
        {"id": QUERY, "runId": str(uuid.uuid4()), "name": "demo.payments", "timestamp": "2026-11-22T08:00:00.000Z"}
    ))  # fmt: skip
    listener.onQueryProgress(_progress('{"signals.payments":{"0":5},"signals.cards":{"0":9}}', batch_ms=1500))
    for source in ("payments", "cards"):
        assert value("driftline_query_up", source) == 1
        assert value("driftline_batch_duration_seconds_sum", source) == 1.5
        assert listener.processed[source] == {("signals.payments", 0): 5, ("signals.cards", 0): 9}
    assert value("driftline_query_up", "sensors") is None and "sensors" not in listener.processed
    listener.onQueryTerminated(QueryTerminatedEvent.fromJson(
        {"id": QUERY, "runId": str(uuid.uuid4()), "exception": None, "errorClassOnException": None}
    ))  # fmt: skip
    assert value("driftline_query_up", "payments") == 0 == value("driftline_query_up", "cards")
